//! mailvet: a self-hosted email verification and bounce suppression
//! service. See `docs/ARCHITECTURE.md` for how the parts fit together.

pub mod bounce;
pub mod check;
pub mod http;
pub mod jobs;
pub mod settings;
pub mod startup;
pub mod store;
pub mod suppress;
pub mod telemetry;
pub mod verify;

pub use settings::{Cli, Command, Settings};

/// Installs ring as the process's TLS crypto provider (for the HTTP client
/// that confirms SNS subscriptions, and anything else using rustls's
/// default). Idempotent; call before any TLS is used.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use startup::Application;
