//! Every suppression shows the evidence that caused it: the mail server's
//! reply to a probe, the DNS answer, the bounce report, or the note of a
//! hand-made entry; entries made before evidence was kept show `null`.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verdict, verify};
use crate::common::smtp_peer::{Script, SmtpPeer};

async fn entry(app: &TestApp, email: &str) -> Value {
    let reply = app.get(&format!("/suppressions/{email}")).await;
    assert_eq!(reply.status, 200, "{email} is suppressed: {}", reply.text());
    reply.json()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 time: {value}"))
}

async fn a_verification_keeps_the_reply_and_the_dns_answer(db: Db) {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = TestApp::spawn_with(db, probe_settings(dns.addr, peer.port())).await;

    let result = verify(&app, "bob@example.test").await;
    assert_eq!(verdict(&result), ("undeliverable", "mailbox_not_found"));
    let bob = entry(&app, "bob@example.test").await;
    assert_eq!(bob["source"], "verify");
    let evidence = &bob["evidence"];
    assert_eq!(evidence["kind"], "smtp_reply", "{bob}");
    assert_eq!(evidence["code"], 550);
    assert_eq!(evidence["enhanced_code"], "5.1.1");
    assert_eq!(
        evidence["text"],
        "<bob@example.test>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    assert_eq!(evidence["host"], "mx.example.test");
    assert_eq!(evidence["domain"], Value::Null);
    assert_eq!(evidence["origin"], Value::Null);
    assert_eq!(
        time(&evidence["observed_at"]),
        time(&result["checked_at"]),
        "observed when the probe was answered"
    );

    let gone = verify(&app, "carol@nonexistent.example.test").await;
    assert_eq!(verdict(&gone), ("undeliverable", "no_such_domain"));
    let carol = entry(&app, "carol@nonexistent.example.test").await;
    let evidence = &carol["evidence"];
    assert_eq!(evidence["kind"], "dns", "{carol}");
    assert_eq!(evidence["domain"], "nonexistent.example.test");
    assert!(
        evidence["text"]
            .as_str()
            .is_some_and(|text| text.contains("NXDOMAIN")),
        "the answer in words: {evidence}"
    );
    assert_eq!(evidence["code"], Value::Null);
    assert_eq!(evidence["host"], Value::Null);
}

#[tokio::test]
async fn a_verification_keeps_the_reply_and_the_dns_answer_on_sqlite() {
    a_verification_keeps_the_reply_and_the_dns_answer(Db::Sqlite).await;
}

#[tokio::test]
async fn a_verification_keeps_the_reply_and_the_dns_answer_on_postgres() {
    a_verification_keeps_the_reply_and_the_dns_answer(Db::Postgres).await;
}

/// A Postfix-style RFC 3464 report for one recipient.
const DSN: &str = "From: MAILER-DAEMON@mta.example.net (Mail Delivery System)\r
To: sender@shop.example\r
Subject: Undelivered Mail Returned to Sender\r
Date: Sat, 28 Nov 2026 10:00:00 +0000\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/plain\r
\r
This is the mail system at host mta.example.net.\r
\r
--b1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mta.example.net\r
Arrival-Date: Sat, 28 Nov 2026 09:59:58 +0000\r
\r
Final-Recipient: rfc822; gone@example.org\r
Original-Recipient: rfc822;gone@example.org\r
Action: failed\r
Status: 5.1.1\r
Remote-MTA: dns; mx.example.org\r
Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown\r
\r
--b1--\r
";

async fn a_bounce_report_keeps_its_status_and_text(db: Db) {
    let app = TestApp::spawn_on(db).await;
    let before = Utc::now();
    let reply = app
        .send(
            app.request(Method::POST, "/bounces")
                .header("content-type", "message/rfc822")
                .body(DSN),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["recipients"][0]["suppressed"], true);

    let gone = entry(&app, "gone@example.org").await;
    assert_eq!(gone["source"], "bounce");
    let evidence = &gone["evidence"];
    assert_eq!(evidence["kind"], "dsn", "{gone}");
    assert_eq!(evidence["origin"], "message");
    assert_eq!(evidence["enhanced_code"], "5.1.1");
    assert_eq!(evidence["code"], 550);
    assert!(
        evidence["text"]
            .as_str()
            .is_some_and(|text| text.contains("User unknown")),
        "{evidence}"
    );
    assert_eq!(evidence["host"], "mx.example.org");
    let observed = time(&evidence["observed_at"]);
    assert!(
        observed >= before - chrono::Duration::milliseconds(1) && observed <= Utc::now(),
        "observed when the report arrived: {observed}"
    );

    // A JSON report and an ESP's event are reports too.
    let json_report = app
        .send(app.request(Method::POST, "/bounces").json(
            &json!({"email": "left@example.org", "status": "5.2.1", "diagnostic": "account disabled"}),
        ))
        .await;
    assert_eq!(json_report.status, 200, "{}", json_report.text());
    let left = entry(&app, "left@example.org").await;
    assert_eq!(left["evidence"]["kind"], "dsn");
    assert_eq!(left["evidence"]["origin"], "json");
    assert_eq!(left["evidence"]["enhanced_code"], "5.2.1");
    assert_eq!(left["evidence"]["text"], "account disabled");

    let postmark = app
        .send(
            app.request(Method::POST, "/bounces/postmark")
                .header("content-type", "application/json")
                .body(
                    std::fs::read("tests/fixtures/webhooks/postmark-hard-bounce.json")
                        .expect("a webhook fixture"),
                ),
        )
        .await;
    assert_eq!(postmark.status, 200, "{}", postmark.text());
    let john = entry(&app, "john@example.com").await;
    assert_eq!(john["evidence"]["kind"], "dsn", "{john}");
    assert_eq!(john["evidence"]["origin"], "postmark");
}

#[tokio::test]
async fn a_bounce_report_keeps_its_status_and_text_on_sqlite() {
    a_bounce_report_keeps_its_status_and_text(Db::Sqlite).await;
}

#[tokio::test]
async fn a_bounce_report_keeps_its_status_and_text_on_postgres() {
    a_bounce_report_keeps_its_status_and_text(Db::Postgres).await;
}

#[tokio::test]
async fn a_hand_made_entry_keeps_its_note_and_is_never_overwritten() {
    let app = TestApp::spawn().await;
    let added = app
        .send(app.request(Method::POST, "/suppressions").json(
            &json!({"email": "kim@example.test", "reason": "complaint", "diagnostic": "called support"}),
        ))
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let evidence = &added.json()["evidence"];
    assert_eq!(evidence["kind"], "note");
    assert_eq!(evidence["text"], "called support");
    assert_eq!(evidence["code"], Value::Null);
    assert_eq!(entry(&app, "kim@example.test").await["evidence"], *evidence);

    // Without a note, the evidence is still that a person added it.
    let bare = app
        .send(
            app.request(Method::POST, "/suppressions")
                .json(&json!({"email": "lee@example.test"})),
        )
        .await;
    assert_eq!(bare.json()["evidence"]["kind"], "note");
    assert_eq!(bare.json()["evidence"]["text"], Value::Null);

    // A bounce for an address added by hand keeps the hand-made evidence.
    app.send(app.request(Method::POST, "/bounces").json(
        &json!({"email": "kim@example.test", "status": "5.1.1", "diagnostic": "User unknown"}),
    ))
    .await;
    assert_eq!(entry(&app, "kim@example.test").await["evidence"], *evidence);

    // The feed shows the evidence too.
    let feed = app.get("/suppressions").await.json();
    assert_eq!(feed["data"][0]["evidence"], *evidence);
}

#[tokio::test]
async fn an_entry_made_before_evidence_was_kept_shows_null() {
    let app = TestApp::spawn().await;
    // A row as the earlier schema wrote it: no evidence column set.
    let pool = sqlx::SqlitePool::connect(&app.database_url)
        .await
        .expect("open the database");
    sqlx::query(
        "insert into suppressions
                (address_key, email, reason, source, smtp_code, enhanced_code, diagnostic,
                 mx_host, deleted, seq, created_at, updated_at)
         values ('old@example.test', 'old@example.test', 'mailbox_not_found', 'verify', 550,
                 '5.1.1', 'User unknown', 'mx.example.test', 0, 1, 1764324000000, 1764324000000)",
    )
    .execute(&pool)
    .await
    .expect("insert");
    sqlx::query("update suppression_seq set last_seq = 1")
        .execute(&pool)
        .await
        .expect("move the sequence");
    pool.close().await;

    let old = entry(&app, "old@example.test").await;
    assert_eq!(old["evidence"], Value::Null);
    assert_eq!(
        old["smtp_code"], 550,
        "the flat fields are kept as they were"
    );
    assert_eq!(old["enhanced_code"], "5.1.1");
    let feed = app.get("/suppressions").await.json();
    assert_eq!(feed["data"][0]["evidence"], Value::Null);
}
