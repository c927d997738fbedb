//! Signed verdict tokens: what a signup form's backend is given to trust a
//! check made in the visitor's browser (which the visitor could skip or
//! fake). A token is
//!
//! ```text
//! v1.<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "v1.<base64url(claims JSON)>"))>
//! ```
//!
//! base64url without padding, the claims being
//! `{"email", "status", "reason", "origin", "iat", "exp"}` (`iat` and `exp`
//! in seconds since the Unix epoch; a token lives [`TOKEN_TTL_SECONDS`]).
//! The backend checks it with the shared secret, or asks
//! `POST /tokens/verify` with a secret key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::secret::{ExposeSecret, SecretString};
use crate::vocab::{Reason, Status};

/// How long a token is good for after the check that issued it.
pub const TOKEN_TTL_SECONDS: i64 = 600;

/// The shortest token secret accepted: a backend's copy of it must not be
/// guessable from tokens it has seen.
pub const MIN_TOKEN_SECRET_CHARS: usize = 32;

/// The version prefix of the token format.
const VERSION: &str = "v1";

/// What a token says: which address got which verdict, asked from which
/// page, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    /// The address as normalized (domain lowercased and in ASCII); the
    /// trimmed input when it could not be parsed.
    pub email: String,
    pub status: Status,
    pub reason: Reason,
    /// The `Origin` of the browser's request, or `None` without one.
    pub origin: Option<String>,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: i64,
}

impl TokenClaims {
    /// Claims issued at `now` (seconds since the Unix epoch), expiring
    /// [`TOKEN_TTL_SECONDS`] later.
    pub fn issued(
        email: String,
        status: Status,
        reason: Reason,
        origin: Option<String>,
        now: i64,
    ) -> Self {
        TokenClaims {
            email,
            status,
            reason,
            origin,
            iat: now,
            exp: now.saturating_add(TOKEN_TTL_SECONDS),
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not of the form `v1.<claims>.<signature>` (base64url)")]
    Malformed,
    #[error(
        "the token's signature does not match: it was not issued by this server, or it was altered"
    )]
    BadSignature,
    #[error(
        "the token expired at {exp} (seconds since the Unix epoch); tokens last {TOKEN_TTL_SECONDS} s"
    )]
    Expired { exp: i64 },
}

/// Signs and checks tokens with the operator's `--token-secret`.
#[derive(Clone)]
pub struct TokenSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner([REDACTED])")
    }
}

impl TokenSigner {
    pub fn new(secret: &SecretString) -> Self {
        TokenSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes()),
        }
    }

    /// The token for these claims.
    pub fn sign(&self, claims: &TokenClaims) -> String {
        // Serialising plain strings, enums and integers cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this signer issued that has not expired at
    /// `now` (seconds since the Unix epoch). The signature is compared in
    /// constant time, before anything in the claims is read.
    pub fn check(&self, token: &str, now: i64) -> Result<TokenClaims, TokenError> {
        let token = token.trim();
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, claims) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: TokenClaims = URL_SAFE_NO_PAD
            .decode(claims)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Malformed)?;
        if now >= claims.exp {
            return Err(TokenError::Expired { exp: claims.exp });
        }
        Ok(claims)
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> TokenSigner {
        TokenSigner::new(&SecretString::from(secret))
    }

    fn claims(now: i64) -> TokenClaims {
        TokenClaims::issued(
            "alice@example.test".into(),
            Status::Deliverable,
            Reason::Accepted,
            Some("https://shop.example".into()),
            now,
        )
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let signer = signer("0123456789abcdef0123456789abcdef");
        let token = signer.sign(&claims(1_000));
        assert!(token.starts_with("v1."), "{token}");
        assert_eq!(token.matches('.').count(), 2, "{token}");
        assert_eq!(signer.check(&token, 1_000), Ok(claims(1_000)));
        assert_eq!(signer.check(&token, 1_599), Ok(claims(1_000)));
        assert_eq!(
            signer.check(&token, 1_600),
            Err(TokenError::Expired { exp: 1_600 })
        );
    }

    #[test]
    fn another_secret_or_an_altered_token_is_refused() {
        let signer_a = signer("0123456789abcdef0123456789abcdef");
        let signer_b = signer("fedcba9876543210fedcba9876543210");
        let token = signer_a.sign(&claims(1_000));
        assert_eq!(signer_b.check(&token, 1_000), Err(TokenError::BadSignature));
        // The claims changed to another address, the signature kept.
        let mut forged = claims(1_000);
        forged.email = "mallory@example.test".into();
        let forged_claims = signer_a.sign(&forged);
        let (_, good_signature) = token.rsplit_once('.').expect("three parts");
        let (forged_signed, _) = forged_claims.rsplit_once('.').expect("three parts");
        assert_eq!(
            signer_a.check(&format!("{forged_signed}.{good_signature}"), 1_000),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "v1", "v1.abc", "v2.abc.def", "v1.abc.%%%"] {
            assert_eq!(
                signer_a.check(bad, 1_000),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_signer_does_not_show_its_secret() {
        let signer = signer("0123456789abcdef0123456789abcdef");
        assert!(!format!("{signer:?}").contains("0123"));
    }
}
