//! The signup-form script and verdict tokens over plain HTTP: `/widget.js`
//! is served to anyone with cache headers; a public key's answer carries a
//! signed token that a form's backend can check with the shared secret or
//! with `POST /tokens/verify`. (The widget in a browser is in
//! `widget_browser.rs`.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mailvet::Application;
use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common;
use crate::common::app::{Db, TestApp, test_settings};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};

pub const SECRET: &str = "sk_test_widget_0123456789";
pub const PUBLIC: &str = "pk_test_widget";
pub const TOKEN_SECRET: &str = "token-secret-0123456789abcdef-0123456789";

const SCRIPT: &str = include_str!("../../assets/widget/widget.js");

/// A token signed with `secret` over `claims`, made the way a backend
/// would check one: HMAC-SHA256 over `v1.<base64url(claims)>`.
pub fn sign(secret: &str, claims: &Value) -> String {
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The claims of a token, after checking its HMAC with `secret` as a form's
/// backend would; `None` when the signature does not match.
pub fn check_locally(secret: &str, token: &str) -> Option<Value> {
    let (signed, signature) = token.rsplit_once('.')?;
    let (version, claims) = signed.split_once('.')?;
    assert_eq!(version, "v1");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    ring::hmac::verify(&key, signed.as_bytes(), &signature).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        .try_into()
        .expect("seconds fit")
}

async fn app_with_tokens(dns: &TestDns, peer: &SmtpPeer, token_secret: Option<&str>) -> TestApp {
    let probe = probe_settings(dns.addr, peer.port());
    let token_secret = token_secret.map(SecretString::from);
    TestApp::spawn_with(Db::Sqlite, move |settings| {
        probe(settings);
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
        settings.keys.token_secret = token_secret;
        settings.http.cors_origins = vec!["https://shop.example".into()];
    })
    .await
}

async fn verify_as(app: &TestApp, key: &str, email: &str) -> Value {
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .bearer_auth(key)
                .header("origin", "https://shop.example")
                .json(&json!({"email": email, "timeout_ms": 2500})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn check_token(app: &TestApp, key: &str, body: Value) -> common::app::Reply {
    app.send(
        app.request(Method::POST, "/tokens/verify")
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn the_widget_script_is_served_without_a_key_and_revalidated_by_its_etag() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&[])).await;
    let app = app_with_tokens(&dns, &peer, None).await;

    let reply = app.get("/widget.js").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    assert_eq!(reply.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let etag = reply.header("etag").expect("an ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "a strong ETag: {etag}"
    );
    assert_eq!(reply.text(), SCRIPT);

    let revalidated = app
        .send(
            app.request(Method::GET, "/widget.js")
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));

    let changed = app
        .send(
            app.request(Method::GET, "/widget.js")
                .header("if-none-match", "\"an-older-version\""),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.text(), SCRIPT);
}

#[tokio::test]
async fn a_public_answer_carries_a_token_of_the_verdict_for_ten_minutes() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_with_tokens(&dns, &peer, Some(TOKEN_SECRET)).await;

    let before = now();
    let answer = verify_as(&app, PUBLIC, "Alice@Example.TEST").await;
    common::spec::assert_matches_schema("PublicVerifyResult", &answer);
    assert_eq!(answer["status"], "deliverable", "{answer}");
    let token = answer["token"].as_str().expect("a token").to_owned();
    let claims = check_locally(TOKEN_SECRET, &token).expect("signed with the token secret");
    common::spec::assert_matches_schema("TokenClaims", &claims);
    assert_eq!(claims["email"], "Alice@example.test");
    assert_eq!(claims["status"], "deliverable");
    assert_eq!(claims["reason"], "accepted");
    assert_eq!(claims["origin"], "https://shop.example");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((before..=now()).contains(&iat), "{claims}");
    assert_eq!(claims["exp"].as_i64(), Some(iat + 600));
    assert!(check_locally("another-secret-0123456789abcdef-01", &token).is_none());

    // An undeliverable verdict is signed as it is.
    let answer = verify_as(&app, PUBLIC, "bob@example.test").await;
    let claims =
        check_locally(TOKEN_SECRET, answer["token"].as_str().expect("a token")).expect("signed");
    assert_eq!(
        (&claims["status"], &claims["reason"]),
        (&json!("undeliverable"), &json!("mailbox_not_found"))
    );

    // The backend's secret key checks it: the claims come back.
    let checked = check_token(&app, SECRET, json!({"token": token})).await;
    assert_eq!(checked.status, 200, "{}", checked.text());
    assert_eq!(checked.json()["email"], "Alice@example.test");
    assert_eq!(checked.json()["exp"].as_i64(), Some(iat + 600));
    // … and for the address the form submitted, compared as normalized.
    let checked = check_token(
        &app,
        SECRET,
        json!({"token": token, "email": " Alice@EXAMPLE.test "}),
    )
    .await;
    assert_eq!(checked.status, 200, "{}", checked.text());
    check_token(
        &app,
        SECRET,
        json!({"token": token, "email": "mallory@example.test"}),
    )
    .await
    .assert_error(422, "invalid_token");

    // A secret key's answer is the full result, without a token.
    let full = verify_as(&app, SECRET, "alice@example.test").await;
    assert!(full.get("token").is_none(), "{full}");
    assert!(full.get("normalized").is_some(), "{full}");
}

#[tokio::test]
async fn without_a_token_secret_no_token_is_issued_or_accepted() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_with_tokens(&dns, &peer, None).await;

    let answer = verify_as(&app, PUBLIC, "alice@example.test").await;
    assert_eq!(answer["status"], "deliverable", "{answer}");
    assert!(answer.get("token").is_none(), "{answer}");
    let claims = json!({"email": "alice@example.test", "status": "deliverable",
        "reason": "accepted", "origin": null, "iat": now(), "exp": now() + 600});
    let refused = check_token(&app, SECRET, json!({"token": sign(TOKEN_SECRET, &claims)})).await;
    refused.assert_error(422, "invalid_token");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("--token-secret"))
    );
}

