//! The process's TLS crypto provider.

/// Installs ring as the process's TLS crypto provider (for the HTTP clients
/// that confirm SNS subscriptions and send job webhooks, and anything else
/// using rustls's default). Idempotent; call before any TLS is used.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
