//! Signup confirmation (double opt-in) end to end: a real Postfix on
//! loopback is both the MX that verification probes (through the test's
//! DNS server) and the relay the confirmation message goes through; it
//! delivers the message to a Maildir, from which the test takes the link
//! and follows it.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, Reply, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::postfix::Postfix;
use crate::common::probe::probe_settings;
use mailvet::Settings;
use mailvet::secret::SecretString;

const PUBLIC_URL: &str = "https://mailvet.example/";
const TOKEN_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Verification and the relay both at `postfix`; links under
/// [`PUBLIC_URL`]; redirects allowed to https://shop.test.
fn confirm_settings(relay_url: String) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        settings.confirm.relay_url = Some(SecretString::from(relay_url));
        settings.confirm.public_url = Some(PUBLIC_URL.into());
        settings.confirm.confirm_from = Some("Shop <hello@shop.test>".into());
        settings.keys.token_secret = Some(SecretString::from(TOKEN_SECRET));
        settings.http.cors_origins = vec!["https://shop.test".into()];
    }
}

async fn app_for(
    db: Db,
    postfix: &Postfix,
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, TestDns) {
    let dns = TestDns::start(vec![example_zone()]).await;
    let probe = probe_settings(dns.addr, postfix.port);
    let relay = confirm_settings(format!("smtp://127.0.0.1:{}", postfix.port));
    let app = TestApp::spawn_with(db, |settings| {
        probe(settings);
        relay(settings);
        configure(settings);
    })
    .await;
    (app, dns)
}

async fn request_confirmation(app: &TestApp, body: Value) -> Reply {
    app.send(app.request(Method::POST, "/confirmations").json(&body))
        .await
}

/// The link in a delivered message, read as a mail reader would (the
/// text part, its transfer encoding undone), made to point at `app`.
fn link_in(message: &str, app: &TestApp) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(message.as_bytes())
        .expect("a delivered message parses");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let start = text
        .find(PUBLIC_URL)
        .unwrap_or_else(|| panic!("no link in:\n{text}"));
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let path = link
        .strip_prefix(PUBLIC_URL)
        .expect("the link is under the public URL");
    app.url(&format!("/{path}"))
}

/// Follows a link as a browser would on its first step: no redirects
/// followed.
async fn follow(link: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
        .get(link)
        .send()
        .await
        .expect("the link answers")
}

/// Asserts a 422 refusal of an undeliverable address, with its verdict.
fn assert_refused(reply: &Reply, reason: &str) {
    assert_eq!(reply.status, 422, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], "undeliverable", "{body}");
    assert_eq!(body["verification"]["status"], "undeliverable", "{body}");
    assert_eq!(body["verification"]["reason"], reason, "{body}");
}

/// Waits long enough for a message that should not come to have come.
fn settle(postfix: &Postfix) {
    std::thread::sleep(Duration::from_millis(1500));
    let _ = postfix.log();
}

