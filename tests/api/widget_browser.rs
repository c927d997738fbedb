//! The signup-form widget in headless Chromium. A signup page of the
//! test's own, on another origin (127.0.0.2) than mailvet (127.0.0.1),
//! sends a strict Content-Security-Policy and loads `/widget.js` from
//! mailvet; its form posts back to the page's server, which records what
//! it received. mailvet probes the test's DNS server and SMTP peer.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use fantoccini::Locator;
use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::browser::Browser;
use crate::common::dns::{TestDns, Zone, example_zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};
use crate::widget_api::{PUBLIC, SECRET, TOKEN_SECRET, check_locally};

type Received = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// The signup site: its page, its stylesheet, and the form's backend.
struct SignupSite {
    addr: SocketAddr,
    received: Received,
}

#[derive(Clone)]
struct Site {
    page: Arc<String>,
    csp: Arc<String>,
    received: Received,
}

const SITE_CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:2rem}\
label{display:block;font-weight:600}\
input{font:inherit;padding:.4rem;width:20rem}\
.mailvet-message{font-size:var(--mailvet-font-size,.875em);min-height:1.5em;margin:.25rem 0 1rem}\
.mailvet-error{color:var(--mailvet-error-color,#b00020)}\
.mailvet-hint{color:var(--mailvet-hint-color,#555)}\
.mailvet-accept{font:inherit;color:var(--mailvet-link-color,#0645ad);background:none;border:0;padding:0;text-decoration:underline;cursor:pointer}";

impl SignupSite {
    /// Serves the page on `listener`, loading the widget from `mailvet`.
    fn start(listener: tokio::net::TcpListener, mailvet: SocketAddr) -> Self {
        let addr = listener.local_addr().expect("address");
        let mailvet = format!("http://{mailvet}");
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Sign up</title><link rel=\"icon\" href=\"data:,\">\
             <link rel=\"stylesheet\" href=\"/site.css\">\
             <script src=\"{mailvet}/widget.js\" data-key=\"{PUBLIC}\" defer></script>\
             </head><body><main><h1>Create your account</h1>\
             <form method=\"post\" action=\"/signup\">\
             <label for=\"email\">Email</label>\
             <input type=\"email\" id=\"email\" name=\"email\" autocomplete=\"email\">\
             <button type=\"submit\" id=\"submit\">Sign up</button>\
             </form></main></body></html>"
        );
        let csp = format!(
            "default-src 'none'; script-src {mailvet}; connect-src {mailvet}; style-src 'self'; \
             img-src data:; form-action 'self'; base-uri 'none'"
        );
        let received = Received::default();
        let site = Site {
            page: Arc::new(page),
            csp: Arc::new(csp),
            received: received.clone(),
        };
        let app = Router::new()
            .route("/", get(page_handler))
            .route(
                "/site.css",
                get(|| async { ([("content-type", "text/css")], SITE_CSS) }),
            )
            .route("/signup", post(signup))
            .with_state(site);
        tokio::spawn(async move { axum::serve(listener, app).await });
        SignupSite { addr, received }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn received(&self) -> Vec<HashMap<String, String>> {
        self.received.lock().expect("the log").clone()
    }
}

async fn page_handler(State(site): State<Site>) -> impl IntoResponse {
    (
        [(CONTENT_SECURITY_POLICY, site.csp.as_str().to_owned())],
        Html(site.page.as_str().to_owned()),
    )
}

async fn signup(
    State(site): State<Site>,
    Form(fields): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    site.received.lock().expect("the log").push(fields);
    (
        [(CONTENT_SECURITY_POLICY, site.csp.as_str().to_owned())],
        Html(
            "<!doctype html><title>Welcome</title><link rel=\"icon\" href=\"data:,\"><h1 id=\"thanks\">Thanks for signing up</h1>",
        ),
    )
}

/// Polls `probe` until it gives a value, for at most 10 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, if there is one.
async fn text_of(browser: &Browser, css: &str) -> Option<String> {
    let element = browser.client.find(Locator::Css(css)).await.ok()?;
    element.text().await.ok()
}

/// The value of the form's hidden token field, once it holds one.
async fn token_in_form(browser: &Browser) -> Option<String> {
    let field = browser
        .client
        .find(Locator::Css("form input[type=hidden][name=mailvet_token]"))
        .await
        .ok()?;
    field
        .prop("value")
        .await
        .ok()?
        .filter(|value| !value.is_empty())
}

async fn test_peers() -> (TestDns, SmtpPeer) {
    test_peers_answering(Script::mailboxes(&[
        "alice@gmail.com",
        "alice@example.test",
    ]))
    .await
}

async fn test_peers_answering(script: Script) -> (TestDns, SmtpPeer) {
    let gmail = Zone::new("gmail.com")
        .mx("gmail.com", 5, "mx.gmail.com")
        .ip("mx.gmail.com", "127.0.0.1");
    let dns = TestDns::start(vec![example_zone(), gmail]).await;
    let peer = SmtpPeer::start(script).await;
    (dns, peer)
}

/// mailvet, with a public key, tokens and the test's DNS (where
/// `gmail.com` and `example.test` have their MX on loopback) and SMTP peer
/// (which knows alice at both); and the signup site on another origin,
/// which mailvet's `--cors-origins` lists.
async fn mailvet_and_site(dns: &TestDns, peer: &SmtpPeer) -> (TestApp, SignupSite) {
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let probe = probe_settings(dns.addr, peer.port());
    let app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        probe(settings);
        settings.keys.secret_keys = vec![SecretString::from(SECRET)];
        settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
        settings.keys.token_secret = Some(SecretString::from(TOKEN_SECRET));
        settings.http.cors_origins = vec![origin];
    })
    .await;
    let site = SignupSite::start(listener, app.address);
    (app, site)
}

#[tokio::test]
async fn a_visitor_sees_an_unknown_mailbox_accepts_a_suggestion_and_the_form_posts_a_token() {
    let (dns, peer) = test_peers().await;
    let (app, site) = mailvet_and_site(&dns, &peer).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&site.url())
        .await
        .expect("open the page");
    let email = browser
        .client
        .find(Locator::Css("#email"))
        .await
        .expect("the email field");

    // An unknown mailbox: once typing stops, a plain message under the
    // field, in the live region the field is described by.
    email.send_keys("nobody@example.test").await.expect("type");
    let message = eventually("the undeliverable message", || async {
        text_of(&browser, ".mailvet-message.mailvet-error").await
    })
    .await;
    assert_eq!(
        message,
        "This mailbox does not exist. Please check the address."
    );
    let region = browser
        .client
        .find(Locator::Css(".mailvet-message"))
        .await
        .expect("the message region");
    assert_eq!(
        region.attr("aria-live").await.expect("attr").as_deref(),
        Some("polite")
    );
    let region_id = region.attr("id").await.expect("attr").expect("an id");
    let described_by = email
        .attr("aria-describedby")
        .await
        .expect("attr")
        .expect("aria-describedby");
    assert!(
        described_by.split(' ').any(|id| id == region_id),
        "{described_by} names {region_id}"
    );
    assert_eq!(
        email.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    browser.screenshot("widget-undeliverable").await;
    browser.assert_clean_console("the signup page").await;

    // A misspelt provider: "Did you mean …?", accepted with a click, and
    // checked again.
    email.clear().await.expect("clear");
    email.send_keys("alice@gmial.com").await.expect("type");
    let accept = eventually("the suggestion", || async {
        browser
            .client
            .find(Locator::Css(".mailvet-suggestion .mailvet-accept"))
            .await
            .ok()
    })
    .await;
    assert_eq!(accept.text().await.expect("text"), "alice@gmail.com");
    assert_eq!(
        text_of(&browser, ".mailvet-message").await.as_deref(),
        Some("Did you mean alice@gmail.com?")
    );
    assert_eq!(email.attr("aria-invalid").await.expect("attr"), None);
    browser.screenshot("widget-suggestion").await;
    accept.click().await.expect("accept the suggestion");
    assert_eq!(
        email.prop("value").await.expect("value").as_deref(),
        Some("alice@gmail.com")
    );
    // The corrected address is checked: deliverable, so no message, and
    // its token in the form.
    let token = eventually("the token of alice@gmail.com", || async {
        let token = token_in_form(&browser).await?;
        let claims = check_locally(TOKEN_SECRET, &token)?;
        (claims["email"] == "alice@gmail.com").then_some(token)
    })
    .await;
    assert_eq!(
        text_of(&browser, ".mailvet-message").await.as_deref(),
        Some("")
    );
    assert!(
        peer.rcpts()
            .iter()
            .any(|rcpt| rcpt.contains("alice@gmail.com")),
        "the peer was asked about the corrected address: {:?}",
        peer.rcpts()
    );
    browser.assert_clean_console("the signup page").await;

    // The form posts the address and the token; the backend checks it.
    browser
        .client
        .find(Locator::Css("#submit"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("submit");
    let fields = eventually("the form's post", || async { site.received().pop() }).await;
    assert_eq!(
        fields.get("email").map(String::as_str),
        Some("alice@gmail.com")
    );
    assert_eq!(fields.get("mailvet_token"), Some(&token));
    eventually("the welcome page", || async {
        text_of(&browser, "#thanks").await
    })
    .await;
    browser.assert_clean_console("the welcome page").await;

    // With the shared secret …
    let claims = check_locally(TOKEN_SECRET, &token).expect("a genuine token");
    assert_eq!(claims["status"], "deliverable", "{claims}");
    assert_eq!(claims["origin"], format!("http://{}", site.addr));
    // … or by asking mailvet with a secret key.
    let checked = app
        .send(
            app.request(Method::POST, "/tokens/verify")
                .bearer_auth(SECRET)
                .json(&json!({"token": token, "email": fields["email"]})),
        )
        .await;
    assert_eq!(checked.status, 200, "{}", checked.text());
    assert_eq!(checked.json()["status"], "deliverable");
    assert_eq!(checked.json()["email"], "alice@gmail.com");
    browser.close().await;
}

#[tokio::test]
async fn with_mailvet_stopped_the_form_still_submits_at_once() {
    let (dns, peer) = test_peers().await;
    let (mut app, site) = mailvet_and_site(&dns, &peer).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&site.url())
        .await
        .expect("open the page");
    // The script is loaded (its field is watched) before mailvet stops.
    eventually("the widget", || async {
        browser
            .client
            .find(Locator::Css("#email[aria-describedby]"))
            .await
            .ok()
    })
    .await;
    browser.assert_clean_console("the signup page").await;
    app.stop().await.expect("mailvet stops");

    let email = browser
        .client
        .find(Locator::Css("#email"))
        .await
        .expect("the email field");
    email.send_keys("alice@example.test").await.expect("type");
    // Typing stops; the check fails quietly.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        text_of(&browser, ".mailvet-message").await.as_deref(),
        Some("")
    );
    let clicked = Instant::now();
    browser
        .client
        .find(Locator::Css("#submit"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("submit");
    let fields = eventually("the form's post", || async { site.received().pop() }).await;
    assert!(
        clicked.elapsed() < Duration::from_secs(2),
        "the form waited {:?} for mailvet",
        clicked.elapsed()
    );
    assert_eq!(
        fields.get("email").map(String::as_str),
        Some("alice@example.test")
    );
    assert_eq!(fields.get("mailvet_token"), None, "{fields:?}");
    eventually("the welcome page", || async {
        text_of(&browser, "#thanks").await
    })
    .await;

    // The browser itself reports the refused connections to mailvet (a
    // page cannot silence that); the widget adds nothing of its own, and
    // nothing else went wrong.
    let mailvet = app.address.to_string();
    let (refused, unexpected): (Vec<String>, Vec<String>) = browser
        .console()
        .await
        .into_iter()
        .filter(|line| line.starts_with("SEVERE") || line.starts_with("WARNING"))
        .partition(|line| line.contains(&mailvet) && line.contains("net::ERR_CONNECTION_REFUSED"));
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(
        !refused.is_empty(),
        "the widget did try mailvet (and failed quietly)"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_field_added_after_the_page_loaded_is_checked_too() {
    let (dns, peer) = test_peers().await;
    let (_app, site) = mailvet_and_site(&dns, &peer).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&site.url())
        .await
        .expect("open the page");
    eventually("the widget", || async {
        browser
            .client
            .find(Locator::Css("#email[aria-describedby]"))
            .await
            .ok()
    })
    .await;
    // A single-page app renders another field later (WebDriver's script
    // is the browser's own, outside the page's policy).
    browser
        .client
        .execute(
            "const field = document.createElement('input');\
             field.id = 'later'; field.setAttribute('data-mailvet', '');\
             document.querySelector('main').appendChild(field);",
            Vec::new(),
        )
        .await
        .expect("add a field");
    let later = eventually("the widget on the new field", || async {
        browser
            .client
            .find(Locator::Css("#later[aria-describedby]"))
            .await
            .ok()
    })
    .await;
    later.send_keys("nobody@example.test").await.expect("type");
    let message = eventually("the message under the new field", || async {
        text_of(&browser, "#later + .mailvet-message.mailvet-error").await
    })
    .await;
    assert_eq!(
        message,
        "This mailbox does not exist. Please check the address."
    );
    // The first field was left alone.
    assert_eq!(
        text_of(&browser, "#email + .mailvet-message")
            .await
            .as_deref(),
        Some("")
    );
    browser.assert_clean_console("the signup page").await;
    browser.close().await;
}

#[tokio::test]
async fn a_slow_mail_server_gets_no_message_within_the_time_budget() {
    // Every SMTP reply takes 4 s: no verdict within the widget's 2.5 s.
    let script = Script {
        delay: Duration::from_secs(4),
        ..Script::mailboxes(&["alice@example.test"])
    };
    let (dns, peer) = test_peers_answering(script).await;
    let (_app, site) = mailvet_and_site(&dns, &peer).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&site.url())
        .await
        .expect("open the page");
    let email = browser
        .client
        .find(Locator::Css("#email"))
        .await
        .expect("the email field");
    let typed = Instant::now();
    email.send_keys("alice@example.test").await.expect("type");
    // The answer is `unknown / timeout`, within the budget: its token says
    // so, and nothing is shown.
    let claims = eventually("the token of the timed-out check", || async {
        check_locally(TOKEN_SECRET, &token_in_form(&browser).await?)
    })
    .await;
    assert_eq!(
        (&claims["status"], &claims["reason"]),
        (&json!("unknown"), &json!("timeout")),
        "{claims}"
    );
    assert!(
        typed.elapsed() < Duration::from_millis(600 + 2500 + 1500),
        "the answer took {:?}",
        typed.elapsed()
    );
    assert_eq!(
        text_of(&browser, ".mailvet-message").await.as_deref(),
        Some("")
    );
    assert_eq!(email.attr("aria-invalid").await.expect("attr"), None);
    browser.assert_clean_console("the signup page").await;
    browser.close().await;
}
