//! SMTP probes through SOCKS5 proxies (a real one: Debian's microsocks),
//! and the time budget of `POST /verify`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, Zone, example_zone};
use crate::common::postfix::Postfix;
use crate::common::probe::{probe_settings, verdict, verify};
use crate::common::smtp_peer::{Script, SmtpPeer};
use crate::common::socks::{Socks5Server, closed_port};

fn with_proxies(
    dns: std::net::SocketAddr,
    smtp_port: u16,
    proxies: Vec<String>,
) -> impl FnOnce(&mut mailvet::Settings) {
    move |settings| {
        probe_settings(dns, smtp_port)(settings);
        settings.smtp.proxies = proxies.into_iter().map(SecretString::from).collect();
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP address")
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text()
}

#[tokio::test]
async fn probes_reach_postfix_through_the_proxy_with_its_address() {
    let postfix = Postfix::start("example.test", &["alice@example.test"], &[]);
    let auth = Some(("mailvet", "s0cks-pass"));
    let socks = Socks5Server::start("127.0.0.7", auth);
    let dns = TestDns::start(vec![example_zone()]).await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        with_proxies(dns.addr, postfix.port, vec![socks.url(auth)]),
    )
    .await;

    let alice = verify(&app, "alice@example.test").await;
    assert_eq!(verdict(&alice), ("deliverable", "accepted"), "{alice}");
    let bob = verify(&app, "bob@example.test").await;
    assert_eq!(
        verdict(&bob),
        ("undeliverable", "mailbox_not_found"),
        "{bob}"
    );

    // Postfix logs each client's address: the proxy's outgoing one, never
    // mailvet's own (127.0.0.1).
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = postfix.log();
        if log.contains("connect from") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let connects: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("postfix/smtpd") && line.contains(" connect from "))
        .collect();
    assert!(
        !connects.is_empty(),
        "no connection in Postfix's log:\n{log}"
    );
    // (Postfix's own start-up check connects from 127.0.0.1, without a
    // HELO.) Every line naming mailvet's HELO came through the proxy.
    assert!(
        connects
            .iter()
            .any(|line| line.contains("unknown[127.0.0.7]")),
        "{log}"
    );
    let ours: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("helo=<verifier.example.test>"))
        .collect();
    assert!(
        !ours.is_empty(),
        "bob's rejection is not in Postfix's log:\n{log}"
    );
    for line in ours {
        assert!(
            line.contains("[127.0.0.7]"),
            "not through the proxy: {line}"
        );
    }
    let gauge = format!("mailvet_proxy_up{{proxy=\"socks5://{}\"}} 1", socks.addr);
    let text = metrics(&app).await;
    assert!(text.lines().any(|line| line == gauge), "{text}");
    assert!(!text.contains("s0cks-pass"));
}

#[tokio::test]
async fn one_mail_host_sticks_to_one_proxy() {
    let peer = SmtpPeer::start(Script::mailboxes_starting_with("user")).await;
    let first = Socks5Server::start("127.0.0.8", None);
    let second = Socks5Server::start("127.0.0.9", None);
    let dns = TestDns::start(vec![example_zone()]).await;
    let proxies = vec![first.url(None), second.url(None)];
    let app = TestApp::spawn_with(Db::Sqlite, |settings: &mut mailvet::Settings| {
        with_proxies(dns.addr, peer.port(), proxies)(settings);
        // A session per verification or two, so that the proxy is chosen
        // again and again.
        settings.smtp.max_recipients_per_session = 2;
    })
    .await;
    for n in 0..6 {
        let result = verify(&app, &format!("user{n}@example.test")).await;
        assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
    }
    let clients = peer.clients();
    assert!(clients.len() >= 2, "{clients:?}");
    assert!(
        clients.iter().all(|client| *client == clients[0]),
        "one host, several proxies: {clients:?}"
    );
    assert!([ip("127.0.0.8"), ip("127.0.0.9")].contains(&clients[0]));
}

