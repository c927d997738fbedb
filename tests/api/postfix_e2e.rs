//! End to end against a real MTA: Debian's Postfix on a loopback port with
//! a virtual mailbox table, reached through the test's own DNS server.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, Zone, example_zone};
use crate::common::postfix::Postfix;
use crate::common::probe::{probe_settings, verdict, verify};

/// A mailvet whose DNS sends `example.test` (and `other.test`, which
/// Postfix does not host) to the Postfix instance.
async fn app_for(postfix: &Postfix) -> (TestApp, TestDns) {
    let dns = TestDns::start(vec![
        example_zone(),
        Zone::new("other.test").mx("other.test", 10, "mx.example.test"),
    ])
    .await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, postfix.port)).await;
    (app, dns)
}

#[tokio::test]
async fn postfix_answers_give_the_verdicts_a_postmaster_would() {
    let postfix = Postfix::start(
        "example.test",
        &["alice@example.test", "full@example.test"],
        &["full@example.test 552 5.2.2 Mailbox full"],
    );
    let (app, _dns) = app_for(&postfix).await;

    let alice = verify(&app, "alice@example.test").await;
    assert_eq!(verdict(&alice), ("deliverable", "accepted"), "{alice}");
    assert_eq!(alice["smtp"]["code"], 250);
    assert_eq!(alice["smtp"]["enhanced_code"], "2.1.5");

    let bob = verify(&app, "bob@example.test").await;
    assert_eq!(
        verdict(&bob),
        ("undeliverable", "mailbox_not_found"),
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
    assert_eq!(verdict(&full), ("risky", "mailbox_full"), "{full}");
    assert_eq!(
        full["smtp"]["message"],
        "<full@example.test>: Recipient address rejected: Mailbox full"
    );

    // A domain Postfix does not host: relay denied is about us, not the
    // mailbox.
    let other = verify(&app, "carol@other.test").await;
    assert_eq!(verdict(&other), ("unknown", "blocked"), "{other}");
    assert_eq!(
        other["smtp"]["message"],
        "<carol@other.test>: Relay access denied"
    );
    assert_eq!(app.get("/suppressions/carol@other.test").await.status, 404);
}

#[tokio::test]
async fn a_large_batch_stays_under_postfix_error_limits() {
    let postfix = Postfix::start("example.test", &["alice@example.test"], &[]);
    let (app, _dns) = app_for(&postfix).await;
    // 40 unknown users: Postfix would delay after 10 errors in a session and
    // disconnect after 20. Every one must still come back as not found.
    let emails: Vec<String> = (0..40).map(|i| format!("nobody{i}@example.test")).collect();
    let started = Instant::now();
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
