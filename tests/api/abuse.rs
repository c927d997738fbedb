//! Abuse: what a hostile mail server, a browser key or a crafted address
//! can make mailvet do, seen from outside — answers, rows and what the
//! peers received. Everything runs on loopback, bounded in time.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, Zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};
use crate::jobs_api::{upload_json, wait_finished};

/// Cells as a spreadsheet would see them: those that begin like a formula
/// carry a leading `'`.
#[tokio::test]
async fn csv_exports_do_not_hand_spreadsheets_formulas() {
    let dns = TestDns::start(vec![
        Zone::new("d0.test")
            .mx("d0.test", 10, "mx.d0.test")
            .ip("mx.d0.test", "127.0.0.1"),
    ])
    .await;
    let formulas = ["=1+2@d0.test", "-3+4@d0.test", "+5@d0.test"];
    let peer = SmtpPeer::start(Script::mailboxes(&formulas)).await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await;

    let reply = upload_json(&app, &json!({ "emails": formulas })).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    wait_finished(&app, &id, Duration::from_secs(20)).await;
    let reply = app
        .send(
            app.request(Method::GET, &format!("/jobs/{id}/results"))
                .header("accept", "text/csv"),
        )
        .await;
    let mut reader = csv::Reader::from_reader(reply.body.as_slice());
    let emails: Vec<String> = reader
        .records()
        .map(|row| row.expect("a row")[0].to_owned())
        .collect();
    assert_eq!(emails, ["'=1+2@d0.test", "'-3+4@d0.test", "'+5@d0.test"]);
    // JSON keeps the address as it is.
    let ndjson = app
        .send(
            app.request(Method::GET, &format!("/jobs/{id}/results"))
                .header("accept", "application/x-ndjson"),
        )
        .await;
    assert!(
        ndjson.text().contains("\"=1+2@d0.test\""),
        "{}",
        ndjson.text()
    );

    // The suppression feed's CSV, with a diagnostic that is a formula.
    let reply = app
        .send(app.request(Method::POST, "/bounces").json(&json!({
            "email": "-bob@d0.test",
            "status": "5.1.1",
            "diagnostic": "=HYPERLINK(\"http://attacker.test\",\"click\")",
        })))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let feed = app
        .send(
            app.request(Method::GET, "/suppressions")
                .header("accept", "text/csv"),
        )
        .await;
    let mut reader = csv::Reader::from_reader(feed.body.as_slice());
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let row = reader
        .records()
        .map(|row| row.expect("a row"))
        .find(|row| row[column("email")].contains("bob@d0.test"))
        .expect("the bounce is in the feed");
    assert_eq!(&row[column("email")], "'-bob@d0.test");
    assert_eq!(
        &row[column("diagnostic")],
        "'=HYPERLINK(\"http://attacker.test\",\"click\")"
    );
}

const SECRET: &str = "sk_abuse_0123456789abcdef";
const PUBLIC: &str = "pk_abuse_signup_form";

fn keys(settings: &mut mailvet::Settings) {
    use mailvet::secret::SecretString;
    settings.keys.secret_keys = vec![SecretString::from(SECRET)];
    settings.keys.public_keys = vec![SecretString::from(PUBLIC)];
}

