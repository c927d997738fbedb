//! The token of a confirmation link:
//!
//! ```text
//! c1.<base64url(16-byte request id ‖ 8-byte big-endian expiry, Unix seconds)>.<base64url(HMAC-SHA256)>
//! ```
//!
//! signed with a key derived from `--token-secret` (HMAC of the secret
//! over a fixed label), so that neither kind of token can pass for the
//! other. The signature keeps anyone from forging or stretching a link;
//! the request's row in the database makes it single-use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use uuid::Uuid;

use crate::secret::{ExposeSecret, SecretString};

const VERSION: &str = "c1";

/// What the key of confirmation links is derived with.
const LABEL: &[u8] = b"mailvet confirmation links v1";

/// Why a link's token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is not one this server made, or it was altered")]
    Invalid,
    #[error("the link expired")]
    Expired { id: Uuid },
}

/// Signs and checks the tokens of confirmation links.
#[derive(Clone)]
pub struct LinkSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner([REDACTED])")
    }
}

impl LinkSigner {
    pub fn new(secret: &SecretString) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        let derived = hmac::sign(&root, LABEL);
        LinkSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The token for request `id`, good until `exp` (Unix seconds).
    pub fn sign(&self, id: Uuid, exp: i64) -> String {
        let mut payload = Vec::with_capacity(24);
        payload.extend_from_slice(id.as_bytes());
        payload.extend_from_slice(&exp.to_be_bytes());
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The request id of a token this signer made that has not expired at
    /// `now` (Unix seconds). The signature is checked (in constant time)
    /// before anything else is read.
    pub fn check(&self, token: &str, now: i64) -> Result<Uuid, LinkError> {
        let (signed, signature) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        hmac::verify(&self.key, signed.as_bytes(), &signature).map_err(|_| LinkError::Invalid)?;
        let payload = signed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
            .filter(|payload| payload.len() == 24)
            .ok_or(LinkError::Invalid)?;
        let (id, exp) = payload.split_at(16);
        let id = Uuid::from_slice(id).map_err(|_| LinkError::Invalid)?;
        let exp = i64::from_be_bytes(exp.try_into().map_err(|_| LinkError::Invalid)?);
        if now >= exp {
            return Err(LinkError::Expired { id });
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> LinkSigner {
        LinkSigner::new(&SecretString::from(secret))
    }

    #[test]
    fn a_link_token_names_its_request_until_it_expires() {
        let signer = signer("0123456789abcdef0123456789abcdef");
        let id = Uuid::new_v4();
        let token = signer.sign(id, 2_000);
        assert!(token.starts_with("c1."), "{token}");
        assert_eq!(signer.check(&token, 1_999), Ok(id));
        assert_eq!(signer.check(&token, 2_000), Err(LinkError::Expired { id }));
    }

    #[test]
    fn an_altered_or_foreign_link_token_is_invalid() {
        let a = signer("0123456789abcdef0123456789abcdef");
        let b = signer("fedcba9876543210fedcba9876543210");
        let token = a.sign(Uuid::new_v4(), 2_000);
        assert_eq!(b.check(&token, 1_000), Err(LinkError::Invalid));
        // A later expiry with the old signature.
        let (_, signature) = token.rsplit_once('.').expect("three parts");
        let longer = a.sign(Uuid::new_v4(), 9_000);
        let (longer_signed, _) = longer.rsplit_once('.').expect("three parts");
        assert_eq!(
            a.check(&format!("{longer_signed}.{signature}"), 1_000),
            Err(LinkError::Invalid)
        );
        for bad in ["", "c1", "c1.abc", "c1.abc.%%"] {
            assert_eq!(a.check(bad, 1_000), Err(LinkError::Invalid), "{bad}");
        }
    }

    #[test]
    fn a_verdict_token_key_does_not_sign_links() {
        // The same secret signs verdict tokens with the raw key; a link
        // signed that way is refused.
        let secret = SecretString::from("0123456789abcdef0123456789abcdef");
        let raw = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        let id = Uuid::new_v4();
        let mut payload = id.as_bytes().to_vec();
        payload.extend_from_slice(&2_000i64.to_be_bytes());
        let signed = format!("c1.{}", URL_SAFE_NO_PAD.encode(payload));
        let tag = hmac::sign(&raw, signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            LinkSigner::new(&secret).check(&token, 1_000),
            Err(LinkError::Invalid)
        );
    }
}