#[tokio::test]
async fn a_dead_proxy_is_set_aside_and_a_live_one_carries_the_probes() {
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let live = Socks5Server::start("127.0.0.10", None);
    let dead = format!("socks5://127.0.0.1:{}", closed_port());
    let dns = TestDns::start(vec![
        example_zone(),
        Zone::new("other.test")
            .mx("other.test", 10, "mx.other.test")
            .ip("mx.other.test", "127.0.0.1"),
    ])
    .await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        with_proxies(dns.addr, peer.port(), vec![dead.clone(), live.url(None)]),
    )
    .await;

    // Whichever proxy each host prefers, every probe gets through.
    for email in ["alice@example.test", "alice@other.test", "bob@other.test"] {
        let result = verify(&app, email).await;
        assert_ne!(verdict(&result).0, "unknown", "{result}");
    }
    assert!(
        peer.clients()
            .iter()
            .all(|client| *client == ip("127.0.0.10"))
    );

    let text = metrics(&app).await;
    let gauge = |proxy: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("mailvet_proxy_up{{proxy=\"{proxy}\"}}")))
            .map(|line| line.rsplit(' ').next().unwrap_or_default().to_owned())
    };
    // The dead proxy was only tried if some host preferred it; either it
    // is marked down, or it was never needed.
    let dead_gauge = gauge(&dead);
    assert!(matches!(dead_gauge.as_deref(), Some("0" | "1")), "{text}");
    assert_eq!(gauge(&live.url(None)).as_deref(), Some("1"), "{text}");
}

#[tokio::test]
async fn with_no_working_proxy_the_answer_is_unknown_and_nothing_goes_direct() {
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@example.test"])).await;
    let socks = Socks5Server::start("127.0.0.11", Some(("mailvet", "right-pass")));
    let dns = TestDns::start(vec![example_zone()]).await;
    // A proxy that is down, and one that refuses our (wrong) password.
    let down_port = closed_port();
    let app = TestApp::spawn_with(
        Db::Sqlite,
        with_proxies(
            dns.addr,
            peer.port(),
            vec![
                format!("socks5://mailvet:hunter2-down@127.0.0.1:{down_port}"),
                socks.url(Some(("mailvet", "hunter2-wrong"))),
            ],
        ),
    )
    .await;

    for email in ["alice@example.test", "bob@example.test"] {
        let result = verify(&app, email).await;
        assert_eq!(
            verdict(&result),
            ("unknown", "connection_failed"),
            "{result}"
        );
        assert!(!result.to_string().contains("hunter2"), "{result}");
    }
    assert_eq!(peer.sessions(), 0, "a probe went around the proxies");
    assert_eq!(
        app.get("/suppressions/bob@example.test").await.status,
        404,
        "suppressed on no evidence"
    );
    let stats = app.get("/stats").await.json();
    let proxies = stats["proxies"].as_array().cloned().unwrap_or_default();
    assert_eq!(proxies.len(), 2, "{stats}");
    for proxy in &proxies {
        assert_eq!(proxy["up"], false, "{proxy}");
        assert!(
            proxy["retry_in_seconds"].as_u64().unwrap_or_default() >= 1,
            "{proxy}"
        );
    }
    assert!(!stats.to_string().contains("hunter2"));
    let text = metrics(&app).await;
    assert!(!text.contains("hunter2"));
    for proxy in [format!("127.0.0.1:{down_port}"), socks.addr.to_string()] {
        let gauge = format!("mailvet_proxy_up{{proxy=\"socks5://{proxy}\"}} 0");
        assert!(text.lines().any(|line| line == gauge), "{text}");
    }
}

/// `POST /verify` for alice with `timeout_ms` as given: the body and the
/// status.
async fn verify_within_raw(app: &TestApp, timeout_ms: Value) -> (Value, u16) {
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .json(&json!({"email": "alice@example.test", "timeout_ms": timeout_ms})),
        )
        .await;
    (
        serde_json::from_slice(&reply.body).unwrap_or_default(),
        reply.status,
    )
}

