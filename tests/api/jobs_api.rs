//! Bulk jobs end to end: uploads, progress, results, cancellation,
//! greylisting retries, restarts and replicas sharing one job, against a
//! DNS server and SMTP peers of the test's own on loopback.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailvet::Settings;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common;
use crate::common::app::{Db, Reply, TestApp};
use crate::common::dns::{TestDns, Zone};
use crate::common::probe::probe_settings;
use crate::common::smtp_peer::{Script, SmtpPeer};

/// `count` domains `d0.test`, `d1.test`… each with its own MX host name
/// on 127.0.0.1.
fn domains(count: usize) -> Vec<Zone> {
    (0..count)
        .map(|n| {
            let domain = format!("d{n}.test");
            Zone::new(&domain)
                .mx(&domain, 10, &format!("mx.{domain}"))
                .ip(&format!("mx.{domain}"), "127.0.0.1")
        })
        .collect()
}

fn job_settings(
    dns: &TestDns,
    peer: &SmtpPeer,
    more: impl FnOnce(&mut Settings),
) -> impl FnOnce(&mut Settings) {
    let probe = probe_settings(dns.addr, peer.port());
    move |settings: &mut Settings| {
        probe(settings);
        settings.verify.probe_budget_per_domain = 10_000;
        more(settings);
    }
}

async fn upload_csv(app: &TestApp, csv: &str) -> Reply {
    app.send(
        app.request(Method::POST, "/jobs")
            .header("content-type", "text/csv")
            .body(csv.to_owned()),
    )
    .await
}

pub(crate) async fn upload_json(app: &TestApp, body: &Value) -> Reply {
    app.send(app.request(Method::POST, "/jobs").json(body))
        .await
}

