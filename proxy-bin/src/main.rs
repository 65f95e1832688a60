//! `portcullis`: a reverse proxy for HTTP/1.1, HTTP/2 and HTTP/3, over TLS
//! or not.
//!
//! The binary is thin: it turns a TOML file into validated engine values,
//! installs the process-wide pieces (the tracing subscriber, the runtime),
//! hands the configuration to `proxy-lib`, and turns signals into reloads
//! and shutdowns.

mod logging;
mod serve;

use proxy_bin::{config, open_files};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use proxy_certs::watch::FileStamp;
use tracing::{error, info, warn};

/// mimalloc rather than glibc's malloc: the engine's per-request buffers
/// (a few KiB each) are beyond glibc's per-thread cache, and memory freed
/// after a burst of connections goes back to the system instead of staying
/// in the process (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A reverse proxy for HTTP/1.1, HTTP/2 and HTTP/3, with TLS by SNI, client
/// certificates, and TLS to upstreams. The config file is rpxy's TOML
/// format, extended (config-example.toml documents every key).
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    after_help = "Signals: SIGHUP reloads the file (a refused file keeps the running configuration; \
                  an accepted one is logged \"configuration applied\" once it serves); \
                  SIGUSR1 reopens the access-log file (after logrotate moved it); \
                  SIGTERM and SIGINT stop accepting and drain open connections. Certificate files \
                  and revocation lists are re-read when they change, without a reload."
)]
struct Cli {
    /// The TOML configuration file (rpxy's format, extended).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,

    /// Check the configuration and exit: 0 when valid, 1 with the file, key
    /// and reason otherwise.
    #[arg(long)]
    check: bool,

    /// Reload when the config file, or a file it names (a CA, an upstream's
    /// client certificate, a plugin.config), changes, as SIGHUP does.
    #[arg(short, long, conflicts_with = "check")]
    watch: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The process-wide default, for any rustls user that asks for one; the
    // TLS settings are built on the same provider explicitly.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Before the config: the default max_clients follows from the limit.
    let raised = open_files::raise_limit();
    let sessions = config::sessions();
    let mode = if cli.check {
        config::Mode::Check
    } else {
        config::Mode::Serve
    };
    // Before reading: a change made while it is read is seen by --watch.
    let stamp = FileStamp::of(&cli.config);
    let loaded = match config::load(&cli.config, &sessions, mode) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("portcullis: configuration refused: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        for warning in &loaded.warnings {
            eprintln!("portcullis: warning: {warning}");
        }
        for line in loaded.acme.iter().flat_map(|plan| &plan.report) {
            println!("{line}");
        }
        println!(
            "{}: configuration is valid ({} apps)",
            cli.config.display(),
            loaded.proxy.apps().len()
        );
        return ExitCode::SUCCESS;
    }
    let logging = match logging::init(&loaded.log) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    info!(
        version = %env!("CARGO_PKG_VERSION"),
        config = %cli.config.display(),
        apps = loaded.proxy.apps().len(),
        "portcullis starting"
    );
    if let Some((before, after)) = raised {
        info!(before, after, "open files limit raised to the hard limit");
    }
    info!(
        max_clients = loaded.proxy.limits().max_clients,
        "client connections at most"
    );
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    // One worker needs no work stealing: the current-thread scheduler
    // serves it with less overhead per task switch.
    let mut runtime = match loaded.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all();
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let file = serve::ConfigFile {
        path: cli.config,
        stamp,
        watch: cli.watch,
    };
    match runtime.block_on(serve::run(file, loaded, sessions, logging)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
