//! Amazon SNS message signatures. Every message SNS delivers (a
//! notification, a subscription or unsubscription confirmation) is signed
//! with the private key of a certificate that SNS serves from
//! `SigningCertURL`; `SignatureVersion` 1 is SHA1withRSA, 2 SHA256withRSA,
//! over the message's fields in a fixed order
//! (<https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>).
//!
//! mailvet fetches a certificate only from an https URL on an
//! `sns.<region>.amazonaws.com` host, over guarded outbound HTTP, and keeps
//! it. A message whose signature does not verify is refused before
//! anything in it is read or recorded; `--sns-topic-arns` optionally pins
//! the topics accepted.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};
use serde_json::Value;

use crate::outbound::Outbound;

/// How long a fetched signing certificate is kept.
const CERTIFICATE_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most certificates kept (SNS rotates them rarely; one per region).
const CERTIFICATE_CAPACITY: u64 = 64;
/// The largest certificate accepted.
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;

/// Why an SNS message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// Not a signed SNS message, or its signature does not verify.
    #[error("{0}")]
    Invalid(String),
    /// Signed, but for a topic not in `--sns-topic-arns`.
    #[error("{0}")]
    TopicNotAllowed(String),
    /// The signing certificate could not be fetched.
    #[error("{0}")]
    Unavailable(String),
}

/// Checks SNS signatures, with the certificates it has fetched.
#[derive(Debug, Clone)]
pub struct SnsVerifier {
    outbound: Outbound,
    topics: Arc<Vec<String>>,
    certificates: moka::sync::Cache<String, Arc<Vec<u8>>>,
}

impl SnsVerifier {
    /// `topics`: the topic ARNs accepted (any when empty). `preloaded`:
    /// certificates (URL, PEM) known without fetching them — for hosts that
    /// cannot reach AWS, and for tests.
    pub fn new(outbound: Outbound, topics: Vec<String>, preloaded: &[(String, String)]) -> Self {
        let certificates = moka::sync::Cache::builder()
            .max_capacity(CERTIFICATE_CAPACITY)
            .time_to_live(CERTIFICATE_TTL)
            .build();
        let verifier = SnsVerifier {
            outbound,
            topics: Arc::new(topics),
            certificates,
        };
        for (url, pem) in preloaded {
            if let Ok(der) = CertificateDer::from_pem_slice(pem.as_bytes()) {
                verifier
                    .certificates
                    .insert(url.clone(), Arc::new(der.to_vec()));
            }
        }
        verifier
    }