async fn confirming_through_the_delivered_link_confirms_once_and_feeds_it(db: Db) {
    let postfix = Postfix::start_delivering("example.test", &["alice@example.test"], &[]);
    let (app, _dns) = app_for(db, &postfix, |_| {}).await;

    let reply = request_confirmation(
        &app,
        json!({
            "email": "alice@example.test",
            "redirect_url": "https://shop.test/welcome?step=2",
            "metadata": {"plan": "pro"}
        }),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["state"], "pending");
    assert_eq!(body["confirmed_at"], Value::Null);

    let messages = postfix.wait_for_delivered("alice@example.test", 1);
    let message = &messages[0];
    assert!(
        message.contains("From: Shop <hello@shop.test>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Please confirm your email address"),
        "{message}"
    );
    let pending = app.get("/confirmations/alice@example.test").await;
    assert_eq!(pending.json()["state"], "pending");
    let feed = app.get("/confirmations").await.json();
    assert_eq!(feed["data"], json!([]), "nothing confirmed yet: {feed}");

    let link = link_in(message, &app);
    let first = follow(&link).await;
    assert_eq!(first.status(), 303);
    assert_eq!(
        first.headers()["location"],
        "https://shop.test/welcome?step=2"
    );

    let state = app.get("/confirmations/alice@example.test").await;
    assert_eq!(state.status, 200);
    let state = state.json();
    assert_eq!(state["state"], "confirmed", "{state}");
    assert!(state["confirmed_at"].is_string(), "{state}");

    let feed = app.get("/confirmations").await.json();
    let data = feed["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{feed}");
    assert_eq!(data[0]["email"], "alice@example.test");
    assert_eq!(data[0]["metadata"], json!({"plan": "pro"}));
    let cursor = feed["next_cursor"].as_str().expect("a cursor").to_owned();

    // The link again: it shows the address is confirmed, and changes
    // nothing.
    let again = follow(&link).await;
    assert_eq!(again.status(), 200);
    let page = again.text().await.expect("a page");
    assert!(page.contains("Already confirmed"), "{page}");
    let later = app
        .get(&format!("/confirmations?cursor={cursor}"))
        .await
        .json();
    assert_eq!(later["data"], json!([]), "{later}");
    assert_eq!(later["next_cursor"], cursor.as_str());
    let state_after = app.get("/confirmations/alice@example.test").await.json();
    assert_eq!(state_after, state);

    // Asking again for a confirmed address sends nothing.
    let reply = request_confirmation(&app, json!({"email": "alice@example.test"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["state"], "confirmed");
    settle(&postfix);
    assert_eq!(postfix.delivered("alice@example.test").len(), 1);
}

#[tokio::test]
async fn a_delivered_link_confirms_once_and_feeds_the_address_on_sqlite() {
    confirming_through_the_delivered_link_confirms_once_and_feeds_it(Db::Sqlite).await;
}

#[tokio::test]
async fn a_delivered_link_confirms_once_and_feeds_the_address_on_postgres() {
    confirming_through_the_delivered_link_confirms_once_and_feeds_it(Db::Postgres).await;
}

async fn the_fourth_request_in_a_day_is_refused_and_sends_nothing(db: Db) {
    let postfix = Postfix::start_delivering("example.test", &["bob@example.test"], &[]);
    let (app, _dns) = app_for(db, &postfix, |_| {}).await;
    for n in 1..=3 {
        let reply = request_confirmation(&app, json!({"email": "bob@example.test"})).await;
        assert_eq!(reply.status, 202, "request {n}: {}", reply.text());
    }
    postfix.wait_for_delivered("bob@example.test", 3);

    let fourth = request_confirmation(&app, json!({"email": "Bob@Example.TEST"})).await;
    fourth.assert_error(429, "rate_limited");
    let retry_after: u64 = fourth
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        retry_after > 23 * 3600 && retry_after <= 24 * 3600,
        "{retry_after}"
    );
    settle(&postfix);
    assert_eq!(postfix.delivered("bob@example.test").len(), 3);
}

#[tokio::test]
async fn the_fourth_request_for_an_address_in_a_day_gets_429_and_no_message_on_sqlite() {
    the_fourth_request_in_a_day_is_refused_and_sends_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn the_fourth_request_for_an_address_in_a_day_gets_429_and_no_message_on_postgres() {
    the_fourth_request_in_a_day_is_refused_and_sends_nothing(Db::Postgres).await;
}

#[tokio::test]
async fn an_expired_link_says_so_and_confirms_nothing_on_sqlite() {
    an_expired_link_says_so_and_confirms_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn an_expired_link_says_so_and_confirms_nothing_on_postgres() {
    an_expired_link_says_so_and_confirms_nothing(Db::Postgres).await;
}

async fn an_expired_link_says_so_and_confirms_nothing(db: Db) {
    let postfix = Postfix::start_delivering("example.test", &["carol@example.test"], &[]);
    let (app, _dns) = app_for(db, &postfix, |settings| {
        settings.confirm.confirm_ttl = Duration::from_secs(2);
    })
    .await;
    let reply = request_confirmation(&app, json!({"email": "carol@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let messages = postfix.wait_for_delivered("carol@example.test", 1);
    let link = link_in(&messages[0], &app);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let followed = follow(&link).await;
    assert_eq!(followed.status(), 410);
    assert!(followed.text().await.expect("a page").contains("expired"));
    let state = app.get("/confirmations/carol@example.test").await.json();
    assert_eq!(state["state"], "expired", "{state}");
    assert_eq!(state["confirmed_at"], Value::Null);
    assert_eq!(app.get("/confirmations").await.json()["data"], json!([]));
}

#[tokio::test]
async fn an_altered_link_is_not_valid() {
    let postfix = Postfix::start_delivering("example.test", &["dave@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    let reply = request_confirmation(&app, json!({"email": "dave@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let link = link_in(&postfix.wait_for_delivered("dave@example.test", 1)[0], &app);
    // Another request id under the same signature: its last character
    // changed (to one it is not).
    let (head, signature) = link.rsplit_once('.').expect("a signed token");
    let swap = if head.ends_with('A') { 'B' } else { 'A' };
    let altered = format!("{}{swap}.{signature}", &head[..head.len() - 1]);
    assert_ne!(altered, link);
    assert_eq!(follow(&altered).await.status(), 404);
    assert_eq!(
        app.get("/confirmations/dave@example.test").await.json()["state"],
        "pending"
    );
}

#[tokio::test]
async fn a_redirect_to_a_foreign_origin_is_refused_and_nothing_is_sent() {
    let postfix = Postfix::start_delivering("example.test", &["erin@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    for foreign in [
        "https://evil.test/welcome",
        "https://shop.test.evil.test/",
        "http://shop.test/",
        "javascript:alert(1)",
    ] {
        let reply = request_confirmation(
            &app,
            json!({"email": "erin@example.test", "redirect_url": foreign}),
        )
        .await;
        reply.assert_error(422, "redirect_not_allowed");
    }
    settle(&postfix);
    assert!(postfix.delivered("erin@example.test").is_empty());
    assert_eq!(
        app.get("/confirmations/erin@example.test").await.status,
        404
    );
    // The allowed origin goes through.
    let reply = request_confirmation(
        &app,
        json!({"email": "erin@example.test", "redirect_url": "https://shop.test/"}),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    postfix.wait_for_delivered("erin@example.test", 1);
}

#[tokio::test]
async fn a_bounced_confirmation_suppresses_and_a_later_request_gets_422_and_no_message() {
    let postfix = Postfix::start_delivering("example.test", &["frank@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    let reply = request_confirmation(&app, json!({"email": "frank@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    postfix.wait_for_delivered("frank@example.test", 1);

    // The confirmation bounced (say the mailbox was closed since), and the
    // sender reports it.
    let bounce = app
        .send(app.request(Method::POST, "/bounces").json(&json!({
            "email": "frank@example.test",
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 <frank@example.test>: Recipient address rejected: User unknown"
        })))
        .await;
    assert_eq!(bounce.status, 200, "{}", bounce.text());
    assert_eq!(
        app.get("/suppressions/frank@example.test").await.status,
        200
    );

    let again = request_confirmation(&app, json!({"email": "frank@example.test"})).await;
    assert_refused(&again, "suppressed");
    settle(&postfix);
    assert_eq!(postfix.delivered("frank@example.test").len(), 1);
}

#[tokio::test]
async fn an_undeliverable_address_gets_422_with_its_verdict_and_no_message() {
    let postfix = Postfix::start_delivering("example.test", &["grace@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    let reply = request_confirmation(&app, json!({"email": "nobody@example.test"})).await;
    assert_refused(&reply, "mailbox_not_found");
    let reply = request_confirmation(&app, json!({"email": "not an address"})).await;
    assert_refused(&reply, "invalid_syntax");
    settle(&postfix);
    assert!(
        !postfix
            .log()
            .contains("to=<nobody@example.test>, relay=virtual")
    );
    assert_eq!(
        app.get("/confirmations/nobody@example.test").await.status,
        404
    );
}

#[tokio::test]
async fn a_relay_failure_answers_502_without_the_relay_password_on_sqlite() {
    a_relay_failure_answers_502_without_the_relay_password(Db::Sqlite).await;
}

#[tokio::test]
async fn a_relay_failure_answers_502_without_the_relay_password_on_postgres() {
    a_relay_failure_answers_502_without_the_relay_password(Db::Postgres).await;
}

async fn a_relay_failure_answers_502_without_the_relay_password(db: Db) {
    let postfix = Postfix::start_delivering("example.test", &["heidi@example.test"], &[]);
    // Nothing listens on the relay's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("an address")
        .port();
    let (app, _dns) = app_for(db, &postfix, |settings| {
        settings.confirm.relay_url = Some(SecretString::from(format!(
            "smtp://mailvet:s3cret-relay-pass@127.0.0.1:{closed}"
        )));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret-relay-pass"), "{shown}");
    })
    .await;
    let reply = request_confirmation(&app, json!({"email": "heidi@example.test"})).await;
    reply.assert_error(502, "relay_failed");
    assert!(!reply.text().contains("s3cret"), "{}", reply.text());
    // Nothing was recorded: the request does not count against the limit.
    assert_eq!(
        app.get("/confirmations/heidi@example.test").await.status,
        404
    );
}

#[tokio::test]
async fn without_a_relay_confirmations_are_not_configured() {
    let app = TestApp::spawn().await;
    let reply = request_confirmation(&app, json!({"email": "ivan@example.test"})).await;
    reply.assert_error(503, "confirmations_not_configured");
    assert!(reply.text().contains("--relay-url"), "{}", reply.text());
}

#[tokio::test]
async fn two_replicas_together_send_an_address_no_more_than_its_limit() {
    let postfix = Postfix::start_delivering("example.test", &["judy@example.test"], &[]);
    let (first, dns) = app_for(Db::Postgres, &postfix, |_| {}).await;
    let probe = probe_settings(dns.addr, postfix.port);
    let relay = confirm_settings(format!("smtp://127.0.0.1:{}", postfix.port));
    let second = first
        .spawn_sharing(|settings| {
            probe(settings);
            relay(settings);
        })
        .await;
    // Eight requests at once, four at each replica.
    let requests = (0..8).map(|n| {
        let app = if n % 2 == 0 { &first } else { &second };
        request_confirmation(app, json!({"email": "judy@example.test"}))
    });
    let replies = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
    assert_eq!(
        statuses.iter().filter(|status| **status == 202).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|status| **status == 429).count(),
        5,
        "{statuses:?}"
    );
    postfix.wait_for_delivered("judy@example.test", 3);
    settle(&postfix);
    assert_eq!(postfix.delivered("judy@example.test").len(), 3);
}

#[tokio::test]
async fn a_public_key_may_request_a_confirmation_only_from_an_allowed_origin() {
    let postfix = Postfix::start_delivering("example.test", &["kim@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |settings| {
        settings.keys.secret_keys = vec![SecretString::from("sk_test_0123456789abcdef")];
        settings.keys.public_keys = vec![SecretString::from("pk_test_shop")];
    })
    .await;
    let from = |origin: &str| {
        app.request(Method::POST, "/confirmations")
            .bearer_auth("pk_test_shop")
            .header("origin", origin)
            .json(&json!({"email": "kim@example.test"}))
    };
    app.send(from("https://evil.test"))
        .await
        .assert_error(403, "forbidden");
    settle(&postfix);
    assert!(postfix.delivered("kim@example.test").is_empty());

    let reply = app.send(from("https://shop.test")).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let message = postfix.wait_for_delivered("kim@example.test", 1).remove(0);
    // The link needs no key: the person who signed up has none.
    assert_eq!(follow(&link_in(&message, &app)).await.status(), 200);

    // The state and the feed stay behind a secret key.
    app.send(
        app.request(Method::GET, "/confirmations/kim@example.test")
            .bearer_auth("pk_test_shop"),
    )
    .await
    .assert_error(403, "forbidden");
}

#[tokio::test]
async fn template_files_replace_the_default_message() {
    let templates = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        templates.path().join("subject.txt"),
        "Welcome to the shop, {{email}}",
    )
    .expect("write");
    std::fs::write(
        templates.path().join("body.txt"),
        "One click and you are in: {{link}}\nIt works for {{expires_in}}.\n",
    )
    .expect("write");
    let postfix = Postfix::start_delivering("example.test", &["liz@example.test"], &[]);
    let dir = templates.path().to_owned();
    let (app, _dns) = app_for(Db::Sqlite, &postfix, move |settings| {
        settings.confirm.confirm_template_dir = Some(dir);
    })
    .await;
    let reply = request_confirmation(&app, json!({"email": "liz@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let message = postfix.wait_for_delivered("liz@example.test", 1).remove(0);
    let parsed = mail_parser::MessageParser::default()
        .parse(message.as_bytes())
        .expect("a message");
    assert_eq!(
        parsed.subject(),
        Some("Welcome to the shop, liz@example.test")
    );
    let text = parsed.body_text(0).expect("a text part");
    assert!(text.starts_with("One click and you are in: "), "{text}");
    assert!(text.contains("It works for 48 hours."), "{text}");
    // The link in it works.
    assert_eq!(follow(&link_in(&message, &app)).await.status(), 200);
    assert_eq!(
        app.get("/confirmations/liz@example.test").await.json()["state"],
        "confirmed"
    );
}

#[tokio::test]
async fn links_followed_at_once_on_two_replicas_all_reach_the_feed_once() {
    let people = ["m1", "m2", "m3", "m4", "m5", "m6"].map(|name| format!("{name}@example.test"));
    let mailboxes: Vec<&str> = people.iter().map(String::as_str).collect();
    let postfix = Postfix::start_delivering("example.test", &mailboxes, &[]);
    let (first, dns) = app_for(Db::Postgres, &postfix, |_| {}).await;
    let probe = probe_settings(dns.addr, postfix.port);
    let relay = confirm_settings(format!("smtp://127.0.0.1:{}", postfix.port));
    let second = first
        .spawn_sharing(|settings| {
            probe(settings);
            relay(settings);
        })
        .await;
    for email in &people {
        let reply = request_confirmation(&first, json!({"email": email})).await;
        assert_eq!(reply.status, 202, "{}", reply.text());
    }
    let links: Vec<String> = people
        .iter()
        .enumerate()
        .map(|(n, email)| {
            let app = if n % 2 == 0 { &first } else { &second };
            link_in(&postfix.wait_for_delivered(email, 1)[0], app)
        })
        .collect();
    let followed = futures::future::join_all(links.iter().map(|link| follow(link))).await;
    for response in &followed {
        assert_eq!(response.status(), 200);
    }

    // Paged two at a time, from either replica: each address once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        assert!(page < 10, "the feed does not end");
        let app = if page % 2 == 0 { &first } else { &second };
        let reply = app
            .get(&format!("/confirmations?limit=2&cursor={cursor}"))
            .await
            .json();
        let data = reply["data"].as_array().expect("data").clone();
        cursor = reply["next_cursor"].as_str().expect("a cursor").to_owned();
        if data.is_empty() {
            break;
        }
        seen.extend(
            data.iter()
                .map(|entry| entry["email"].as_str().unwrap_or_default().to_owned()),
        );
    }
    seen.sort();
    let mut expected = people.to_vec();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_relay_password_never_reaches_the_log() {
    use std::process::Stdio;
    let scratch = tempfile::tempdir().expect("a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    // Nothing listens at the relay's port, so sending fails and is logged.
    let relay_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut child = crate::cli::mailvet()
        .arg("serve")
        .env("RUST_LOG", "debug")
        .env("MAILVET_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/mailvet.db", scratch.path().display()),
        )
        // Verification fails fast and answers unknown: the message is sent.
        .env("MAILVET_DNS_SERVERS", "127.0.0.1:1")
        .env("MAILVET_DNS_TIMEOUT", "1s")
        .env(
            "MAILVET_RELAY_URL",
            format!("smtp://mailvet:s3cret-relay-pass@127.0.0.1:{relay_port}"),
        )
        .env("MAILVET_PUBLIC_URL", PUBLIC_URL)
        .env("MAILVET_TOKEN_SECRET", TOKEN_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailvet");
    let client = crate::common::client();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "mailvet did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = client
        .post(format!("{base}/confirmations"))
        .json(&json!({"email": "nina@example.test"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reply.status(), 502);
    let body = reply.text().await.expect("a body");
    assert!(!body.contains("s3cret"), "{body}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        let mut log = String::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let mut stream = stream;
            let _ = std::io::Read::read_to_string(&mut stream, &mut log);
        }
        log
    })
    .await
    .expect("join");
    assert!(
        output.contains("the relay refused a confirmation message"),
        "the failure is logged: {output}"
    );
    assert!(output.contains("127.0.0.1:"), "{output}");
    assert!(!output.contains("s3cret-relay-pass"), "{output}");
}

#[tokio::test]
async fn a_confirmation_bounce_from_an_esp_webhook_suppresses_too() {
    let postfix = Postfix::start_delivering("example.test", &["olga@example.test"], &[]);
    let (app, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    let reply = request_confirmation(&app, json!({"email": "olga@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    postfix.wait_for_delivered("olga@example.test", 1);

    // Postmark reports the hard bounce of the confirmation message.
    let mut event: Value = serde_json::from_slice(
        &std::fs::read("tests/fixtures/webhooks/postmark-hard-bounce.json")
            .expect("the Postmark fixture"),
    )
    .expect("JSON");
    event["Email"] = json!("olga@example.test");
    event["Subject"] = json!("Please confirm your email address");
    let webhook = app
        .send(app.request(Method::POST, "/bounces/postmark").json(&event))
        .await;
    assert_eq!(webhook.status, 200, "{}", webhook.text());
    assert_eq!(app.get("/suppressions/olga@example.test").await.status, 200);

    let again = request_confirmation(&app, json!({"email": "olga@example.test"})).await;
    assert_refused(&again, "suppressed");
    settle(&postfix);
    assert_eq!(postfix.delivered("olga@example.test").len(), 1);
}

#[tokio::test]
async fn the_message_goes_over_starttls_when_the_relay_offers_it_and_its_certificate_is_checked() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate");
    let keys = tempfile::tempdir().expect("a temp dir");
    let cert_file = keys.path().join("relay.pem");
    let key_file = keys.path().join("relay.key");
    std::fs::write(&cert_file, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key_file, certified.key_pair.serialize_pem()).expect("write the key");
    // Postfix's smtpd reads them as its own user.
    for (path, mode) in [
        (keys.path(), 0o755),
        (&cert_file, 0o644),
        (&key_file, 0o644),
    ] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    let tls = [
        format!("smtpd_tls_cert_file = {}", cert_file.display()),
        format!("smtpd_tls_key_file = {}", key_file.display()),
        "smtpd_tls_security_level = may".to_owned(),
        "smtpd_tls_loglevel = 1".to_owned(),
    ];
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let postfix = Postfix::start_delivering_with("example.test", &["pat@example.test"], &tls);

    // A certificate nobody vouches for: the relay is refused, nothing sent.
    let (untrusting, _dns) = app_for(Db::Sqlite, &postfix, |_| {}).await;
    let reply = request_confirmation(&untrusting, json!({"email": "pat@example.test"})).await;
    reply.assert_error(502, "relay_failed");
    settle(&postfix);
    assert!(postfix.delivered("pat@example.test").is_empty());
    assert!(
        !postfix.log().contains("TLS not available"),
        "Postfix offers TLS: {}",
        postfix.log()
    );

    // With the relay's CA trusted, the message goes over TLS.
    let ca = cert_file.clone();
    let (trusting, _dns2) = app_for(Db::Sqlite, &postfix, move |settings| {
        settings.confirm.relay_ca_file = Some(ca);
    })
    .await;
    let reply = request_confirmation(&trusting, json!({"email": "pat@example.test"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    postfix.wait_for_delivered("pat@example.test", 1);
    let log = postfix.log();
    assert!(
        log.contains("TLS connection established from"),
        "Postfix's log:\n{log}"
    );
}
