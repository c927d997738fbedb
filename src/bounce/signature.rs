//! Checking that an ESP webhook comes from the ESP: Mailgun's HMAC and
//! SendGrid's signed event webhook (ECDSA P-256). Both are optional: with
//! no signing key configured, the API key in the webhook's URL is the only
//! check.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::{hmac, signature};

/// How far a signed timestamp may be from now: older ones are replays.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook carries no signature ({0})")]
    Missing(&'static str),
    #[error("the webhook's signature does not match its body")]
    Mismatch,
    #[error(
        "the webhook's signed timestamp is more than 15 minutes from now: a replay or a wrong clock"
    )]
    Stale,
    #[error("the configured SendGrid verification key is not a base64 P-256 public key")]
    BadKey,
}

fn fresh(timestamp: &str, now: DateTime<Utc>) -> Result<(), SignatureError> {
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Missing("a numeric timestamp"))?;
    if (now.timestamp() - seconds).abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Mailgun: `signature.signature` is the hex HMAC-SHA256, keyed with the
/// account's webhook signing key, of `signature.timestamp` followed by
/// `signature.token`.
pub fn verify_mailgun(
    body: &[u8],
    signing_key: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| SignatureError::Missing("the body is not JSON"))?;
    let field = |name: &str| value["signature"][name].as_str();
    let (Some(timestamp), Some(token), Some(given)) =
        (field("timestamp"), field("token"), field("signature"))
    else {
        return Err(SignatureError::Missing(
            "`signature` with `timestamp`, `token` and `signature`",
        ));
    };
    let given = hex_decode(given).ok_or(SignatureError::Mismatch)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, signing_key.as_bytes());
    let message = format!("{timestamp}{token}");
    hmac::verify(&key, message.as_bytes(), &given).map_err(|_| SignatureError::Mismatch)?;
    fresh(timestamp, now)
}

/// The DER header of a P-256 SubjectPublicKeyInfo before the 65-byte
/// uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// SendGrid: the `X-Twilio-Email-Event-Webhook-Signature` header is a
/// base64 DER ECDSA P-256/SHA-256 signature of the
/// `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw
/// body; the verification key is the base64 public key SendGrid shows.
pub fn verify_sendgrid(
    body: &[u8],
    signature_header: Option<&str>,
    timestamp_header: Option<&str>,
    public_key: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(given), Some(timestamp)) = (signature_header, timestamp_header) else {
        return Err(SignatureError::Missing(
            "the X-Twilio-Email-Event-Webhook-Signature and -Timestamp headers",
        ));
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let der = engine
        .decode(public_key.trim())
        .map_err(|_| SignatureError::BadKey)?;
    let point = der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|point| point.len() == 65)
        .ok_or(SignatureError::BadKey)?;
    let given = engine
        .decode(given.trim())
        .map_err(|_| SignatureError::Mismatch)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(&message, &given)
        .map_err(|_| SignatureError::Mismatch)?;
    fresh(timestamp, now)
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn mailgun_body(key: &str, timestamp: i64, token: &str) -> String {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
            format!("{timestamp}{token}").as_bytes(),
        );
        let hex: String = tag
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        format!(
            r#"{{"signature": {{"timestamp": "{timestamp}", "token": "{token}", "signature": "{hex}"}}, "event-data": {{"event": "failed"}}}}"#
        )
    }

    #[test]
    fn mailgun_signatures_are_checked_and_must_be_recent() {
        let now = Utc::now();
        let body = mailgun_body("key-1", now.timestamp(), "abc123");
        assert_eq!(verify_mailgun(body.as_bytes(), "key-1", now), Ok(()));
        assert_eq!(
            verify_mailgun(body.as_bytes(), "key-2", now),
            Err(SignatureError::Mismatch)
        );
        let tampered = body.replace("abc123", "abc124");
        assert_eq!(
            verify_mailgun(tampered.as_bytes(), "key-1", now),
            Err(SignatureError::Mismatch)
        );
        let old = mailgun_body("key-1", now.timestamp() - 3600, "abc123");
        assert_eq!(
            verify_mailgun(old.as_bytes(), "key-1", now),
            Err(SignatureError::Stale)
        );
        assert!(matches!(
            verify_mailgun(br#"{"event-data": {}}"#, "key-1", now),
            Err(SignatureError::Missing(_))
        ));
    }

    #[test]
    fn sendgrid_signatures_are_checked_against_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("a key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a key pair");
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let engine = base64::engine::general_purpose::STANDARD;
        let public_key = engine.encode(&spki);
        let now = Utc::now();
        let timestamp = now.timestamp().to_string();
        let body = br#"[{"email":"a@example.test","event":"bounce"}]"#;
        let signed = [timestamp.as_bytes(), &body[..]].concat();
        let signature = engine.encode(pair.sign(&rng, &signed).expect("a signature"));

        let check = |body: &[u8], signature: Option<&str>, timestamp: Option<&str>| {
            verify_sendgrid(body, signature, timestamp, &public_key, now)
        };
        assert_eq!(check(body, Some(&signature), Some(&timestamp)), Ok(()));
        assert_eq!(
            check(
                br#"[{"email":"b@example.test","event":"bounce"}]"#,
                Some(&signature),
                Some(&timestamp)
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(body, Some(&signature), Some("1")),
            Err(SignatureError::Mismatch),
            "the timestamp is signed too"
        );
        assert!(matches!(
            check(body, None, Some(&timestamp)),
            Err(SignatureError::Missing(_))
        ));
        assert_eq!(
            verify_sendgrid(
                body,
                Some(&signature),
                Some(&timestamp),
                "bm90IGEga2V5",
                now
            ),
            Err(SignatureError::BadKey)
        );
    }
}