async fn verify_as(app: &TestApp, key: &str, body: serde_json::Value) -> crate::common::app::Reply {
    app.send(
        app.request(Method::POST, "/verify")
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

/// Anyone can read a public key from a signup page; what it gets back must
/// not say whether someone complained about the sender.
#[tokio::test]
async fn a_public_key_learns_nothing_about_the_suppression_list_or_mail_servers() {
    let dns = TestDns::start(vec![
        Zone::new("d0.test")
            .mx("d0.test", 10, "mx.d0.test")
            .ip("mx.d0.test", "127.0.0.1"),
    ])
    .await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@d0.test", "carol@d0.test"])).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        keys(settings);
    })
    .await;
    let added = app
        .send(
            app.request(Method::POST, "/suppressions")
                .bearer_auth(SECRET)
                .json(&json!({"email": "carol@d0.test", "reason": "complaint"})),
        )
        .await;
    assert!(added.status < 300, "{}", added.text());

    for (email, status, reason) in [
        ("carol@d0.test", "undeliverable", "suppressed"),
        ("alice@d0.test", "deliverable", "accepted"),
        ("bob@d0.test", "undeliverable", "mailbox_not_found"),
    ] {
        let reply = verify_as(&app, PUBLIC, json!({ "email": email })).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        crate::common::spec::assert_matches_schema("PublicVerifyResult", &body);
        let mut fields: Vec<&str> = body
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(fields, ["email", "flags", "reason", "status", "suggestion"]);
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        let text = reply.text();
        for secret in ["complaint", "mx.d0.test", "550", "5.1.1"] {
            assert!(
                !text.contains(secret),
                "{secret} shown to a public key: {text}"
            );
        }
    }

    // The secret key still sees everything.
    let reply = verify_as(&app, SECRET, json!({"email": "carol@d0.test"})).await;
    assert_eq!(reply.json()["suppression_reason"], "complaint");
    let reply = verify_as(&app, SECRET, json!({"email": "bob@d0.test"})).await;
    assert_eq!(reply.json()["smtp"]["code"], 550, "{}", reply.text());

    // A public key may not skip the cache.
    verify_as(
        &app,
        PUBLIC,
        json!({"email": "alice@d0.test", "fresh": true}),
    )
    .await
    .assert_error(403, "forbidden");
}

/// One browser sending random addresses at one domain spends its own share
/// of the domain's probe budget, not everyone's.
#[tokio::test]
async fn a_public_client_cannot_drain_a_domain_for_everyone() {
    let dns = TestDns::start(vec![
        Zone::new("d0.test")
            .mx("d0.test", 10, "mx.d0.test")
            .ip("mx.d0.test", "127.0.0.1"),
    ])
    .await;
    let peer = SmtpPeer::start(Script::mailboxes(&["alice@d0.test"])).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peer.port())(settings);
        keys(settings);
        // 20 probes a minute at a domain: public callers 10, one client 2.
        settings.verify.probe_budget_per_domain = 20;
        settings.http.rate_limit_public = 10_000;
        settings.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a range")];
    })
    .await;
    let from = |ip: &str, email: String| {
        app.request(Method::POST, "/verify")
            .bearer_auth(PUBLIC)
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": email }))
    };

    // The drainer: 30 random addresses, two probed.
    let mut limited = 0;
    for n in 0..30 {
        let body = app
            .send(from("198.51.100.7", format!("random{n}@d0.test")))
            .await
            .json();
        if body["reason"] == "rate_limited" {
            assert_eq!(body["status"], "unknown", "{body}");
            limited += 1;
        }
    }
    assert_eq!(limited, 28, "one client gets a tenth of the budget");
    // Its IPv6 twin, rotating through one /64, is the same client.
    let body = app
        .send(from("2001:db8:7:7::1", "v6a@d0.test".into()))
        .await
        .json();
    assert_eq!(body["reason"], "mailbox_not_found", "{body}");
    let body = app
        .send(from("2001:db8:7:7::2", "v6b@d0.test".into()))
        .await
        .json();
    assert_eq!(body["reason"], "mailbox_not_found", "{body}");
    let body = app
        .send(from("2001:db8:7:7:ffff::3", "v6c@d0.test".into()))
        .await
        .json();
    assert_eq!(body["reason"], "rate_limited", "{body}");

    // Another visitor still gets real answers.
    let body = app
        .send(from("203.0.113.9", "alice@d0.test".into()))
        .await
        .json();
    assert_eq!(body["reason"], "accepted", "{body}");

    // Many public clients together stop at the public half; secret keys
    // keep the other half.
    for n in 0..40 {
        app.send(from(&format!("192.0.2.{n}"), format!("many{n}@d0.test")))
            .await;
    }
    let reply = verify_as(&app, SECRET, json!({"email": "secret1@d0.test"})).await;
    assert_eq!(
        reply.json()["reason"],
        "mailbox_not_found",
        "{}",
        reply.text()
    );
    let probed: Vec<String> = peer
        .rcpts()
        .into_iter()
        .filter(|rcpt| !rcpt.starts_with("mailvet-"))
        .collect();
    // 10 public probes and the secret one; one more if the public half
    // refilled a probe (one every 6 s) while the test ran.
    assert!(
        (11..=12).contains(&probed.len()),
        "public callers probed more than their half (+1 secret): {probed:?}"
    );
}

