//! Settings and calls shared by the tests that verify addresses.

use std::net::SocketAddr;
use std::time::Duration;

use mailvet::Settings;
use reqwest::Method;
use serde_json::{Value, json};

use super::app::TestApp;

/// Points the verifier at the test's DNS server and SMTP port, on loopback.
pub fn probe_settings(dns: SocketAddr, smtp_port: u16) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        settings.dns.servers = vec![dns];
        settings.dns.timeout = Duration::from_secs(1);
        settings.smtp.port = smtp_port;
        settings.smtp.timeout = Duration::from_secs(5);
        settings.smtp.allow_private_targets = true;
        settings.smtp.helo_name = Some("verifier.example.test".into());
        settings.smtp.mail_from = Some("probe@verifier.example.test".into());
    }
}

/// `POST /verify`, expecting 200; the result.
pub async fn verify(app: &TestApp, email: &str) -> Value {
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .json(&json!({"email": email})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// `POST /verify/batch`, expecting 200; the results, in input order.
pub async fn verify_batch(app: &TestApp, emails: &[String]) -> Vec<Value> {
    let reply = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({ "emails": emails })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A result's (status, reason).
pub fn verdict(result: &Value) -> (&str, &str) {
    (
        result["status"].as_str().unwrap_or_default(),
        result["reason"].as_str().unwrap_or_default(),
    )
}