/// Polls the job until it has finished; the final job.
pub(crate) async fn wait_finished(app: &TestApp, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let reply = app.get(&format!("/jobs/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let job = reply.json();
        if ["completed", "cancelled", "failed"]
            .contains(&job["status"].as_str().unwrap_or_default())
        {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not finish in {within:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn results_ndjson(app: &TestApp, id: &str) -> Vec<Value> {
    let reply = app
        .send(app.request(Method::GET, &format!("/jobs/{id}/results?format=ndjson")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    reply
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON result per line"))
        .collect()
}

async fn a_csv_job_verifies_every_address_in_input_order(db: Db) {
    let dns = TestDns::start(domains(3)).await;
    let known: Vec<String> = (0..3)
        .flat_map(|d| (0..5).map(move |u| format!("user{u}@d{d}.test")))
        .collect();
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let peer = SmtpPeer::start(Script::mailboxes(&known_refs)).await;
    let app = TestApp::spawn_with(db, job_settings(&dns, &peer, |_| {})).await;

    // Interleaved domains, unknown users, a bad address and a duplicate.
    let mut emails = Vec::new();
    for u in 0..8 {
        for d in 0..3 {
            emails.push(format!("user{u}@d{d}.test"));
        }
    }
    emails.push("not an address".into());
    emails.push("USER0@d0.test".into());
    let csv = format!(
        "name,email\n{}",
        emails
            .iter()
            .enumerate()
            .map(|(n, email)| format!("person {n},\"{email}\"\n"))
            .collect::<String>()
    );
    let reply = upload_csv(&app, &csv).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let job = reply.json();
    let id = job["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        reply.header("location"),
        Some(format!("/jobs/{id}").as_str())
    );
    assert_eq!(job["total"], 26);

    let job = wait_finished(&app, &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["processed"], 26);
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["eta_seconds"], Value::Null);
    assert!(job["completed_at"].is_string());
    // 15 known (+ the duplicate), 9 unknown (+ the bad address).
    assert_eq!(
        job["counts"],
        json!({"deliverable": 16, "undeliverable": 10, "risky": 0, "unknown": 0}),
        "{job}"
    );

    let results = results_ndjson(&app, &id).await;
    let order: Vec<&str> = results
        .iter()
        .map(|r| r["email"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, emails.iter().map(String::as_str).collect::<Vec<_>>());
    for result in &results {
        common::spec::assert_matches_schema("VerifyResult", result);
    }
    assert_eq!(results[0]["status"], "deliverable");
    assert_eq!(results[15]["reason"], "mailbox_not_found", "user5@d0.test");
    assert_eq!(results[24]["reason"], "invalid_syntax");
    assert_eq!(results[25]["status"], "deliverable");

    // Grouped by domain: one session per domain, not one per address.
    assert_eq!(peer.sessions(), 3, "{:?}", peer.commands());
    let rcpts: Vec<String> = peer
        .rcpts()
        .into_iter()
        .filter(|r| !r.starts_with("mailvet-"))
        .collect();
    assert_eq!(
        rcpts.len(),
        24,
        "each distinct address asked once: {rcpts:?}"
    );

    // The unknown users were suppressed, as by POST /verify.
    assert_eq!(app.get("/suppressions/user7@d2.test").await.status, 200);

    // CSV results: a header with every field, one row per address.
    let reply = app
        .send(
            app.request(Method::GET, &format!("/jobs/{id}/results"))
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let mut reader = csv::Reader::from_reader(reply.body.as_slice());
    let headers = reader.headers().expect("a header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        mailvet::verify::export::CSV_COLUMNS
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|row| row.expect("a row")).collect();
    assert_eq!(rows.len(), 26);
    assert_eq!(&rows[15][0], "user5@d0.test");
    assert_eq!(&rows[15][3], "mailbox_not_found");
    assert_eq!(&rows[15][7], "550");
    assert_eq!(&rows[15][8], "5.1.1");
}

#[tokio::test]
async fn sqlite_a_csv_job_verifies_every_address_in_input_order() {
    a_csv_job_verifies_every_address_in_input_order(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_csv_job_verifies_every_address_in_input_order() {
    a_csv_job_verifies_every_address_in_input_order(Db::Postgres).await;
}

/// A webhook call as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    body: Value,
    raw: Vec<u8>,
    timestamp: Option<String>,
    signature: Option<String>,
}

/// A loopback HTTP server that records the calls POSTed to it.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned)
                    };
                    log.lock().expect("log").push(Received {
                        body: serde_json::from_slice(&body).expect("JSON"),
                        raw: body.to_vec(),
                        timestamp: header("x-mailvet-timestamp"),
                        signature: header("x-mailvet-signature"),
                    });
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (
        format!("http://hooks.d0.test:{}/hook", addr.port()),
        received,
    )
}

/// `d0.test` with a mail host, and `hooks.d0.test`, where a webhook
/// receiver listens, on 127.0.0.1.
fn domain_with_a_webhook_host() -> Vec<Zone> {
    vec![
        Zone::new("d0.test")
            .mx("d0.test", 10, "mx.d0.test")
            .ip("mx.d0.test", "127.0.0.1")
            .ip("hooks.d0.test", "127.0.0.1"),
    ]
}

#[tokio::test]
async fn a_json_job_calls_its_webhook_with_the_final_job() {
    let dns = TestDns::start(domain_with_a_webhook_host()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["a@d0.test"])).await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        job_settings(&dns, &peer, |settings| {
            settings.jobs.allow_private_webhooks = true;
            settings.jobs.webhook_secret = Some("whsec_test_0123456789".into());
        }),
    )
    .await;
    // The receiver's name resolves through mailvet's resolver (the test's
    // DNS server), not the system's.
    let (url, received) = webhook_receiver().await;

    let reply = upload_json(
        &app,
        &json!({"emails": ["a@d0.test", "b@d0.test"], "webhook_url": url}),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(reply.json()["webhook_url"], url.as_str());
    let job = wait_finished(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["counts"]["deliverable"], 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.lock().expect("log").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no webhook call");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = received.lock().expect("log").clone();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    common::spec::assert_matches_schema("Job", &call.body);
    assert_eq!(call.body["id"], id.as_str());
    assert_eq!(call.body["status"], "completed");
    assert_eq!(call.body["processed"], 2);

    // Signed as the README tells a receiver to check: HMAC-SHA256 of
    // `<timestamp>.<body>` with the webhook secret, and a fresh timestamp.
    let timestamp = call.timestamp.clone().expect("X-Mailvet-Timestamp");
    let sent_at: i64 = timestamp.parse().expect("Unix seconds");
    assert!(
        (chrono::Utc::now().timestamp() - sent_at).abs() < 60,
        "{timestamp}"
    );
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&call.raw);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"whsec_test_0123456789");
    let expected: String = ring::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        call.signature.as_deref(),
        Some(format!("v1={expected}").as_str())
    );
}

#[tokio::test]
async fn a_webhook_to_a_private_address_is_refused_unless_allowed() {
    let dns = TestDns::start(domain_with_a_webhook_host()).await;
    let peer = SmtpPeer::start(Script::mailboxes(&["a@d0.test"])).await;
    let app = TestApp::spawn_with(Db::Sqlite, job_settings(&dns, &peer, |_| {})).await;
    let (by_name, received) = webhook_receiver().await;
    let port = by_name
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a port")
        .to_owned();
    // A name that resolves to loopback, and a loopback literal: neither is
    // dialled.
    let by_address = format!("http://127.0.0.1:{port}/hook");
    for url in [&by_name, &by_address] {
        let reply = upload_json(&app, &json!({"emails": ["a@d0.test"], "webhook_url": url})).await;
        assert_eq!(reply.status, 202, "{}", reply.text());
        let id = reply.json()["id"].as_str().expect("id").to_owned();
        let job = wait_finished(&app, &id, Duration::from_secs(20)).await;
        assert_eq!(job["status"], "completed");
    }
    // A delivered webhook arrives within milliseconds of the job's end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        received.lock().expect("log").is_empty(),
        "a webhook reached a loopback receiver without --allow-private-webhooks"
    );
}

#[tokio::test]
async fn uploads_that_cannot_be_taken_get_precise_errors_and_leave_no_job() {
    let dns = TestDns::start(domains(1)).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        job_settings(&dns, &peer, |settings| {
            settings.jobs.max_addresses = 5;
            settings.jobs.max_upload_bytes = 4096;
        }),
    )
    .await;

    upload_json(&app, &json!({"webhook_url": null}))
        .await
        .assert_error(422, "invalid_request");
    upload_json(&app, &json!({"emails": [1, 2]}))
        .await
        .assert_error(422, "invalid_request");
    upload_json(
        &app,
        &json!({"emails": ["a@d0.test"], "webhook_url": "ftp://x"}),
    )
    .await
    .assert_error(422, "invalid_webhook_url");
    app.send(
        app.request(Method::POST, "/jobs")
            .header("content-type", "application/json")
            .body(r#"{"emails": ["a@d0.test""#),
    )
    .await
    .assert_error(400, "malformed_body");
    app.send(
        app.request(Method::POST, "/jobs")
            .header("content-type", "text/plain")
            .body("a@d0.test"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    let six: String = (0..6).map(|n| format!("u{n}@d0.test\n")).collect();
    upload_csv(&app, &six)
        .await
        .assert_error(413, "too_many_addresses");
    let big: String = (0..4)
        .map(|n| format!("{}{n}@d0.test\n", "x".repeat(1200)))
        .collect();
    upload_csv(&app, &big)
        .await
        .assert_error(413, "payload_too_large");
    let bad_utf8 = app
        .send(
            app.request(Method::POST, "/jobs")
                .header("content-type", "text/csv")
                .body(b"email\na@d0.test\n\xff@d0.test\n".to_vec()),
        )
        .await;
    bad_utf8.assert_error(400, "malformed_body");
    assert!(bad_utf8.text().contains("line 3"), "{}", bad_utf8.text());
    // As `mailvet check --file` reads it: a CSV without an address column,
    // or with nothing in it, is refused.
    let no_addresses = upload_csv(&app, "name,phone\nAlice,555 0100\n").await;
    no_addresses.assert_error(422, "invalid_request");
    assert!(
        no_addresses.text().contains("the CSV has no usable column"),
        "{}",
        no_addresses.text()
    );
    upload_csv(&app, "")
        .await
        .assert_error(422, "invalid_request");
    assert_eq!(
        job_rows(&app).await,
        (0, 0),
        "failed uploads leave nothing behind"
    );

    let five: String = (0..5).map(|n| format!("u{n}@d0.test\n")).collect();
    assert_eq!(upload_csv(&app, &five).await.status, 202);
    assert_eq!(job_rows(&app).await, (1, 5));
    app.get(&format!("/jobs/{}", uuid::Uuid::new_v4()))
        .await
        .assert_error(404, "not_found");
    app.get("/jobs/not-a-uuid")
        .await
        .assert_error(404, "not_found");
}

/// The rows of `jobs` and `job_items` in the app's SQLite database.
async fn job_rows(app: &TestApp) -> (i64, i64) {
    let pool = sqlx::SqlitePool::connect(&app.database_url)
        .await
        .expect("open the database");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&pool)
        .await
        .expect("count");
    let items: i64 = sqlx::query_scalar("select count(*) from job_items")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    (jobs, items)
}

/// Knows every `user*` mailbox, but greylists each address the first time
/// it is asked for (as postgrey does); rejects mailvet's catch-all probe.
fn greylisting() -> Script {
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    Script {
        rcpt: Arc::new(move |address: &str| {
            if address.starts_with("mailvet-") {
                return format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown");
            }
            if seen.lock().expect("seen").insert(address.to_owned()) {
                format!(
                    "450 4.2.0 <{address}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/d0.test.html"
                )
            } else {
                "250 2.1.5 Ok".into()
            }
        }),
        ..Script::mailboxes(&[])
    }
}

#[tokio::test]
async fn greylisted_addresses_are_tried_again_after_the_delay() {
    let dns = TestDns::start(domains(1)).await;
    let peer = SmtpPeer::start(greylisting()).await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        job_settings(&dns, &peer, |settings| {
            settings.jobs.greylist_delay = Duration::from_millis(300);
            settings.jobs.greylist_attempts = 3;
        }),
    )
    .await;
    let reply = upload_json(&app, &json!({"emails": ["user1@d0.test", "user2@d0.test"]})).await;
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    let job = wait_finished(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["counts"]["deliverable"], 2, "{job}");
    let results = results_ndjson(&app, &id).await;
    assert_eq!(results[0]["reason"], "accepted");
    assert_eq!(
        results[0]["cached"], false,
        "the retry asked the server again"
    );
    let asked = peer
        .rcpts()
        .iter()
        .filter(|rcpt| *rcpt == "user1@d0.test")
        .count();
    assert_eq!(asked, 2, "greylisted once, then accepted");
}

#[tokio::test]
async fn an_address_greylisted_on_every_try_ends_unknown_not_undeliverable() {
    let dns = TestDns::start(domains(1)).await;
    let peer = SmtpPeer::start(Script::rcpt_reply(
        "451 4.7.1 <user1@d0.test>: Recipient address rejected: Greylisted for 5 minutes",
    ))
    .await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        job_settings(&dns, &peer, |settings| {
            settings.jobs.greylist_delay = Duration::from_millis(100);
            settings.jobs.greylist_attempts = 3;
        }),
    )
    .await;
    let reply = upload_json(&app, &json!({"emails": ["user1@d0.test"]})).await;
    let id = reply.json()["id"].as_str().expect("id").to_owned();
    let job = wait_finished(&app, &id, Duration::from_secs(20)).await;
    assert_eq!(job["counts"]["unknown"], 1, "{job}");
    let results = results_ndjson(&app, &id).await;
    assert_eq!(
        (results[0]["status"].as_str(), results[0]["reason"].as_str()),
        (Some("unknown"), Some("greylisted"))
    );
    let asked = peer
        .rcpts()
        .iter()
        .filter(|rcpt| *rcpt == "user1@d0.test")
        .count();
    assert_eq!(asked, 3, "three tries in all");
    assert_eq!(
        app.get("/suppressions/user1@d0.test").await.status,
        404,
        "never suppressed"
    );
}

#[tokio::test]
async fn a_cancelled_job_stops_and_keeps_its_results() {
    let dns = TestDns::start(domains(40)).await;
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(30),
        ..Script::catch_all()
    })
    .await;
    let app = TestApp::spawn_with(
        Db::Sqlite,
        job_settings(&dns, &peer, |settings| {
            settings.jobs.workers = Some(1);
            settings.jobs.chunk_size = 2;
        }),
    )
    .await;
    let emails: Vec<String> = (0..40).map(|d| format!("someone@d{d}.test")).collect();
    let id = upload_json(&app, &json!({ "emails": emails })).await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.get(&format!("/jobs/{id}")).await.json()["processed"] == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let running = app.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(running["status"], "running");
    assert!(
        running["eta_seconds"].as_f64().is_some_and(|eta| eta > 0.0),
        "{running}"
    );

    let reply = app
        .send(app.request(Method::DELETE, &format!("/jobs/{id}")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["status"], "cancelled");
    // The chunk in hand finishes (however slow the machine), then nothing
    // more is done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let stopped = loop {
        let before = app.get(&format!("/jobs/{id}")).await.json();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = app.get(&format!("/jobs/{id}")).await.json();
        if before["processed"] == after["processed"] {
            break after;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job kept going after it was cancelled: {after}"
        );
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = app.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(
        stopped["processed"], later["processed"],
        "no work after the chunk in hand"
    );
    let processed = later["processed"].as_u64().expect("a count");
    assert!(processed < 40, "{later}");
    assert_eq!(results_ndjson(&app, &id).await.len() as u64, processed);
    // Cancelling again answers the same; a finished job cannot be.
    let again = app
        .send(app.request(Method::DELETE, &format!("/jobs/{id}")))
        .await;
    assert_eq!(again.json()["status"], "cancelled");
    let done = upload_json(&app, &json!({"emails": []})).await.json();
    assert_eq!(
        done["status"], "completed",
        "an empty job is complete at once"
    );
    app.send(app.request(
        Method::DELETE,
        &format!("/jobs/{}", done["id"].as_str().expect("id")),
    ))
    .await
    .assert_error(409, "job_finished");
}

#[tokio::test]
async fn a_restarted_service_resumes_the_job_where_it_left_off() {
    let dns = TestDns::start(domains(30)).await;
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(20),
        ..Script::catch_all()
    })
    .await;
    let configure = |settings: &mut Settings| {
        settings.jobs.workers = Some(1);
        settings.jobs.chunk_size = 3;
    };
    let mut first = TestApp::spawn_with(Db::Sqlite, job_settings(&dns, &peer, configure)).await;
    let emails: Vec<String> = (0..30).map(|d| format!("someone@d{d}.test")).collect();
    let id = upload_json(&first, &json!({ "emails": emails }))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while first.get(&format!("/jobs/{id}")).await.json()["processed"].as_u64() < Some(6) {
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await.expect("a clean stop");
    let before = peer.rcpts().len();

    let second = first
        .spawn_sharing(job_settings(&dns, &peer, configure))
        .await;
    let paused = second.get(&format!("/jobs/{id}")).await.json();
    assert!(paused["processed"].as_u64() < Some(30), "{paused}");
    let job = wait_finished(&second, &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["processed"], 30);
    assert!(
        peer.rcpts().len() > before,
        "the second process did the rest"
    );
    let mut asked: HashMap<String, usize> = HashMap::new();
    for rcpt in peer
        .rcpts()
        .into_iter()
        .filter(|r| !r.starts_with("mailvet-"))
    {
        *asked.entry(rcpt).or_default() += 1;
    }
    assert_eq!(asked.len(), 30);
    assert!(
        asked.values().all(|&n| n == 1),
        "nothing verified twice: {asked:?}"
    );
}