/// A listener on each of `ips` at one port that counts the connections it
/// accepts and holds each one `hold` with the most held at once, answering
/// like a mail server that knows nobody (every reply after `delay`).
struct CountingPeers {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most_at_once: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingPeers {
    async fn start(ips: &[String], delay: Duration, greet: bool) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let mut port = 0;
        for ip in ips {
            let listener = tokio::net::TcpListener::bind((ip.as_str(), port))
                .await
                .expect("bind a counting peer");
            port = listener.local_addr().expect("address").port();
            let (accepted, open, most_at_once) =
                (accepted.clone(), open.clone(), most_at_once.clone());
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if !greet {
                        continue; // dropped: the connection closes at once
                    }
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most_at_once.fetch_max(now, Ordering::SeqCst);
                    let open = open.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = socket.into_split();
                        let mut lines = BufReader::new(read).lines();
                        tokio::time::sleep(delay).await;
                        let _ = write.write_all(b"220 counting.test ESMTP\r\n").await;
                        while let Ok(Some(line)) = lines.next_line().await {
                            tokio::time::sleep(delay).await;
                            let upper = line.to_ascii_uppercase();
                            let reply: &[u8] = if upper.starts_with("QUIT") {
                                b"221 bye\r\n"
                            } else if upper.starts_with("RCPT") {
                                b"550 5.1.1 no such user\r\n"
                            } else {
                                b"250 ok\r\n"
                            };
                            if write.write_all(reply).await.is_err() || upper.starts_with("QUIT") {
                                break;
                            }
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
        CountingPeers {
            port,
            accepted,
            most_at_once,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn most_at_once(&self) -> usize {
        self.most_at_once.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A domain that publishes 20 MX names of 4 addresses each, none of which
/// talks, gets 5 names × 2 addresses tried, not 80.
#[tokio::test]
async fn a_domain_with_hundreds_of_mail_hosts_gets_a_few_tried() {
    let ips: Vec<String> = (0..80).map(|n| format!("127.0.80.{}", n + 1)).collect();
    let peers = CountingPeers::start(&ips, Duration::ZERO, false).await;
    let mut zone = Zone::new("fan.test");
    for host in 0..20 {
        let name = format!("mx{host}.fan.test");
        zone = zone.mx("fan.test", 10 + host as u16, &name);
        for k in 0..4 {
            zone = zone.ip(&name, &ips[host * 4 + k]);
        }
    }
    let dns = TestDns::start(vec![zone]).await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peers.port)).await;
    let body = crate::common::probe::verify(&app, "someone@fan.test").await;
    assert_eq!(body["status"], "unknown", "{body}");
    assert_eq!(peers.accepted(), 10, "5 hosts × 2 addresses: {body}");
}

/// Thirty domains whose MX names all point at one address: the sessions
/// held at that address at once stay under the per-host cap.
#[tokio::test]
async fn many_names_for_one_address_share_its_session_cap() {
    let peers =
        CountingPeers::start(&["127.0.81.1".to_owned()], Duration::from_millis(100), true).await;
    let zones: Vec<Zone> = (0..30)
        .map(|n| {
            let domain = format!("victim{n}.test");
            let mx = format!("mx.{domain}");
            Zone::new(&domain)
                .mx(&domain, 10, &mx)
                .ip(&mx, "127.0.81.1")
        })
        .collect();
    let dns = TestDns::start(zones).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peers.port)(settings);
        settings.smtp.max_sessions_per_host = 2;
        settings.verify.probe_budget_per_domain = 1_000;
    })
    .await;
    let emails: Vec<String> = (0..30).map(|n| format!("user@victim{n}.test")).collect();
    let reply = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({ "emails": emails })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for result in reply.json()["results"].as_array().expect("results") {
        assert_eq!(result["reason"], "mailbox_not_found", "{result}");
    }
    assert_eq!(peers.accepted(), 30);
    assert!(
        peers.most_at_once() <= 2,
        "{} sessions at once at one address",
        peers.most_at_once()
    );
}

/// A server that answers every command after seconds cannot hold a job's
/// worker past the group deadline: its addresses are answered
/// `unknown / timeout` and the job finishes.
#[tokio::test]
async fn a_tarpit_cannot_hold_a_job_past_its_group_deadline() {
    let peers =
        CountingPeers::start(&["127.0.82.1".to_owned()], Duration::from_secs(3), true).await;
    let dns = TestDns::start(vec![
        Zone::new("tarpit.test")
            .mx("tarpit.test", 10, "mx.tarpit.test")
            .ip("mx.tarpit.test", "127.0.82.1"),
    ])
    .await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, peers.port)(settings);
        settings.smtp.timeout = Duration::from_secs(10);
        settings.jobs.group_deadline = Duration::from_secs(2);
    })
    .await;
    let started = tokio::time::Instant::now();
    let reply = upload_json(&app, &json!({"emails": ["a@tarpit.test", "b@tarpit.test"]})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    let job = wait_finished(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["counts"]["unknown"], 2, "{job}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the job took {:?}",
        started.elapsed()
    );
    let results = app
        .send(
            app.request(Method::GET, &format!("/jobs/{id}/results"))
                .header("accept", "application/x-ndjson"),
        )
        .await;
    for line in results.text().lines() {
        let result: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(result["reason"], "timeout", "{result}");
    }
}

