//! Adding, reading and removing suppressions over HTTP, and how the API
//! answers bodies it cannot accept.

use reqwest::Method;
use serde_json::json;

use crate::common;
use crate::common::app::{Db, TestApp};

async fn add(app: &TestApp, body: serde_json::Value) -> common::app::Reply {
    app.send(app.request(Method::POST, "/suppressions").json(&body))
        .await
}

async fn suppression_round_trip(db: Db) {
    let app = TestApp::spawn_on(db).await;
    let created = add(
        &app,
        json!({"email": "Alice@Bücher.test", "diagnostic": "asked to stop"}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let entry = created.json();
    assert_eq!(entry["email"], "Alice@xn--bcher-kva.test");
    assert_eq!(entry["reason"], "manual");
    assert_eq!(entry["source"], "api");
    assert_eq!(entry["diagnostic"], "asked to stop");
    assert_eq!(entry["deleted"], false);

    // Matching ignores case and the domain's Unicode form.
    let read = app.get("/suppressions/alice@b%C3%BCcher.TEST").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), entry);

    let removed = app
        .send(app.request(Method::DELETE, "/suppressions/ALICE@xn--bcher-kva.test"))
        .await;
    assert_eq!(removed.status, 204);
    assert!(removed.body.is_empty());
    app.get("/suppressions/alice@xn--bcher-kva.test")
        .await
        .assert_error(404, "not_found");
    app.send(app.request(Method::DELETE, "/suppressions/alice@xn--bcher-kva.test"))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_suppression_can_be_added_read_and_removed_on_sqlite() {
    suppression_round_trip(Db::Sqlite).await;
}

#[tokio::test]
async fn a_suppression_can_be_added_read_and_removed_on_postgres() {
    suppression_round_trip(Db::Postgres).await;
}

#[tokio::test]
async fn adding_an_address_twice_keeps_the_first_entry() {
    let app = TestApp::spawn().await;
    let first = add(
        &app,
        json!({"email": "bob@example.test", "reason": "complaint"}),
    )
    .await;
    assert_eq!(first.status, 201);
    let again = add(
        &app,
        json!({"email": "BOB@example.test", "reason": "manual"}),
    )
    .await;
    assert_eq!(again.status, 200, "already suppressed is not an error");
    assert_eq!(
        again.json(),
        first.json(),
        "the existing entry and its reason are kept"
    );
}

#[tokio::test]
async fn an_invalid_address_is_a_422_that_says_why() {
    let app = TestApp::spawn().await;
    let reply = add(&app, json!({"email": "john..doe@example.test"})).await;
    reply.assert_error(422, "invalid_request");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("misplaced dot"), "{message}");
    app.get("/suppressions/not-an-address")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn an_unknown_reason_or_field_is_a_422() {
    let app = TestApp::spawn().await;
    add(
        &app,
        json!({"email": "c@example.test", "reason": "because"}),
    )
    .await
    .assert_error(422, "invalid_request");
    add(&app, json!({"email": "c@example.test", "resaon": "manual"}))
        .await
        .assert_error(422, "invalid_request");
    add(&app, json!({"address": "c@example.test"}))
        .await
        .assert_error(422, "invalid_request");
    add(&app, json!({"email": 42}))
        .await
        .assert_error(422, "invalid_request");
    assert_eq!(
        app.get("/suppressions/c@example.test").await.status,
        404,
        "nothing written"
    );
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .header("content-type", "application/json")
                .body(r#"{"email": "d@example.test""#),
        )
        .await;
    reply.assert_error(400, "malformed_json");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .header("content-type", "text/plain")
                .body("email=d@example.test"),
        )
        .await;
    reply.assert_error(415, "unsupported_media_type");
    let no_type = app
        .send(
            app.request(Method::POST, "/suppressions")
                .body(r#"{"email":"d@example.test"}"#),
        )
        .await;
    no_type.assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_and_the_service_keeps_serving() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.http.max_body_bytes = 64 * 1024
    })
    .await;
    let padding = "x".repeat(200 * 1024);
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"email": "e@example.test", "diagnostic": "{padding}"}}"#
                )),
        )
        .await;
    reply.assert_error(413, "payload_too_large");
    assert_eq!(
        app.get("/suppressions/e@example.test").await.status,
        404,
        "nothing written"
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn the_default_body_limit_is_two_mebibytes() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(3 * 1024 * 1024);
    let reply = app
        .send(
            app.request(Method::POST, "/suppressions")
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"email": "f@example.test", "diagnostic": "{padding}"}}"#
                )),
        )
        .await;
    reply.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn an_overlong_note_is_a_422() {
    let app = TestApp::spawn().await;
    add(
        &app,
        json!({"email": "g@example.test", "diagnostic": "n".repeat(1001)}),
    )
    .await
    .assert_error(422, "invalid_request");
}

#[tokio::test]
async fn suppression_endpoints_are_503_while_the_database_is_gone() {
    use crate::common::db::{pg_socket_addr, via};
    use crate::common::proxy::TcpProxy;
    use mailvet::secret::{ExposeSecret, SecretString};

    let mut proxy = TcpProxy::start(pg_socket_addr()).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(Db::Postgres, |settings| {
        settings.database.url =
            SecretString::from(via(settings.database.url.expose_secret(), proxy_addr));
        settings.database.acquire_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    proxy.down();
    add(&app, json!({"email": "h@example.test"}))
        .await
        .assert_error(503, "database_unavailable");
    proxy.up().await;
    let created = add(&app, json!({"email": "h@example.test"})).await;
    assert_eq!(
        created.status,
        201,
        "recovers without a restart: {}",
        created.text()
    );
}