#[tokio::test]
async fn addresses_held_by_a_dead_replica_are_taken_over_when_its_lease_ends() {
    let dns = TestDns::start(domains(4)).await;
    let peer = SmtpPeer::start(Script::catch_all()).await;
    // A replica that only takes uploads.
    let intake = TestApp::spawn_with(
        Db::Postgres,
        job_settings(&dns, &peer, |settings| settings.jobs.workers = Some(0)),
    )
    .await;
    let emails: Vec<String> = (0..20).map(|n| format!("u{n}@d{}.test", n % 4)).collect();
    let id = upload_json(&intake, &json!({ "emails": emails }))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A replica claimed half of it, then died.
    let pool = sqlx::PgPool::connect(&intake.database_url)
        .await
        .expect("connect");
    let claimed = sqlx::query(
        "update job_items set state = 'claimed', claimed_by = 'dead-replica', \
             available_at = now() + interval '8 seconds' \
         where job_id = $1::uuid and seq < 10",
    )
    .bind(&id)
    .execute(&pool)
    .await
    .expect("claim");
    assert_eq!(claimed.rows_affected(), 10);

    let worker = intake
        .spawn_sharing(job_settings(&dns, &peer, |settings| {
            settings.jobs.chunk_size = 5
        }))
        .await;
    // The free half is done while the dead replica's lease still holds,
    // and nothing beyond it: polled, so that a slow machine waits longer
    // rather than failing, until well before the lease ends.
    let claimed_at = tokio::time::Instant::now();
    loop {
        let midway = worker.get(&format!("/jobs/{id}")).await.json();
        let processed = midway["processed"].as_u64().expect("processed");
        assert!(
            processed <= 10,
            "addresses under the dead replica's lease were taken: {midway}"
        );
        if processed == 10 {
            break;
        }
        assert!(
            claimed_at.elapsed() < Duration::from_secs(6),
            "the free half was not done before the lease ended: {midway}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let midway = worker.get(&format!("/jobs/{id}")).await.json();
    assert_eq!(
        midway["processed"], 10,
        "the dead replica's lease still holds: {midway}"
    );
    let job = wait_finished(&worker, &id, Duration::from_secs(30)).await;
    assert_eq!(job["processed"], 20, "{job}");
    pool.close().await;
}

#[tokio::test]
async fn replicas_on_one_postgres_share_a_job_without_doing_anything_twice() {
    let dns = TestDns::start(domains(12)).await;
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(10),
        ..Script::catch_all()
    })
    .await;
    let replica = |name: &'static str| {
        job_settings(&dns, &peer, move |settings| {
            settings.jobs.workers = Some(2);
            settings.jobs.chunk_size = 5;
            settings.smtp.helo_name = Some(format!("{name}.example.test"));
        })
    };
    let a = TestApp::spawn_with(Db::Postgres, replica("replica-a")).await;
    let b = a.spawn_sharing(replica("replica-b")).await;
    let emails: Vec<String> = (0..120).map(|n| format!("u{n}@d{}.test", n % 12)).collect();
    let id = upload_json(&a, &json!({ "emails": emails })).await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = wait_finished(&b, &id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["processed"], 120);
    assert_eq!(job["counts"]["risky"], 120, "a catch-all domain: {job}");

    let mut asked: HashMap<String, usize> = HashMap::new();
    for rcpt in peer
        .rcpts()
        .into_iter()
        .filter(|r| !r.starts_with("mailvet-"))
    {
        *asked.entry(rcpt).or_default() += 1;
    }
    assert_eq!(asked.len(), 120);
    assert!(
        asked.values().all(|&n| n == 1),
        "nothing verified twice: {asked:?}"
    );
    let commands = peer.commands();
    let sessions_of = |name: &str| {
        commands
            .iter()
            .filter(|command| command.starts_with(&format!("EHLO {name}")))
            .count()
    };
    assert!(
        sessions_of("replica-a") > 0 && sessions_of("replica-b") > 0,
        "both replicas worked: a {} sessions, b {}",
        sessions_of("replica-a"),
        sessions_of("replica-b")
    );
    drop(b);
}