/// `POST /verify` with a time budget.
async fn verify_within(app: &TestApp, email: &str, timeout_ms: u64) -> (Value, Duration) {
    let started = Instant::now();
    let reply = app
        .send(
            app.request(Method::POST, "/verify")
                .json(&json!({"email": email, "timeout_ms": timeout_ms})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    (reply.json(), started.elapsed())
}

#[tokio::test]
async fn a_slow_server_gets_unknown_timeout_in_budget_and_the_verdict_lands_in_the_cache() {
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(400),
        ..Script::mailboxes(&["alice@example.test"])
    })
    .await;
    let dns = TestDns::start(vec![example_zone()]).await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await;

    let (first, took) = verify_within(&app, "alice@example.test", 300).await;
    assert_eq!(verdict(&first), ("unknown", "timeout"), "{first}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(
        first["message"]
            .as_str()
            .unwrap_or_default()
            .contains("300 ms"),
        "{first}"
    );

    // The probe went on; its verdict is the next answer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let settled = loop {
        let (result, _) = verify_within(&app, "alice@example.test", 300).await;
        if verdict(&result) != ("unknown", "timeout") || Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(verdict(&settled), ("deliverable", "accepted"), "{settled}");
    assert_eq!(
        peer.sessions(),
        1,
        "the address was probed more than once: {:?}",
        peer.commands()
    );
    let (cached, _) = verify_within(&app, "alice@example.test", 300).await;
    assert_eq!(cached["cached"], true, "{cached}");

    // An integer written with a fraction of zero is still an integer; a
    // fraction, or null, is refused.
    let (whole, status) = verify_within_raw(&app, json!(300.0)).await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(verdict(&whole), ("deliverable", "accepted"), "{whole}");
    for refused in [json!(300.5), json!(null), json!(-300)] {
        let (_, status) = verify_within_raw(&app, refused.clone()).await;
        assert!(status == 400 || status == 422, "{refused}: {status}");
    }
    // A budget the server will not take.
    for bad in [0, 50, 120_001] {
        let reply = app
            .send(
                app.request(Method::POST, "/verify")
                    .json(&json!({"email": "alice@example.test", "timeout_ms": bad})),
            )
            .await;
        reply.assert_error(422, "invalid_request");
    }
}

#[tokio::test]
async fn the_server_default_budget_applies_without_timeout_ms_and_batches_are_not_bound() {
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(300),
        ..Script::mailboxes(&["alice@example.test"])
    })
    .await;
    let dns = TestDns::start(vec![example_zone()]).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings: &mut mailvet::Settings| {
        probe_settings(dns.addr, peer.port())(settings);
        settings.http.verify_timeout = Duration::from_millis(200);
    })
    .await;

    let quick = verify(&app, "bob@example.test").await;
    assert_eq!(verdict(&quick), ("unknown", "timeout"), "{quick}");

    let batch = crate::common::probe::verify_batch(&app, &["alice@example.test".to_owned()]).await;
    assert_eq!(
        verdict(&batch[0]),
        ("deliverable", "accepted"),
        "{}",
        batch[0]
    );
}

#[test]
fn proxy_credentials_stay_out_of_help_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("x.db").display());

    let help = crate::cli::mailvet()
        .env("MAILVET_PROXY", "socks5://alice:hunter2@127.0.0.1:1080")
        .args(["check", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    assert!(text.contains("--proxy <URLS>"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    for (value, expected) in [
        (
            "socks5h://alice:hunter2@127.0.0.1:1080",
            "the scheme must be socks5://",
        ),
        (
            "socks5://alice:hunter2@127.0.0.1:1080/x",
            "no path, query or fragment",
        ),
    ] {
        let output = crate::cli::mailvet()
            .env("MAILVET_PROXY", format!("socks5://127.0.0.1:1081,{value}"))
            .args(["check", "--database-url", &database, "a@example.test"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("MAILVET_PROXY, URL 2"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
