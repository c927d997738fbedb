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

/// Every address of `results` has this verdict.
fn all_are(results: &[serde_json::Value], expected: (&str, &str)) {
    for result in results {
        assert_eq!(verdict(result), expected, "{result}");
    }
}

async fn batch(app: &TestApp, emails: &[String]) -> Vec<serde_json::Value> {
    let reply = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({"emails": emails})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_thousand_addresses_at_a_catch_all_domain_are_all_catch_all() {
    // `@example.test` in the mailbox table: Postfix accepts every address,
    // up to its default limit of 1,000 recipients a transaction.
    let postfix = Postfix::start("example.test", &["@example.test"], &[]);
    let (app, _dns) = app_for(&postfix).await;
    let emails: Vec<String> = (0..1000).map(|i| format!("user{i}@example.test")).collect();
    let results = batch(&app, &emails).await;
    assert_eq!(results.len(), 1000);
    all_are(&results, ("risky", "catch_all"));
    assert!(
        results
            .iter()
            .all(|result| result["flags"]["catch_all"] == true)
    );
}

#[tokio::test]
async fn postfix_s_recipient_limit_sends_the_rest_to_a_new_session() {
    // Postfix answers the 31st recipient of a transaction `452 4.5.3 Error:
    // too many recipients`: a reason to go on in a new session, never a
    // verdict.
    let mailboxes: Vec<String> = (0..60).map(|i| format!("user{i}@example.test")).collect();
    let mailbox_refs: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
    let postfix = Postfix::start_with(
        "example.test",
        &mailbox_refs,
        &[],
        &["smtpd_recipient_limit = 30"],
    );
    let (app, _dns) = app_for(&postfix).await;
    let emails: Vec<String> = (0..120)
        .map(|i| {
            if i % 2 == 0 {
                format!("user{}@example.test", i / 2)
            } else {
                format!("nobody{i}@example.test")
            }
        })
        .collect();
    let results = batch(&app, &emails).await;
    assert_eq!(results.len(), 120);
    for (i, result) in results.iter().enumerate() {
        let expected = if i % 2 == 0 {
            ("deliverable", "accepted")
        } else {
            ("undeliverable", "mailbox_not_found")
        };
        assert_eq!(verdict(result), expected, "{i}: {result}");
    }
}