#[tokio::test]
async fn a_live_worker_keeps_its_lease_on_a_slow_server() {
    let dns = TestDns::start(domains(2)).await;
    // A group takes about 1.2 s (10 replies 120 ms late): twice the 600 ms
    // lease, which the worker renews every 200 ms.
    let peer = SmtpPeer::start(Script {
        delay: Duration::from_millis(120),
        ..Script::catch_all()
    })
    .await;
    let slow = |settings: &mut Settings| {
        settings.jobs.lease = Duration::from_millis(600);
        settings.jobs.chunk_size = 4;
        settings.jobs.workers = Some(1);
    };
    let a = TestApp::spawn_with(Db::Postgres, job_settings(&dns, &peer, slow)).await;
    let b = a.spawn_sharing(job_settings(&dns, &peer, slow)).await;
    let emails: Vec<String> = (0..8).map(|n| format!("u{n}@d{}.test", n % 2)).collect();
    let id = upload_json(&a, &json!({ "emails": emails })).await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let job = wait_finished(&b, &id, Duration::from_secs(30)).await;
    assert_eq!(job["processed"], 8);
    let mut asked: HashMap<String, usize> = HashMap::new();
    for rcpt in peer
        .rcpts()
        .into_iter()
        .filter(|r| !r.starts_with("mailvet-"))
    {
        *asked.entry(rcpt).or_default() += 1;
    }
    assert_eq!(asked.len(), 8);
    assert!(
        asked.values().all(|&n| n == 1),
        "no address was taken from a live worker and asked again: {asked:?}"
    );
}
