//! The service's own endpoints and the behaviour every endpoint shares:
//! health, readiness, metrics, the served contract, error bodies, request
//! ids, compression.

use std::time::{Duration, Instant};

use mailvet::secret::{ExposeSecret, SecretString};
use reqwest::Method;

use crate::common::app::{Db, TestApp};
use crate::common::db::{pg_socket_addr, via};
use crate::common::proxy::TcpProxy;

#[tokio::test]
async fn healthz_answers_ok_with_the_version() {
    let app = TestApp::spawn().await;
    let reply = app.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
    assert_eq!(reply.json()["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_names_the_sqlite_backend() {
    let app = TestApp::spawn_on(Db::Sqlite).await;
    let reply = app.get("/readyz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["database"], "sqlite");
}

#[tokio::test]
async fn readyz_names_the_postgres_backend() {
    let app = TestApp::spawn_on(Db::Postgres).await;
    let reply = app.get("/readyz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["database"], "postgres");
}

#[tokio::test]
async fn readyz_is_503_while_postgres_is_gone_and_200_again_when_it_is_back() {
    let mut proxy = TcpProxy::start(pg_socket_addr()).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(Db::Postgres, |settings| {
        let url = via(settings.database.url.expose_secret(), proxy_addr);
        settings.database.url = SecretString::from(url);
    })
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);

    proxy.down();
    // The answer is kept for a second (READINESS_TTL), and a check waits a
    // second for the database: readiness fails within about two.
    let started = Instant::now();
    let reply = loop {
        let reply = app.get("/readyz").await;
        if reply.status != 200 || started.elapsed() > Duration::from_secs(5) {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reply.assert_error(503, "database_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "readiness failed within 3 s (took {:?})",
        started.elapsed()
    );
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz").await.status, 200);

    proxy.up().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/readyz").await;
        if reply.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not come back: {}",
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_requests_by_route() {
    let app = TestApp::spawn().await;
    app.get("/healthz").await;
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain"))
    );
    let text = reply.text();
    assert!(
        text.contains("# TYPE mailvet_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("mailvet_http_requests_total{")
                && line.contains(r#"route="/healthz""#)
                && line.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(
        text.contains("mailvet_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn the_contract_is_served_at_openapi_yaml() {
    let app = TestApp::spawn().await;
    let reply = app.get("/openapi.yaml").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/yaml"));
    assert_eq!(reply.text(), mailvet::http::OPENAPI_YAML);
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = TestApp::spawn().await;
    let reply = app
        .send_unchecked(app.request(Method::GET, "/no/such/route"))
        .await;
    reply.assert_error(404, "not_found");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such/route"))
    );
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_that_says_what_is_allowed() {
    let app = TestApp::spawn().await;
    let reply = app
        .send_unchecked(app.request(Method::DELETE, "/healthz"))
        .await;
    reply.assert_error(405, "method_not_allowed");
    let allow = reply.header("allow").expect("an Allow header");
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;
    let generated = app.get("/healthz").await;
    let id = generated
        .header("x-request-id")
        .expect("a generated request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = app
        .send(
            app.request(Method::GET, "/healthz")
                .header("x-request-id", "from-the-caller-42"),
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("from-the-caller-42"));
    let error = app.send_unchecked(app.request(Method::GET, "/nope")).await;
    assert!(
        error.header("x-request-id").is_some(),
        "errors carry one too"
    );
}

#[tokio::test]
async fn responses_are_compressed_for_clients_that_ask() {
    let app = TestApp::spawn().await;
    let reply = app
        .send_unchecked(
            app.request(Method::GET, "/openapi.yaml")
                .header("accept-encoding", "gzip"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    assert!(reply.body.len() < mailvet::http::OPENAPI_YAML.len() / 2);
}

#[tokio::test]
async fn a_request_slower_than_the_time_limit_is_a_json_504() {
    let proxy = TcpProxy::start(pg_socket_addr()).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(Db::Postgres, |settings| {
        settings.database.url =
            SecretString::from(via(settings.database.url.expose_secret(), proxy_addr));
        settings.http.request_timeout = Duration::from_millis(300);
    })
    .await;
    proxy.set_delay(Duration::from_millis(800));
    let reply = app.get("/readyz").await;
    reply.assert_error(504, "timeout");
}

#[tokio::test]
async fn in_flight_requests_finish_during_a_graceful_shutdown() {
    let proxy = TcpProxy::start(pg_socket_addr()).await;
    let proxy_addr = proxy.addr;
    let mut app = TestApp::spawn_with(Db::Postgres, |settings| {
        settings.database.url =
            SecretString::from(via(settings.database.url.expose_secret(), proxy_addr));
    })
    .await;
    assert_eq!(app.get("/readyz").await.status, 200);
    // The database's answers are held back: this request stays in flight.
    proxy.hold();
    let in_flight = tokio::spawn(app.request(Method::GET, "/readyz").send());
    let after_shutdown = app.client.get(app.url("/healthz"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopping = app.stop();
    tokio::pin!(stopping);
    let early = tokio::time::timeout(Duration::from_millis(300), &mut stopping).await;
    assert!(early.is_err(), "shutdown waits for the in-flight request");
    proxy.release();
    stopping.await.expect("a clean shutdown");

    let response = in_flight
        .await
        .expect("join")
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 200);
    let refused = after_shutdown.send().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}
