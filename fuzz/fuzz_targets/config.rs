//! A config file's text into portcullis's loader (TOML, then every key's
//! conversion and refusal), as `--check` runs it.
//!
//! Paths in the text are kept inside an empty scratch directory: `/` and `\`
//! become `_`, so the loader reads and probes nothing of the machine's (a
//! path such as /dev/zero would be the fuzzer's doing, not a finding).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use proxy_bin::config::{self, Mode, Sessions};

static BASE: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("portcullis-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
});
static SESSIONS: LazyLock<Sessions> = LazyLock::new(config::sessions);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.replace(['/', '\\'], "_");
    let _ = config::load_text(&text, &BASE, &SESSIONS, Mode::Check);
});
