//! proxy-bin's integration tests in one binary: the real `portcullis`
//! process on configs written by each test (`support`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod acme;
mod bridge;
mod config_errors;
mod h3;
mod layer4;
mod logs;
mod memory;
mod process;
mod tickets;
mod tls;
mod upstream_tls;
mod watch;