#[tokio::test]
async fn forged_expired_and_malformed_tokens_are_refused_and_public_keys_may_not_ask() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let app = app_with_tokens(&dns, &peer, Some(TOKEN_SECRET)).await;
    let claims = |iat: i64| {
        json!({"email": "alice@example.test", "status": "deliverable", "reason": "accepted",
            "origin": "https://shop.example", "iat": iat, "exp": iat + 600})
    };

    // Made with the right secret, current: accepted (the test signs as the
    // server does, so the refusals below are about what they change).
    let good = sign(TOKEN_SECRET, &claims(now()));
    assert_eq!(
        check_token(&app, SECRET, json!({"token": good}))
            .await
            .status,
        200
    );

    // Another secret.
    let forged = sign("not-the-token-secret-0123456789abcdef", &claims(now()));
    let refused = check_token(&app, SECRET, json!({"token": forged})).await;
    refused.assert_error(422, "invalid_token");
    assert!(
        refused.text().contains("signature does not match"),
        "{}",
        refused.text()
    );

    // The claims changed after signing (another status), signature kept.
    let (_, signature) = good.rsplit_once('.').expect("three parts");
    let mut altered_claims = claims(now());
    altered_claims["status"] = json!("undeliverable");
    let altered = sign(TOKEN_SECRET, &altered_claims);
    let (altered_signed, _) = altered.rsplit_once('.').expect("three parts");
    check_token(
        &app,
        SECRET,
        json!({"token": format!("{altered_signed}.{signature}")}),
    )
    .await
    .assert_error(422, "invalid_token");

    // Expired: issued 11 minutes ago.
    let expired = sign(TOKEN_SECRET, &claims(now() - 660));
    let refused = check_token(&app, SECRET, json!({"token": expired})).await;
    refused.assert_error(422, "expired_token");

    // Not a token at all.
    for malformed in ["", "v1.", "v2.abc.def", "hello", "v1.e30.!!!"] {
        check_token(&app, SECRET, json!({"token": malformed}))
            .await
            .assert_error(422, "invalid_token");
    }
    check_token(&app, SECRET, json!({"tokn": good}))
        .await
        .assert_error(422, "invalid_request");

    // A public key (the one in the page) may not check tokens.
    check_token(&app, PUBLIC, json!({"token": good}))
        .await
        .assert_error(403, "forbidden");
    check_token(&app, "sk_unknown_key_0123456789", json!({"token": good}))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn a_short_token_secret_is_refused_at_start_without_showing_it() {
    let db = common::db::SqliteTestDb::new().await;
    let mut settings = test_settings(&db.url);
    settings.keys.token_secret = Some(SecretString::from("short-token-secret-12345"));
    let refused = Application::build(&settings)
        .await
        .expect_err("a 24-character token secret");
    let message = format!("{refused:#}");
    assert!(
        message.contains("--token-secret is 24 characters long") && message.contains("at least 32"),
        "{message}"
    );
    assert!(!message.contains("short-token-secret"), "{message}");
}
