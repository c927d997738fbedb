//! API keys and CORS: who may call what, from where.

use mailvet::Application;
use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::json;

use crate::common;
use crate::common::app::{Db, TestApp, test_settings};

const SECRET: &str = "sk_test_4f9c2e0a1b2c";
const PUBLIC: &str = "pk_test_81b0aa";

async fn app_with_keys() -> TestApp {
    TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
        settings.http.cors_origins = vec!["https://shop.example".into()];
    })
    .await
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_401_and_a_secret_key_may_do_everything() {
    let app = app_with_keys().await;
    let add = || {
        app.request(Method::POST, "/suppressions")
            .json(&json!({"email": "a@example.test"}))
    };
    let missing = app.send(add()).await;
    missing.assert_error(401, "unauthorized");
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"mailvet\"")
    );
    app.send(add().bearer_auth("sk_test_wrong"))
        .await
        .assert_error(401, "unauthorized");
    app.send(add().header("authorization", format!("Token {SECRET}")))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(app.send(add().bearer_auth(SECRET)).await.status, 201);
    assert_eq!(
        app.send(
            app.request(Method::GET, "/suppressions")
                .bearer_auth(SECRET)
        )
        .await
        .status,
        200
    );
    // Nothing was written by the refused requests: one entry.
    let feed = app
        .send(
            app.request(Method::GET, "/suppressions")
                .bearer_auth(SECRET),
        )
        .await
        .json();
    assert_eq!(feed["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_public_key_may_only_verify() {
    let app = app_with_keys().await;
    let verify = app
        .send(
            app.request(Method::POST, "/verify")
                .bearer_auth(PUBLIC)
                .json(&json!({"email": "not an address"})),
        )
        .await;
    assert_eq!(verify.status, 200, "{}", verify.text());
    assert_eq!(verify.json()["reason"], "invalid_syntax");
    for (method, path) in [
        (Method::POST, "/verify/batch"),
        (Method::GET, "/suppressions"),
        (Method::GET, "/suppressions/a@example.test"),
        (Method::DELETE, "/suppressions/a@example.test"),
        (Method::POST, "/bounces"),
        (Method::GET, "/stats"),
    ] {
        let reply = app
            .send(
                app.request(method.clone(), path)
                    .bearer_auth(PUBLIC)
                    .json(&json!({})),
            )
            .await;
        reply.assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn health_metrics_and_the_contract_need_no_key() {
    let app = app_with_keys().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.yaml"] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn cors_preflights_are_answered_for_allowed_origins_only_and_never_with_credentials() {
    let app = app_with_keys().await;
    let preflight = |origin: &str| {
        app.request(Method::OPTIONS, "/verify")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let allowed = app.send_unchecked(preflight("https://shop.example")).await;
    assert!(allowed.status < 300, "{}", allowed.status);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert_eq!(allowed.header("access-control-allow-credentials"), None);

    let refused = app.send_unchecked(preflight("https://evil.example")).await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    // The actual request from the allowed origin carries the header too.
    let actual = app
        .send(
            app.request(Method::POST, "/verify")
                .header("origin", "https://shop.example")
                .bearer_auth(PUBLIC)
                .json(&json!({"email": "x"})),
        )
        .await;
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://shop.example")
    );
}

#[tokio::test]
async fn without_keys_mailvet_refuses_to_listen_beyond_loopback() {
    let db = common::db::SqliteTestDb::new().await;
    let mut settings = test_settings(&db.url);
    settings.http.listen = "0.0.0.0:0".parse().expect("an address");
    let refused = Application::build(&settings)
        .await
        .expect_err("no keys, not loopback");
    let message = format!("{refused:#}");
    assert!(
        message.contains("refusing to listen on 0.0.0.0:0 without API keys"),
        "{message}"
    );
    assert!(message.contains("MAILVET_SECRET_KEYS"), "{message}");

    // A short secret key is refused, without showing it.
    settings.keys.secret_keys = vec![SecretString::from("sk_short_12345")];
    let refused = Application::build(&settings)
        .await
        .expect_err("a 14-character secret key");
    let message = format!("{refused:#}");
    assert!(
        message.contains("secret key 1 of 1 is 14 characters long")
            && message.contains("at least 16"),
        "{message}"
    );
    assert!(!message.contains("sk_short_12345"), "{message}");
    settings.keys.secret_keys.clear();

    // Keys from a file (Docker secrets) are enough.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("keys");
    std::fs::write(&file, "# secret keys\nsk_from_file_0123456789\n").expect("write keys");
    settings.keys.secret_keys_file = Some(file);
    let app = Application::build(&settings).await.expect("keys given");
    assert!(app.local_addr().ip().is_unspecified());
}

#[tokio::test]
async fn keys_can_come_from_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("public");
    std::fs::write(&file, "pk_file_1, pk_file_2\n").expect("write keys");
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys_file = Some(file.clone());
    })
    .await;
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .bearer_auth("pk_file_2")
                .json(&json!({"email": "x"})),
        )
        .await;
    assert_eq!(reply.status, 200);
    app.send(app.request(Method::GET, "/stats").bearer_auth("pk_file_1"))
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn webhooks_can_authenticate_with_the_key_in_the_url() {
    let app = app_with_keys().await;
    // An ESP given https://mailvet:<key>@host/bounces/postmark sends Basic auth.
    let body = json!({"RecordType": "Bounce", "Type": "HardBounce", "Email": "gone@example.test", "Details": "smtp;550 5.1.1 user unknown"});
    let post = || app.request(Method::POST, "/bounces/postmark").json(&body);
    app.send(post().basic_auth("mailvet", Some("wrong")))
        .await
        .assert_error(401, "unauthorized");
    app.send(post().basic_auth("mailvet", Some(PUBLIC)))
        .await
        .assert_error(403, "forbidden");
    let reply = app.send(post().basic_auth("mailvet", Some(SECRET))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["recipients"][0]["suppressed"], true);
}