    /// Verifies an SNS message (its JSON body). `Ok` means SNS signed it,
    /// for an accepted topic.
    pub async fn verify(&self, message: &Value) -> Result<(), SnsError> {
        let field = |name: &str| message.get(name).and_then(Value::as_str);
        let kind = field("Type").ok_or_else(|| invalid("the SNS message has no `Type`"))?;
        let version = field("SignatureVersion").unwrap_or("1");
        let algorithm: &dyn SignatureVerificationAlgorithm = match version {
            "1" => &RSA_PKCS1_SHA1,
            "2" => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
            other => return Err(invalid(&format!("unknown SNS SignatureVersion `{other}`"))),
        };
        let signature =
            field("Signature").ok_or_else(|| invalid("the SNS message is not signed"))?;
        let signature = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(signature)
                .map_err(|_| invalid("the SNS Signature is not base64"))?
        };
        let url = field("SigningCertURL")
            .ok_or_else(|| invalid("the SNS message has no SigningCertURL"))?;
        if !is_signing_cert_url(url) {
            return Err(invalid(
                "the SigningCertURL is not an Amazon SNS certificate (https://sns.<region>.amazonaws.com/….pem)",
            ));
        }
        let text = string_to_sign(kind, message)?;
        let der = self.certificate(url).await?;
        let der = CertificateDer::from(der.as_slice());
        let certificate = webpki::EndEntityCert::try_from(&der).map_err(|err| {
            invalid(&format!(
                "the SNS signing certificate cannot be read: {err}"
            ))
        })?;
        certificate
            .verify_signature(algorithm, text.as_bytes(), &signature)
            .map_err(|_| invalid("the SNS signature does not match the message"))?;
        let topic = field("TopicArn").unwrap_or_default();
        if !self.topics.is_empty() && !self.topics.iter().any(|allowed| allowed == topic) {
            return Err(SnsError::TopicNotAllowed(format!(
                "SNS topic `{topic}` is not one of --sns-topic-arns"
            )));
        }
        Ok(())
    }

    async fn certificate(&self, url: &str) -> Result<Arc<Vec<u8>>, SnsError> {
        if let Some(known) = self.certificates.get(url) {
            return Ok(known);
        }
        let der = Arc::new(self.fetch(url).await?);
        self.certificates.insert(url.to_owned(), der.clone());
        Ok(der)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, SnsError> {
        let unavailable = |why: String| {
            SnsError::Unavailable(format!("fetching the SNS signing certificate: {why}"))
        };
        let request = self
            .outbound
            .request(reqwest::Method::GET, url)
            .map_err(|err| unavailable(err.to_string()))?;
        let response = self
            .outbound
            .send(request)
            .await
            .map_err(|err| unavailable(err.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| unavailable(err.without_url().to_string()))?;
        if body.len() > MAX_CERTIFICATE_BYTES {
            return Err(unavailable(format!(
                "{} bytes is not a certificate",
                body.len()
            )));
        }
        let der = CertificateDer::from_pem_slice(&body)
            .map_err(|_| unavailable("the answer is not a PEM certificate".into()))?;
        Ok(der.to_vec())
    }
}

fn invalid(why: &str) -> SnsError {
    SnsError::Invalid(why.to_owned())
}

/// Whether `url` is where SNS serves signing certificates: https, no port,
/// an `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`) host, and a
/// `.pem` path.
pub fn is_signing_cert_url(url: &str) -> bool {
    sns_url(url).is_some_and(|parsed| parsed.path().ends_with(".pem"))
}

/// Whether a `SubscribeURL` is Amazon SNS's own: https on
/// `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`). Anything else is
/// refused, so that a forged confirmation cannot make mailvet fetch an
/// address of the attacker's choosing.
pub fn is_sns_url(url: &str) -> bool {
    sns_url(url).is_some()
}

/// `url` parsed, when it is https on an SNS host without a port.
fn sns_url(url: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let on_sns = parsed.scheme() == "https"
        && parsed.port().is_none()
        && host.starts_with("sns.")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    on_sns.then_some(parsed)
}

/// The text SNS signs: chosen fields as `name\nvalue\n`, in order.
fn string_to_sign(kind: &str, message: &Value) -> Result<String, SnsError> {
    let fields: &[&str] = match kind {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => return Err(invalid(&format!("unknown SNS message Type `{other}`"))),
    };
    let mut text = String::new();
    for name in fields {
        match message.get(*name).and_then(Value::as_str) {
            Some(value) => {
                text.push_str(name);
                text.push('\n');
                text.push_str(value);
                text.push('\n');
            }
            // Only a notification's subject may be absent.
            None if *name == "Subject" => {}
            None => return Err(invalid(&format!("the SNS message has no `{name}`"))),
        }
    }
    Ok(text)
}

/// SHA1withRSA, which SNS's `SignatureVersion` 1 uses; webpki leaves it
/// out for certificates, so it is supplied here over ring's legacy
/// verifier (2048-bit keys and up).
#[derive(Debug)]
struct RsaPkcs1Sha1;

static RSA_PKCS1_SHA1: RsaPkcs1Sha1 = RsaPkcs1Sha1;

/// `sha1WithRSAEncryption` with NULL parameters, as DER (the contents of
/// the AlgorithmIdentifier SEQUENCE).
const SHA1_WITH_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SHA1_WITH_RSA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_signed_text_follows_the_published_order() {
        let notification = json!({
            "Type": "Notification", "MessageId": "m1", "TopicArn": "arn:t",
            "Message": "hello", "Timestamp": "2026-11-29T10:00:00.000Z",
            "SignatureVersion": "1", "Signature": "x", "SigningCertURL": "u",
        });
        assert_eq!(
            string_to_sign("Notification", &notification).expect("text"),
            "Message\nhello\nMessageId\nm1\nTimestamp\n2026-11-29T10:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n"
        );
        let confirmation = json!({
            "Type": "SubscriptionConfirmation", "MessageId": "m2", "Token": "tok",
            "TopicArn": "arn:t", "Message": "confirm", "SubscribeURL": "https://s",
            "Timestamp": "t",
        });
        assert_eq!(
            string_to_sign("SubscriptionConfirmation", &confirmation).expect("text"),
            "Message\nconfirm\nMessageId\nm2\nSubscribeURL\nhttps://s\nTimestamp\nt\nToken\ntok\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n"
        );
        let mut missing = confirmation.clone();
        missing.as_object_mut().expect("object").remove("Token");
        assert!(string_to_sign("SubscriptionConfirmation", &missing).is_err());
    }

    #[test]
    fn certificates_come_only_from_sns_hosts() {
        assert!(is_signing_cert_url(
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
        ));
        for forged in [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.test/x.pem",
            "https://evil.test/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com:444/x.pem",
        ] {
            assert!(!is_signing_cert_url(forged), "{forged}");
        }
    }
}
