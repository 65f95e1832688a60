//! Certificates by ACME (RFC 8555) for Portcullis: ordered, renewed and
//! served without a restart, validated by TLS-ALPN-01 (RFC 8737) on the TLS
//! listener itself. Built on `rustls-acme`.
//!
//! [`Acme`] manages one certificate per app (its names, in one order), each
//! ordered on its own so that a name that cannot be validated fails alone.
//! Its [`AcmeSource`] is a [`proxy_certs::CertificateSource`]: hand it to
//! the TLS listeners (with [`proxy_certs::SourceMap`] beside certificate
//! files), then [`Acme::start`] the orders on a tokio runtime.
//!
//! - Account key and certificates are kept in a [`proxy_certs::Storage`]
//!   (files by default). A valid cached certificate is served at start
//!   without asking the CA; a new one goes live for the next handshake.
//! - Renewal at two thirds of a certificate's lifetime; a failed order is
//!   tried again after 1, 2, 4, … seconds (at most about 18 hours), each
//!   failure logged with the CA's reason, and [`AcmeSource::status`] tells
//!   each app's expiry and last error.
//! - While an app has no certificate, handshakes naming it are refused
//!   with `unrecognized_name` and the log says why, or served a self-signed
//!   stand-in if the app asked for one ([`AcmeApp::self_signed_stand_in`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use proxy_acme::{Acme, AcmeApp, AcmeSettings, LETS_ENCRYPT};
//! use proxy_certs::{CertificateSource, FileStorage, SourceMap};
//!
//! # async fn run(files: Arc<dyn CertificateSource>) -> Result<(), proxy_acme::Error> {
//! let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
//! let storage = Arc::new(FileStorage::new("/var/lib/portcullis/acme"));
//! let mut settings = AcmeSettings::new(LETS_ENCRYPT, storage, provider)?;
//! settings.contact("ops@example.com")?;
//! let site = AcmeApp::new("site", ["example.com", "www.example.com"]);
//! let acme = Acme::new(settings, [site])?;
//!
//! // These names from ACME, every other one from `files`; give `certs` to
//! // proxy-lib's `TlsSettings::new`.
//! let ordered = acme.source();
//! let mut certs = SourceMap::new(files);
//! certs.add(ordered.names(), ordered.clone());
//! let certs: Arc<dyn CertificateSource> = Arc::new(certs);
//!
//! let running = acme.start();
//! running.cache_loaded(Duration::from_secs(10)).await;
//! // ... serve; dropping `running` stops the orders.
//! # Ok(())
//! # }
//! ```

mod cache;
mod error;
mod orders;
mod settings;
mod source;

pub use cache::{account_key, certificate_key, certificate_lifetime};
pub use error::Error;
pub use settings::{AcmeSettings, LETS_ENCRYPT};
pub use source::{Acme, AcmeApp, AcmeSource, AppStatus, Running};
