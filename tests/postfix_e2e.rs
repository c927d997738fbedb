//! End to end against a real MTA: Debian's Postfix on a loopback port with
//! a virtual mailbox table, reached through the test's own DNS server.

mod common;

use std::time::Duration;

use common::app::{Db, TestApp};
use common::dns::{TestDns, Zone};
use common::postfix::Postfix;
use reqwest::Method;
use serde_json::{Value, json};

async fn verify(app: &TestApp, email: &str) -> Value {
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .json(&json!({"email": email})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn postfix_answers_give_the_verdicts_a_postmaster_would() {
    let postfix = Postfix::start(
        "example.test",
        &["alice@example.test", "full@example.test"],
        &["full@example.test 552 5.2.2 Mailbox full"],
    );
    let dns = TestDns::start(vec![
        Zone::new("example.test")
            .mx("example.test", 10, "mx.example.test")
            .ip("mx.example.test", "127.0.0.1"),
        // A domain whose MX is this Postfix, which does not host it.
        Zone::new("other.test").mx("other.test", 10, "mx.example.test"),
    ])
    .await;
    let dns_addr = dns.addr;
    let port = postfix.port;
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        settings.dns_servers = vec![dns_addr];
        settings.smtp_port = port;
        settings.smtp_timeout = Duration::from_secs(5);
        settings.allow_private_targets = true;
        settings.helo_name = Some("verifier.example.test".into());
        settings.mail_from = Some("probe@verifier.example.test".into());
    })
    .await;

    let alice = verify(&app, "alice@example.test").await;
    assert_eq!(
        (alice["status"].as_str(), alice["reason"].as_str()),
        (Some("deliverable"), Some("accepted")),
        "{alice}"
    );
    assert_eq!(alice["smtp"]["code"], 250);
    assert_eq!(alice["smtp"]["enhanced_code"], "2.1.5");

    let bob = verify(&app, "bob@example.test").await;
    assert_eq!(
        (bob["status"].as_str(), bob["reason"].as_str()),
        (Some("undeliverable"), Some("mailbox_not_found")),
        "{bob}"
    );
    assert_eq!(bob["smtp"]["code"], 550);
    assert_eq!(bob["smtp"]["enhanced_code"], "5.1.1");
    assert_eq!(
        bob["smtp"]["message"],
        "<bob@example.test>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(app.get("/suppressions/bob@example.test").await.status, 200);

    let full = verify(&app, "full@example.test").await;
    assert_eq!(
        (full["status"].as_str(), full["reason"].as_str()),
        (Some("risky"), Some("mailbox_full")),
        "{full}"
    );
    assert_eq!(
        full["smtp"]["message"],
        "<full@example.test>: Recipient address rejected: Mailbox full"
    );

    // A domain Postfix does not host: relay denied is about us, not the
    // mailbox.
    let other = verify(&app, "carol@other.test").await;
    assert_eq!(
        (other["status"].as_str(), other["reason"].as_str()),
        (Some("unknown"), Some("blocked")),
        "{other}"
    );
    assert_eq!(
        other["smtp"]["message"],
        "<carol@other.test>: Relay access denied"
    );
    assert_eq!(app.get("/suppressions/carol@other.test").await.status, 404);
}

#[tokio::test]
async fn a_large_batch_stays_under_postfix_error_limits() {
    let postfix = Postfix::start("example.test", &["alice@example.test"], &[]);
    let dns = TestDns::start(vec![
        Zone::new("example.test")
            .mx("example.test", 10, "mx.example.test")
            .ip("mx.example.test", "127.0.0.1"),
    ])
    .await;
    let dns_addr = dns.addr;
    let port = postfix.port;
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        settings.dns_servers = vec![dns_addr];
        settings.smtp_port = port;
        settings.smtp_timeout = Duration::from_secs(5);
        settings.allow_private_targets = true;
        settings.helo_name = Some("verifier.example.test".into());
    })
    .await;
    // 40 unknown users: Postfix would delay after 10 errors in a session and
    // disconnect after 20. Every one must still come back as not found.
    let emails: Vec<String> = (0..40).map(|i| format!("nobody{i}@example.test")).collect();
    let started = std::time::Instant::now();
    let reply = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({"emails": emails})),
        )
        .await;
    let results = reply.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 40);
    for result in &results {
        assert_eq!(result["reason"], "mailbox_not_found", "{result}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reconnecting before the error limit avoids Postfix's 1 s delays (took {:?})",
        started.elapsed()
    );
}
