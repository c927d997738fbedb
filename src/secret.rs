//! Values that must not be shown: API keys, signing keys, database URLs
//! with passwords. They are `secrecy` strings, whose `Debug` is redacted and
//! which have no `Display`; call `expose_secret` where the value is needed.

use std::convert::Infallible;

pub use secrecy::{ExposeSecret, SecretString};

/// Reads a secret from the command line or the environment (for clap).
pub fn parse_secret(value: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(value))
}

/// A database URL with its password (if any) replaced, fit for logs.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails on URLs that cannot have one.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_everything_but_the_password() {
        assert_eq!(
            redact_url("postgres://mailvet:hunter2@db:5432/mailvet"),
            "postgres://mailvet:redacted@db:5432/mailvet"
        );
        assert_eq!(redact_url("sqlite://mailvet.db"), "sqlite://mailvet.db");
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let key = parse_secret("sk_live_abc").expect("infallible");
        assert!(!format!("{key:?}").contains("sk_live_abc"));
        assert_eq!(key.expose_secret(), "sk_live_abc");
    }
}
