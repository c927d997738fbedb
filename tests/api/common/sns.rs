//! Signs Amazon SNS messages as SNS would, with an RSA key and a
//! self-signed certificate that `openssl` makes for the test run. Test apps
//! know the certificate under an SNS-looking URL (it is never fetched), so
//! messages signed here verify and forged ones do not.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

/// Where the test certificate is "served".
pub const CERT_URL: &str =
    "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-mailvet-test.pem";

pub struct SnsSigner {
    dir: tempfile::TempDir,
    pub pem: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package `openssl`)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl SnsSigner {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sns.us-west-2.amazonaws.com",
            "-keyout",
            key.to_str().expect("a path"),
            "-out",
            cert.to_str().expect("a path"),
        ]);
        let pem = std::fs::read_to_string(&cert).expect("the certificate");
        SnsSigner { dir, pem }
    }

    /// The one signer of this test process.
    pub fn shared() -> &'static SnsSigner {
        static SIGNER: OnceLock<SnsSigner> = OnceLock::new();
        SIGNER.get_or_init(SnsSigner::new)
    }

    /// What a test app is told it already has.
    pub fn preloaded(&self) -> Vec<(String, String)> {
        vec![(CERT_URL.to_owned(), self.pem.clone())]
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Signs `message` in place (`SignatureVersion` "1" or "2"), pointing
    /// its `SigningCertURL` at the test certificate.
    pub fn sign(&self, message: &mut Value, version: &str) {
        let object = message.as_object_mut().expect("an SNS message object");
        object.insert("SigningCertURL".into(), CERT_URL.into());
        object.insert("SignatureVersion".into(), version.into());
        let kind = object["Type"].as_str().expect("a Type").to_owned();
        let fields: &[&str] = if kind == "Notification" {
            &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ]
        } else {
            &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ]
        };
        let mut text = String::new();
        for name in fields {
            if let Some(value) = object.get(*name).and_then(Value::as_str) {
                text.push_str(&format!("{name}\n{value}\n"));
            }
        }
        let file = tempfile::NamedTempFile::new_in(self.dir.path()).expect("a file");
        std::fs::write(file.path(), text).expect("write the text to sign");
        let digest = if version == "1" { "-sha1" } else { "-sha256" };
        let signature = openssl(&[
            "dgst",
            digest,
            "-sign",
            self.key().to_str().expect("a path"),
            file.path().to_str().expect("a path"),
        ]);
        object.insert(
            "Signature".into(),
            base64::engine::general_purpose::STANDARD
                .encode(signature)
                .into(),
        );
    }

    /// A signed copy of an SNS message given as JSON bytes.
    pub fn signed(&self, body: &[u8], version: &str) -> Vec<u8> {
        let mut message: Value = serde_json::from_slice(body).expect("an SNS message");
        self.sign(&mut message, version);
        serde_json::to_vec(&message).expect("JSON")
    }
}
