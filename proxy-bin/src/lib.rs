//! What `portcullis` is made of besides its command line and its serving
//! loop: the config-file loader, which turns rpxy's TOML format (extended)
//! into `proxy-lib`'s validated values, and the open-files limit the default
//! `max_clients` follows.
//!
//! A library so that the fuzz target and the tests can reach the loader;
//! code embedding the engine builds `proxy_lib::ProxyConfig` itself.

pub mod config;
pub mod open_files;