fn ses_fixture(name: &str) -> serde_json::Value {
    let bytes = std::fs::read(format!("tests/fixtures/webhooks/{name}")).expect("a fixture");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn post_ses(app: &TestApp, message: &serde_json::Value) -> crate::common::app::Reply {
    app.send(
        app.request(Method::POST, "/bounces/ses")
            .header("content-type", "text/plain")
            .body(serde_json::to_vec(message).expect("JSON")),
    )
    .await
}

async fn jane_suppressed(app: &TestApp) -> bool {
    app.get("/suppressions/jane@example.com").await.status == 200
}

/// Someone who knows the webhook URL cannot make mailvet record a bounce
/// SNS did not sign.
#[tokio::test]
async fn forged_sns_messages_are_refused_and_nothing_is_recorded() {
    use crate::common::sns::SnsSigner;
    let signer = SnsSigner::shared();
    let app = TestApp::spawn().await;

    // Signed, then changed: the signature no longer matches.
    let mut forged = ses_fixture("ses-bounce-permanent.json");
    signer.sign(&mut forged, "1");
    forged["TopicArn"] = "arn:aws:sns:us-west-2:123456789012:Other".into();
    post_ses(&app, &forged)
        .await
        .assert_error(401, "invalid_signature");
    // Not signed at all.
    let mut unsigned = ses_fixture("ses-bounce-permanent.json");
    unsigned
        .as_object_mut()
        .expect("object")
        .remove("Signature");
    post_ses(&app, &unsigned)
        .await
        .assert_error(401, "invalid_signature");
    // Its certificate on a host that is not SNS's.
    let mut elsewhere = ses_fixture("ses-bounce-permanent.json");
    signer.sign(&mut elsewhere, "1");
    elsewhere["SigningCertURL"] =
        "https://sns.us-west-2.amazonaws.com.attacker.test/cert.pem".into();
    post_ses(&app, &elsewhere)
        .await
        .assert_error(401, "invalid_signature");
    assert!(
        !jane_suppressed(&app).await,
        "nothing recorded from a forged message"
    );

    // Signed by SNS, with SHA256 (SignatureVersion 2): taken.
    let mut genuine = ses_fixture("ses-bounce-permanent.json");
    signer.sign(&mut genuine, "2");
    let reply = post_ses(&app, &genuine).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(jane_suppressed(&app).await);
}

/// With topics pinned, a genuine message for another topic is refused.
#[tokio::test]
async fn sns_messages_for_a_topic_not_pinned_are_refused() {
    use crate::common::sns::SnsSigner;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.sns_topic_arns = vec!["arn:aws:sns:us-west-2:123456789012:Bounces".into()];
    })
    .await;
    let mut message = ses_fixture("ses-bounce-permanent.json");
    SnsSigner::shared().sign(&mut message, "1");
    post_ses(&app, &message)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.get("/suppressions/jane@example.com").await.status, 404);

    let mut pinned = ses_fixture("ses-bounce-permanent.json");
    pinned["TopicArn"] = "arn:aws:sns:us-west-2:123456789012:Bounces".into();
    SnsSigner::shared().sign(&mut pinned, "1");
    let reply = post_ses(&app, &pinned).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// The key in an ESP's webhook URL delivers webhooks and does nothing else.