async fn rate_limited_app(trusted_proxy: bool) -> TestApp {
    TestApp::spawn_with(Db::Sqlite, move |settings| {
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
        settings.http.rate_limit_public = 3;
        settings.http.rate_limit_secret = 2;
        if trusted_proxy {
            settings.http.trusted_proxies =
                vec![mailvet::http::parse_ip_range("127.0.0.1").expect("an IP")];
        }
    })
    .await
}

async fn public_verify(app: &TestApp, forwarded_for: Option<&str>) -> common::app::Reply {
    let mut request = app
        .request(Method::POST, "/verify")
        .bearer_auth(PUBLIC)
        .json(&json!({"email": "x"}));
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    app.send(request).await
}

#[tokio::test]
async fn public_keys_are_rate_limited_per_client_and_forged_forwarding_does_not_help() {
    let app = rate_limited_app(false).await;
    for i in 0..3 {
        // A different forged X-Forwarded-For each time: ignored without a
        // trusted proxy, so all count against 127.0.0.1.
        assert_eq!(
            public_verify(&app, Some(&format!("203.0.113.{i}")))
                .await
                .status,
            200
        );
    }
    let limited = public_verify(&app, Some("203.0.113.99")).await;
    limited.assert_error(429, "rate_limited");
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The secret key has its own budget.
    assert_eq!(
        app.send(app.request(Method::GET, "/stats").bearer_auth(SECRET))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = rate_limited_app(true).await;
    for i in 0..6 {
        let reply = public_verify(&app, Some(&format!("198.51.100.7, 203.0.113.{i}"))).await;
        assert_eq!(reply.status, 200, "client {i}");
    }
    for _ in 0..3 {
        assert_eq!(public_verify(&app, Some("203.0.113.50")).await.status, 200);
    }
    public_verify(&app, Some("203.0.113.50"))
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn secret_keys_are_rate_limited_per_key() {
    let app = rate_limited_app(false).await;
    let statuses: Vec<u16> = futures::future::join_all(
        (0..6).map(|_| app.send(app.request(Method::GET, "/stats").bearer_auth(SECRET))),
    )
    .await
    .into_iter()
    .map(|reply| reply.status)
    .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 2,
        "{statuses:?}"
    );
}
