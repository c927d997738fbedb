//! `POST /bounces`: JSON bounces and raw bounce messages, what they
//! suppress, and how bad input is refused without writing anything.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};

const CORPUS: &str = "tests/fixtures/bounces/sisimai/maildir";

async fn json_bounce(app: &TestApp, body: Value) -> Reply {
    app.send(app.request(Method::POST, "/bounces").json(&body))
        .await
}

async fn raw_bounce(app: &TestApp, file: &str) -> Value {
    let raw = std::fs::read(format!("{CORPUS}/{file}")).expect("a corpus file");
    let reply = app
        .send(
            app.request(Method::POST, "/bounces")
                .header("content-type", "message/rfc822")
                .body(raw),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn suppression(app: &TestApp, email: &str) -> Option<Value> {
    let reply = app.get(&format!("/suppressions/{email}")).await;
    (reply.status == 200).then(|| reply.json())
}

#[tokio::test]
async fn a_hard_json_bounce_suppresses_with_its_evidence() {
    let app = TestApp::spawn().await;
    let reply = json_bounce(
        &app,
        json!({"email": "Gone@Example.test", "status": "5.1.1", "smtp_code": 550, "diagnostic": "550 5.1.1 <gone@example.test>: User unknown"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let recipient = &reply.json()["recipients"][0];
    assert_eq!(recipient["email"], "Gone@example.test");
    assert_eq!(recipient["kind"], "hard");
    assert_eq!(recipient["reason"], "mailbox_not_found");
    assert_eq!(recipient["suppressed"], true);
    let entry = suppression(&app, "gone@example.test")
        .await
        .expect("suppressed");
    assert_eq!(entry["reason"], "mailbox_not_found");
    assert_eq!(entry["source"], "bounce");
    assert_eq!(entry["enhanced_code"], "5.1.1");
    assert_eq!(entry["smtp_code"], 550);
}

#[tokio::test]
async fn a_bounce_about_the_sender_suppresses_nothing() {
    let app = TestApp::spawn().await;
    let reply = json_bounce(
        &app,
        json!({"email": "fine@example.test", "status": "5.7.1", "diagnostic": "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"}),
    )
    .await;
    let recipient = &reply.json()["recipients"][0];
    assert_eq!(recipient["kind"], "undetermined");
    assert_eq!(recipient["reason"], "blocked");
    assert_eq!(recipient["suppressed"], false);
    assert!(suppression(&app, "fine@example.test").await.is_none());
}

#[tokio::test]
async fn soft_bounces_suppress_only_past_the_limit() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.bounces.soft_bounce_limit = 3
    })
    .await;
    let soft = json!({"email": "full@example.test", "status": "4.2.2", "diagnostic": "452 4.2.2 Mailbox full"});
    for attempt in 1..=3 {
        let reply = json_bounce(&app, soft.clone()).await;
        let recipient = &reply.json()["recipients"][0];
        assert_eq!(recipient["kind"], "soft");
        assert_eq!(recipient["suppressed"], attempt == 3, "attempt {attempt}");
    }
    let entry = suppression(&app, "full@example.test")
        .await
        .expect("suppressed after 3");
    assert_eq!(entry["reason"], "soft_bounce_limit");
}

#[tokio::test]
async fn a_raw_dsn_yields_its_recipients_on_sqlite_and_postgres() {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn_on(db).await;
        let report = raw_bounce(&app, "lhost-postfix-01.eml").await;
        let recipients = report["recipients"].as_array().expect("recipients");
        assert_eq!(recipients.len(), 1, "{report}");
        assert_eq!(recipients[0]["email"], "kijitora@example.org");
        assert_eq!(recipients[0]["status"], "5.1.1");
        assert_eq!(recipients[0]["kind"], "hard");
        assert!(suppression(&app, "kijitora@example.org").await.is_some());
    }
}

#[tokio::test]
async fn a_complaint_report_suppresses_the_complainer() {
    let app = TestApp::spawn().await;
    let report = raw_bounce(&app, "arf-01.eml").await;
    let recipients = report["recipients"].as_array().expect("recipients");
    assert!(!recipients.is_empty(), "{report}");
    assert!(
        recipients
            .iter()
            .all(|r| r["kind"] == "complaint" && r["suppressed"] == true),
        "{report}"
    );
    let email = recipients[0]["email"].as_str().expect("an address");
    let entry = suppression(&app, email).await.expect("suppressed");
    assert_eq!(entry["reason"], "complaint");
}

#[tokio::test]
async fn a_delayed_delivery_is_not_a_bounce() {
    let app = TestApp::spawn().await;
    let dsn = "From: MAILER-DAEMON@mx.example.org\r\nTo: sender@example.com\r\nSubject: Delayed Mail\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
        --b1\r\nContent-Type: text/plain\r\n\r\nStill trying.\r\n\
        --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
        Final-Recipient: rfc822; slow@example.net\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n--b1--\r\n";
    let reply = app
        .send(
            app.request(Method::POST, "/bounces")
                .header("content-type", "message/rfc822")
                .body(dsn),
        )
        .await;
    let recipient = &reply.json()["recipients"][0];
    assert_eq!(recipient["email"], "slow@example.net");
    assert_eq!(recipient["kind"], "undetermined");
    assert_eq!(recipient["suppressed"], false);
}

#[tokio::test]
async fn bad_bounces_are_refused_precisely_and_write_nothing() {
    let app = TestApp::spawn().await;
    json_bounce(&app, json!({"email": "not an address", "status": "5.1.1"}))
        .await
        .assert_error(422, "invalid_request");
    let reply = json_bounce(&app, json!({"email": "a@example.test", "status": "five"})).await;
    reply.assert_error(422, "invalid_request");
    assert!(reply.text().contains("RFC 3463"));
    json_bounce(&app, json!({"email": "a@example.test", "smtp_code": 999}))
        .await
        .assert_error(422, "invalid_request");
    json_bounce(&app, json!({"email": "a@example.test", "colour": "red"}))
        .await
        .assert_error(422, "invalid_request");
    app.send(
        app.request(Method::POST, "/bounces")
            .header("content-type", "application/json")
            .body("{\"email\":"),
    )
    .await
    .assert_error(400, "malformed_json");
    app.send(
        app.request(Method::POST, "/bounces")
            .header("content-type", "image/png")
            .body("\u{89}PNG"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    app.send(
        app.request(Method::POST, "/bounces")
            .header("content-type", "message/rfc822")
            .body(""),
    )
    .await
    .assert_error(422, "invalid_request");
    app.send(
        app.request(Method::POST, "/bounces")
            .header("content-type", "message/rfc822")
            .body(vec![0xffu8, 0, 1, 2]),
    )
    .await
    .assert_error(422, "invalid_request");
    assert!(suppression(&app, "a@example.test").await.is_none());
    let feed = app.get("/suppressions").await.json();
    assert_eq!(feed["data"], json!([]), "nothing was written");
}

#[tokio::test]
async fn a_message_that_trips_the_mime_parser_is_answered_and_the_service_keeps_serving() {
    let app = TestApp::spawn().await;
    let raw = std::fs::read("tests/fixtures/fuzz/bounce_message-mail-parser-panic.eml")
        .expect("the fuzz finding");
    let reply = app
        .send(
            app.request(Method::POST, "/bounces")
                .header("content-type", "message/rfc822")
                .body(raw),
        )
        .await;
    assert!(
        matches!(reply.status, 200 | 422),
        "{} {}",
        reply.status,
        reply.text()
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}
