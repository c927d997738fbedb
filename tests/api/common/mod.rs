//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod browser;
pub mod db;
pub mod dns;
pub mod memory;
pub mod postfix;
pub mod probe;
pub mod proxy;
pub mod smtp_peer;
pub mod sns;
pub mod socks;
pub mod spec;

/// An HTTP client for tests (the TLS provider installed first).
pub fn client() -> reqwest::Client {
    mailvet::tls::install_provider();
    reqwest::Client::new()
}
