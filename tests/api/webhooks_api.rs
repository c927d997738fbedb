//! `POST /bounces/{provider}` with the providers' own documented payloads.

use reqwest::Method;
use serde_json::Value;

use crate::common;
use crate::common::app::{Reply, TestApp};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/fixtures/webhooks/{name}")).expect("a webhook fixture")
}

/// POSTs a webhook; an SNS message (`ses`, a JSON object with a `Type`)
/// is signed first, as SNS signs it.
async fn post(app: &TestApp, provider: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let is_sns = provider == "ses"
        && serde_json::from_slice::<Value>(&body)
            .is_ok_and(|message| message.get("Type").is_some());
    let body = if is_sns {
        common::sns::SnsSigner::shared().signed(&body, "1")
    } else {
        body
    };
    app.send(
        app.request(Method::POST, &format!("/bounces/{provider}"))
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

async fn suppressed(app: &TestApp, email: &str) -> Option<Value> {
    let reply = app.get(&format!("/suppressions/{email}")).await;
    (reply.status == 200).then(|| reply.json())
}

#[tokio::test]
async fn an_ses_permanent_bounce_arriving_through_sns_suppresses() {
    let app = TestApp::spawn().await;
    // SNS posts its JSON as text/plain.
    let reply = post(
        &app,
        "ses",
        "text/plain; charset=UTF-8",
        fixture("ses-bounce-permanent.json"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let recipient = &reply.json()["recipients"][0];
    assert_eq!(recipient["email"], "jane@example.com");
    assert_eq!(recipient["kind"], "hard");
    assert_eq!(recipient["suppressed"], true);
    let entry = suppressed(&app, "jane@example.com")
        .await
        .expect("suppressed");
    assert_eq!(entry["source"], "bounce");
}

#[tokio::test]
async fn ses_transient_bounces_complaints_and_deliveries_are_told_apart() {
    let app = TestApp::spawn().await;
    let transient = post(
        &app,
        "ses",
        "application/json",
        fixture("ses-bounce-transient.json"),
    )
    .await
    .json();
    assert_eq!(transient["recipients"][0]["kind"], "soft");
    assert_eq!(transient["recipients"][0]["suppressed"], false);
    let complaint = post(&app, "ses", "text/plain", fixture("ses-complaint.json"))
        .await
        .json();
    assert!(complaint["recipients"].as_array().is_some_and(|r| {
        r.iter()
            .all(|r| r["kind"] == "complaint" && r["suppressed"] == true)
    }));
    let delivery = post(&app, "ses", "text/plain", fixture("ses-delivery.json"))
        .await
        .json();
    assert_eq!(delivery["recipients"], serde_json::json!([]));
}

#[tokio::test]
async fn a_forged_sns_confirmation_is_refused_without_fetching_anything() {
    let app = TestApp::spawn().await;
    // A confirmation whose SubscribeURL points at a server of the test's.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut body: Value =
        serde_json::from_slice(&fixture("ses-subscription-confirmation.json")).expect("JSON");
    body["SubscribeURL"] = Value::String(format!(
        "http://{}/confirm",
        listener.local_addr().expect("address")
    ));
    let reply = post(
        &app,
        "ses",
        "text/plain",
        serde_json::to_vec(&body).expect("JSON"),
    )
    .await;
    reply.assert_error(422, "invalid_request");
    assert!(reply.text().contains("SubscribeURL"));
    assert!(listener.accept().is_err(), "nothing was fetched");
}

#[tokio::test]
async fn sendgrid_events_suppress_bounces_and_spam_reports_only() {
    let app = TestApp::spawn().await;
    let reply = post(
        &app,
        "sendgrid",
        "application/json",
        fixture("sendgrid-events.json"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    let kind_of = |email: &str| {
        report["recipients"]
            .as_array()
            .and_then(|all| all.iter().find(|r| r["email"] == email))
            .map(|r| r["kind"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        kind_of("spamreport@example.test").as_deref(),
        Some("complaint")
    );
    assert_eq!(
        kind_of("blocked@example.test").as_deref(),
        Some("undetermined")
    );
    assert_eq!(
        kind_of("delivered@example.test"),
        None,
        "deliveries are not bounces"
    );
    assert!(suppressed(&app, "spamreport@example.test").await.is_some());
    assert!(
        suppressed(&app, "blocked@example.test").await.is_none(),
        "blocked is about the sender"
    );
    assert!(suppressed(&app, "open@example.test").await.is_none());
}

#[tokio::test]
async fn postmark_and_mailgun_hard_bounces_suppress_and_sender_blocks_do_not() {
    let app = TestApp::spawn().await;
    let hard = post(
        &app,
        "postmark",
        "application/json",
        fixture("postmark-hard-bounce.json"),
    )
    .await
    .json();
    assert_eq!(hard["recipients"][0]["kind"], "hard", "{hard}");
    assert!(suppressed(&app, "john@example.com").await.is_some());

    let permanent = post(
        &app,
        "mailgun",
        "application/json",
        fixture("mailgun-failed-permanent.json"),
    )
    .await
    .json();
    assert_eq!(
        permanent["recipients"][0]["email"],
        "badrecipient@example.test"
    );
    assert_eq!(
        permanent["recipients"][0]["suppressed"], true,
        "{permanent}"
    );
    // Mailgun's temporary failure example is a blocklisting of the sender.
    let temporary = post(
        &app,
        "mailgun",
        "application/json",
        fixture("mailgun-failed-temporary.json"),
    )
    .await
    .json();
    assert_eq!(
        temporary["recipients"][0]["reason"], "blocked",
        "{temporary}"
    );
    assert_eq!(temporary["recipients"][0]["suppressed"], false);
    assert!(
        suppressed(&app, "tempfailrecipient@example.test")
            .await
            .is_none()
    );
    let complained = post(
        &app,
        "mailgun",
        "application/json",
        fixture("mailgun-complained.json"),
    )
    .await
    .json();
    assert_eq!(complained["recipients"][0]["kind"], "complaint");
}

#[tokio::test]
async fn bad_webhook_bodies_and_unknown_providers_are_refused() {
    let app = TestApp::spawn().await;
    post(
        &app,
        "sendgrid",
        "application/json",
        b"{\"event\": \"bounce\"}".to_vec(),
    )
    .await
    .assert_error(422, "invalid_request");
    post(&app, "ses", "text/plain", b"not json".to_vec())
        .await
        .assert_error(422, "invalid_request");
    post(&app, "sparkpost", "application/json", b"[]".to_vec())
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/suppressions").await.json()["data"],
        serde_json::json!([])
    );
}

/// A Mailgun body as Mailgun signs it: HMAC-SHA256 of timestamp + token.
pub(crate) fn signed_mailgun(key: &str, timestamp: i64) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture("mailgun-failed-permanent.json")).expect("JSON");
    let token = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        format!("{timestamp}{token}").as_bytes(),
    );
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    body["signature"] = serde_json::json!({
        "timestamp": timestamp.to_string(),
        "token": token,
        "signature": hex,
    });
    serde_json::to_vec(&body).expect("JSON")
}

#[tokio::test]
async fn with_a_signing_key_only_signed_mailgun_webhooks_are_taken() {
    let app = TestApp::spawn_with(common::app::Db::Sqlite, |settings| {
        settings.keys.mailgun_signing_key =
            Some(mailvet::secret::SecretString::from("mg-signing-key"));
    })
    .await;
    let now = chrono::Utc::now().timestamp();

    // The fixture's own signature was made with another key.
    post(
        &app,
        "mailgun",
        "application/json",
        fixture("mailgun-failed-permanent.json"),
    )
    .await
    .assert_error(401, "invalid_signature");
    post(
        &app,
        "mailgun",
        "application/json",
        signed_mailgun("another-key", now),
    )
    .await
    .assert_error(401, "invalid_signature");
    post(
        &app,
        "mailgun",
        "application/json",
        signed_mailgun("mg-signing-key", now - 7200),
    )
    .await
    .assert_error(401, "invalid_signature");
    let found = fixture_recipient();
    assert!(
        suppressed(&app, &found).await.is_none(),
        "nothing refused was recorded"
    );

    let reply = post(
        &app,
        "mailgun",
        "application/json",
        signed_mailgun("mg-signing-key", now),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(suppressed(&app, &found).await.is_some());
}

/// The recipient of the Mailgun permanent-failure fixture.
fn fixture_recipient() -> String {
    let body: Value =
        serde_json::from_slice(&fixture("mailgun-failed-permanent.json")).expect("JSON");
    body["event-data"]["recipient"]
        .as_str()
        .expect("a recipient")
        .to_owned()
}
