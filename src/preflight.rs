//! Start-up warnings about settings that work but will hurt: a HELO name
//! that is not a fully qualified domain name (probes get refused), no API
//! keys, and secret keys that are short or repetitive. They are warnings,
//! not errors: a test setup on a laptop is entitled to all three. (Serving
//! beyond loopback without keys is an error, in `startup`.)

use crate::address::helo_name_problem;
use crate::secret::{ExposeSecret, SecretString};
use crate::settings::{ApiKeys, SmtpArgs};

/// Shorter secret keys are refused outright by
/// [`KeyArgs::api_keys`](crate::settings::KeyArgs::api_keys); shorter than
/// this, warned about.
pub const STRONG_KEY_CHARS: usize = 32;
/// A secret key with fewer different characters than this is repetitive
/// (`aaaa…`, `abcabc…`) and warned about.
pub const STRONG_KEY_DISTINCT_CHARS: usize = 10;

/// What is wrong with the name probes introduce themselves with, if
/// anything.
pub fn helo_warning(smtp: &SmtpArgs) -> Option<String> {
    let name = smtp.helo_name();
    let problem = helo_name_problem(&name)?;
    let origin = if smtp.helo_name.is_some() {
        "--helo-name (MAILVET_HELO_NAME)"
    } else {
        "the HELO name, taken from the host name since MAILVET_HELO_NAME is not set,"
    };
    Some(format!(
        "{origin} {name:?} is not a fully qualified domain name: {problem}. Mail servers refuse \
         or distrust probes from such a name; set MAILVET_HELO_NAME to a name of yours whose \
         A record and reverse DNS match this host's public IP, and MAILVET_MAIL_FROM to an \
         address at it"
    ))
}

/// What is weak about the API keys, if anything: none at all, or secret
/// keys short or repetitive enough to be guessed.
pub fn key_warnings(keys: &ApiKeys) -> Vec<String> {
    let mut warnings = Vec::new();
    if keys.secret.is_empty() && keys.public.is_empty() {
        warnings.push(
            "no API keys are configured: every program that can reach this port may read and \
             change the suppression list and probe mail servers through it. Set \
             MAILVET_SECRET_KEYS (make one with `openssl rand -hex 32`)"
                .to_owned(),
        );
    }
    let count = keys.secret.len();
    for (n, key) in keys.secret.iter().enumerate() {
        if let Some(why) = weakness(key) {
            warnings.push(format!(
                "secret key {} of {count} is weak: {why}; make a new one with `openssl rand -hex 32`",
                n + 1
            ));
        }
    }
    warnings
}

/// Why a secret key is weak, if it is. Never shows the key.
fn weakness(key: &SecretString) -> Option<String> {
    let key = key.expose_secret();
    let length = key.chars().count();
    if length < STRONG_KEY_CHARS {
        return Some(format!(
            "{length} characters long, fewer than {STRONG_KEY_CHARS}"
        ));
    }
    let mut distinct: Vec<char> = key.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < STRONG_KEY_DISTINCT_CHARS {
        return Some(format!(
            "only {} different characters, fewer than {STRONG_KEY_DISTINCT_CHARS}",
            distinct.len()
        ));
    }
    None
}

/// Logs each warning about the SMTP settings.
pub fn warn_smtp(smtp: &SmtpArgs) {
    if let Some(warning) = helo_warning(smtp) {
        tracing::warn!("{warning}");
    }
}

/// Logs each warning about the SMTP settings and the API keys.
pub fn warn_service(smtp: &SmtpArgs, keys: &ApiKeys) {
    warn_smtp(smtp);
    for warning in key_warnings(keys) {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[&str]) -> ApiKeys {
        ApiKeys {
            secret: secret.iter().map(|key| SecretString::from(*key)).collect(),
            public: Vec::new(),
            webhook: Vec::new(),
        }
    }

    #[test]
    fn short_and_repetitive_secret_keys_are_weak_and_never_shown() {
        let short = "sk_0123456789abcdef";
        let repetitive = "abababababababababababababababababab";
        let warnings = key_warnings(&keys(&[
            short,
            repetitive,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c",
        ]));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("secret key 1 of 3") && warnings[0].contains("19 characters"));
        assert!(
            warnings[1].contains("secret key 2 of 3") && warnings[1].contains("only 2 different")
        );
        for warning in &warnings {
            assert!(!warning.contains(short) && !warning.contains(repetitive));
        }
    }

    #[test]
    fn no_keys_at_all_is_warned_about() {
        let warnings = key_warnings(&keys(&[]));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("no API keys"));
    }
}