#[tokio::test]
async fn a_leaked_webhook_key_can_only_deliver_webhooks() {
    use mailvet::secret::SecretString;
    const WEBHOOK: &str = "wk_postmark_0123456789abcdef";
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        keys(settings);
        settings.keys.webhook_keys = vec![SecretString::from(WEBHOOK)];
    })
    .await;
    let fixture =
        std::fs::read("tests/fixtures/webhooks/postmark-hard-bounce.json").expect("a fixture");
    // As an ESP sends it: the key as the password of the URL.
    let reply = app
        .send(
            app.request(Method::POST, "/bounces/postmark")
                .basic_auth("postmark", Some(WEBHOOK))
                .header("content-type", "application/json")
                .body(fixture),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    for (method, path) in [
        (Method::GET, "/suppressions"),
        (Method::GET, "/suppressions/anyone@example.test"),
        (Method::DELETE, "/suppressions/anyone@example.test"),
        (Method::POST, "/verify"),
        (Method::GET, "/stats"),
        (Method::POST, "/bounces"),
    ] {
        let reply = app
            .send(
                app.request(method.clone(), path)
                    .bearer_auth(WEBHOOK)
                    .json(&json!({"email": "anyone@example.test"})),
            )
            .await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text());
    }
}

/// Mailgun signs a timestamp and a token, not the event: a captured
/// signature replayed with other event data is refused.
#[tokio::test]
async fn a_captured_mailgun_signature_cannot_carry_another_event() {
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        settings.keys.mailgun_signing_key =
            Some(mailvet::secret::SecretString::from("mg-signing-key"));
    })
    .await;
    let genuine =
        crate::webhooks_api::signed_mailgun("mg-signing-key", chrono::Utc::now().timestamp());
    let post = |body: Vec<u8>| {
        app.request(Method::POST, "/bounces/mailgun")
            .header("content-type", "application/json")
            .body(body)
    };
    let reply = app.send(post(genuine.clone())).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let mut replayed: serde_json::Value = serde_json::from_slice(&genuine).expect("JSON");
    replayed["event-data"]["recipient"] = "victim@example.test".into();
    app.send(post(serde_json::to_vec(&replayed).expect("JSON")))
        .await
        .assert_error(401, "invalid_signature");
    assert_eq!(
        app.get("/suppressions/victim@example.test").await.status,
        404
    );
}

/// A bounce report's text is kept cleaned and cut, in the entry and its
/// evidence alike.
#[tokio::test]
async fn a_huge_bounce_diagnostic_is_kept_small_and_clean() {
    let app = TestApp::spawn().await;
    let diagnostic = format!(
        "550 5.1.1 user unknown \u{1b}[2J{}",
        "padding\u{0} ".repeat(20_000)
    );
    let reply = app
        .send(app.request(Method::POST, "/bounces").json(&json!({
            "email": "gone@example.test",
            "status": "5.1.1",
            "diagnostic": diagnostic,
        })))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let entry = app.get("/suppressions/gone@example.test").await.json();
    for text in [&entry["diagnostic"], &entry["evidence"]["text"]] {
        let text = text.as_str().expect("a text");
        assert!(text.len() <= 1024, "{} bytes kept", text.len());
        assert!(text.starts_with("550 5.1.1 user unknown [2J"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
}
