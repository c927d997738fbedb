//! A bounded load test: 32 concurrent clients for a few seconds against
//! `POST /verify` — first a warmed set answered from the cache and the
//! suppression list, then fresh addresses probed over SMTP at loopback
//! peers — while a reader polls the suppression feed with its cursor. Every
//! status is counted and must be 200 (so no 5xx), no answer may come back
//! degraded (`Warning`: the database failed and nothing was recorded), and
//! every `mailbox_not_found` verdict must be in the feed and in the table,
//! the feed holding nothing else. p50/p99 and request counts per phase are
//! printed (`cargo test --test api load:: -- --nocapture`).
//!
//! DNS and SMTP stay on 127.0.0.0/8: the test's own hickory server and
//! scripted peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mailvet::secret::SecretString;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, Zone};
use crate::common::probe::{probe_settings, verdict};
use crate::common::smtp_peer::{Script, SmtpPeer};
use crate::common::spec;

/// Concurrent clients per phase.
const CLIENTS: usize = 32;
/// How long each phase keeps sending.
const PHASE: Duration = Duration::from_secs(4);
/// A request slower than this is a failure (the test stays bounded).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Every this many responses, one body is checked against `openapi.yaml`
/// (a check costs about a millisecond of CPU, too much for every response
/// of a load test on two cores); every response that is not a 200 is
/// checked too.
const SPEC_SAMPLE: usize = 25;
const KEY: &str = "sk_load_0123456789ab";

/// The mail domains and their MX hosts' addresses, one port for all.
/// Addresses away from 127.0.0.1-4, which other tests use.
const DOMAINS: [(&str, &str); 4] = [
    ("alpha.test", "127.0.77.1"),
    ("bravo.test", "127.0.77.2"),
    ("charlie.test", "127.0.77.3"),
    ("delta.test", "127.0.77.4"),
];

/// A peer on which mailboxes whose local part starts with `ok-` exist and
/// every other recipient is `550 5.1.1` (the catch-all check included).
fn script() -> Script {
    Script::mailboxes_starting_with("ok-")
}

/// The loopback DNS and SMTP peers the verifier probes.
struct Network {
    dns: TestDns,
    peers: Vec<SmtpPeer>,
}

impl Network {
    async fn start() -> Self {
        let mut zones = Vec::new();
        let mut peers: Vec<SmtpPeer> = Vec::new();
        for (domain, ip) in DOMAINS {
            let mx = format!("mx.{domain}");
            zones.push(Zone::new(domain).mx(domain, 10, &mx).ip(&mx, ip));
            let port = peers.first().map_or(0, SmtpPeer::port);
            peers.push(SmtpPeer::start_at(ip, port, script()).await);
        }
        Network {
            dns: TestDns::start(zones).await,
            peers,
        }
    }

    fn port(&self) -> u16 {
        self.peers[0].port()
    }

    fn sessions(&self) -> usize {
        self.peers.iter().map(SmtpPeer::sessions).sum()
    }
}

async fn spawn_app(db: Db, network: &Network) -> TestApp {
    let (dns, port) = (network.dns.addr, network.port());
    TestApp::spawn_with(db, move |settings| {
        probe_settings(dns, port)(settings);
        // The budget would answer most of a flood `rate_limited`, and the
        // HTTP limit 429; neither is what this test measures.
        settings.verify.probe_budget_per_domain = 1_000_000;
        settings.keys.secret_keys = vec![SecretString::from(KEY)];
        settings.http.rate_limit_secret = 1_000_000;
        // Enough sessions per MX host that the store, not SMTP politeness,
        // sees the whole concurrency.
        settings.smtp.max_sessions_per_host = CLIENTS / DOMAINS.len();
    })
    .await
}

/// One request's fate.
struct Outcome {
    email: String,
    latency: Duration,
    /// The HTTP status, or the transport error.
    status: Result<u16, String>,
    /// `(status, reason, cached)` of a 200 `VerifyResult`.
    verdict: Option<(String, String, bool)>,
    degraded: bool,
    /// Kept for the spec check: (content type, body).
    sample: Option<(String, Vec<u8>)>,
}

async fn post_verify(client: &reqwest::Client, url: &str, email: String, keep: bool) -> Outcome {
    let started = Instant::now();
    let sent = client
        .post(url)
        .bearer_auth(KEY)
        .timeout(REQUEST_TIMEOUT)
        .json(&json!({"email": email}))
        .send()
        .await;
    let read = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            response.bytes().await.map(|body| (status, headers, body))
        }
        Err(err) => Err(err),
    };
    let latency = started.elapsed();
    match read {
        Ok((status, headers, body)) => {
            let verdict = (status == 200)
                .then(|| serde_json::from_slice::<Value>(&body).ok())
                .flatten()
                .map(|result| {
                    let (status, reason) = verdict(&result);
                    (
                        status.to_owned(),
                        reason.to_owned(),
                        result["cached"] == true,
                    )
                });
            let content_type = headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            Outcome {
                email,
                latency,
                status: Ok(status),
                verdict,
                degraded: headers.contains_key("warning"),
                sample: (keep || status != 200).then(|| (content_type, body.to_vec())),
            }
        }
        Err(err) => Outcome {
            email,
            latency,
            status: Err(err.to_string()),
            verdict: None,
            degraded: false,
            sample: None,
        },
    }
}

/// `CLIENTS` clients sending `POST /verify` back to back for `PHASE`; the
/// address of each request comes from `pick(client, n)`.
async fn run_phase(
    app: &TestApp,
    pick: impl Fn(usize, usize) -> String + Send + Sync + 'static,
) -> (Vec<Outcome>, Duration) {
    let pick = Arc::new(pick);
    let url = app.url("/verify");
    let started = Instant::now();
    let deadline = started + PHASE;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url, pick) = (app.client.clone(), url.clone(), pick.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let keep = (n * CLIENTS + client).is_multiple_of(SPEC_SAMPLE);
                    outcomes.push(post_verify(&http, &url, pick(client, n), keep).await);
                    n += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for client in futures::future::join_all(clients).await {
        outcomes.extend(client.expect("a client task does not panic"));
    }
    (outcomes, started.elapsed())
}

/// What the feed reader saw.
struct FeedLog {
    /// The last state of every address: `true` for a tombstone.
    seen: BTreeMap<String, bool>,
    latencies: Vec<Duration>,
    statuses: Vec<Result<u16, String>>,
    /// Kept for the spec check: (status, content type, body).
    samples: Vec<(u16, String, Vec<u8>)>,
    /// Entries read while the load ran, and in the final drain.
    entries_live: usize,
    entries_drained: usize,
    elapsed: Duration,
}

/// Polls `GET /suppressions` with its cursor until `done`, then drains the
/// feed once more.
fn spawn_feed_reader(app: &TestApp, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<FeedLog> {
    let (client, url) = (app.client.clone(), app.url("/suppressions"));
    tokio::spawn(async move {
        let started = Instant::now();
        let mut log = FeedLog {
            seen: BTreeMap::new(),
            latencies: Vec::new(),
            statuses: Vec::new(),
            samples: Vec::new(),
            entries_live: 0,
            entries_drained: 0,
            elapsed: Duration::ZERO,
        };
        let mut cursor = String::new();
        loop {
            let finished = done.load(Ordering::SeqCst);
            // Page until the feed says there is no more.
            loop {
                let asked = Instant::now();
                let response = client
                    .get(format!("{url}?limit=200&cursor={cursor}"))
                    .bearer_auth(KEY)
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await;
                let read = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let content_type = response
                            .headers()
                            .get("content-type")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        response
                            .bytes()
                            .await
                            .map(|body| (status, content_type, body))
                    }
                    Err(err) => Err(err),
                };
                log.latencies.push(asked.elapsed());
                let (status, content_type, body) = match read {
                    Ok(read) => read,
                    Err(err) => {
                        log.statuses.push(Err(err.to_string()));
                        break;
                    }
                };
                log.statuses.push(Ok(status));
                if status != 200 || log.statuses.len() % SPEC_SAMPLE == 1 {
                    log.samples.push((status, content_type, body.to_vec()));
                }
                if status != 200 {
                    break;
                }
                let page: Value = serde_json::from_slice(&body).expect("a feed page is JSON");
                let data = page["data"].as_array().expect("data");
                if finished {
                    log.entries_drained += data.len();
                } else {
                    log.entries_live += data.len();
                }
                for entry in data {
                    let email = entry["email"].as_str().expect("email").to_owned();
                    log.seen
                        .insert(email, entry["deleted"].as_bool().expect("deleted"));
                }
                cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
                if page["has_more"] != true {
                    break;
                }
            }
            if finished {
                log.elapsed = started.elapsed();
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// The `p` quantile (nearest rank) of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// Counts per status (`error` for a transport failure).
fn histogram<'a>(
    statuses: impl Iterator<Item = &'a Result<u16, String>>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses {
        let key = match status {
            Ok(code) => code.to_string(),
            Err(_) => "error".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn report(
    db: Db,
    phase: &str,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
    statuses: &BTreeMap<String, usize>,
) {
    latencies.sort();
    println!(
        "load {db:?} {phase:<18} {:>6} requests in {:>5.2} s ({:>7.1}/s)  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  statuses {statuses:?}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        quantile_ms(&latencies, 0.50),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
    );
}

/// Panics unless every request of a phase was answered 200, without a
/// `Warning`; says how many were 5xx.
fn assert_all_ok(db: Db, phase: &str, outcomes: &[Outcome]) {
    let statuses = histogram(outcomes.iter().map(|outcome| &outcome.status));
    let server_errors = outcomes
        .iter()
        .filter(|outcome| matches!(outcome.status, Ok(500..=599)))
        .count();
    assert_eq!(server_errors, 0, "{db:?} {phase}: 5xx answers {statuses:?}");
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|outcome| outcome.status != Ok(200))
        .take(5)
        .map(|outcome| match (&outcome.status, &outcome.sample) {
            (Err(err), _) => format!("{}: {err}", outcome.email),
            (Ok(status), Some((_, body))) => {
                format!(
                    "{}: {status} {}",
                    outcome.email,
                    String::from_utf8_lossy(body)
                )
            }
            (Ok(status), None) => format!("{}: {status}", outcome.email),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{db:?} {phase}: not every request was answered 200 {statuses:?}, e.g. {failed:#?}"
    );
    let degraded = outcomes.iter().filter(|outcome| outcome.degraded).count();
    assert_eq!(
        degraded, 0,
        "{db:?} {phase}: answers given without the database (nothing recorded)"
    );
}

/// Checks kept bodies (status, content type, body) against the spec.
fn assert_samples_conform<'a>(
    method: &str,
    path: &str,
    samples: impl Iterator<Item = (u16, &'a str, &'a [u8])>,
) -> usize {
    let mut checked = 0;
    for (status, content_type, body) in samples {
        spec::assert_conforms(method, path, status, content_type, body);
        checked += 1;
    }
    checked
}

/// The whole story on one backend.
async fn load(db: Db) {
    let network = Network::start().await;
    let app = spawn_app(db, &network).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = spawn_feed_reader(&app, done.clone());

    // Warm-up: 48 addresses verified once (with the spec checked on each),
    // 32 that exist and 16 that do not and are suppressed.
    let warm: Vec<String> = (0..48)
        .map(|i| {
            let kind = if i % 3 == 2 { "no" } else { "ok" };
            format!("{kind}-warm{i}@{}", DOMAINS[i % DOMAINS.len()].0)
        })
        .collect();
    let mut suppressed: BTreeSet<String> = BTreeSet::new();
    for email in &warm {
        let reply = app
            .send(
                app.request(Method::POST, "/verify")
                    .bearer_auth(KEY)
                    .json(&json!({"email": email})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let result = reply.json();
        if email.starts_with("ok-") {
            assert_eq!(verdict(&result), ("deliverable", "accepted"), "{result}");
        } else {
            assert_eq!(
                verdict(&result),
                ("undeliverable", "mailbox_not_found"),
                "{result}"
            );
            suppressed.insert(email.clone());
        }
    }

    // (a) The warmed set, answered without the network.
    let sessions_before = network.sessions();
    let cached_set = Arc::new(warm.clone());
    let (cached, cached_elapsed) = run_phase(&app, move |client, n| {
        cached_set[(client * 7 + n) % cached_set.len()].clone()
    })
    .await;
    let cached_sessions = network.sessions() - sessions_before;

    // (b) Fresh addresses, half of them unknown users, probed over SMTP.
    let sessions_before = network.sessions();
    let (uncached, uncached_elapsed) = run_phase(&app, |client, n| {
        let kind = if rand::random::<bool>() { "ok" } else { "no" };
        let tag = rand::random::<u32>();
        let domain = DOMAINS[(client + n) % DOMAINS.len()].0;
        format!("{kind}-c{client}n{n}x{tag:08x}@{domain}")
    })
    .await;
    let probe_sessions = network.sessions() - sessions_before;

    done.store(true, Ordering::SeqCst);
    let feed = reader.await.expect("the feed reader does not panic");

    // Figures first, so that a failure still shows them.
    report(
        db,
        "(a) cached verify",
        cached.iter().map(|outcome| outcome.latency).collect(),
        cached_elapsed,
        &histogram(cached.iter().map(|outcome| &outcome.status)),
    );
    report(
        db,
        "(b) uncached verify",
        uncached.iter().map(|outcome| outcome.latency).collect(),
        uncached_elapsed,
        &histogram(uncached.iter().map(|outcome| &outcome.status)),
    );
    report(
        db,
        "(c) feed polls",
        feed.latencies.clone(),
        feed.elapsed,
        &histogram(feed.statuses.iter()),
    );

    assert_all_ok(db, "(a) cached verify", &cached);
    assert_eq!(
        cached_sessions, 0,
        "{db:?}: cached answers made SMTP sessions"
    );
    assert_all_ok(db, "(b) uncached verify", &uncached);
    let feed_statuses = histogram(feed.statuses.iter());
    assert!(
        feed.statuses.iter().all(|status| status == &Ok(200)),
        "{db:?} (c) feed polls: not every poll was answered 200 {feed_statuses:?}"
    );
    assert!(
        cached.len() >= CLIENTS * 4 && uncached.len() >= CLIENTS,
        "{db:?}: too few requests to call this load ({} cached, {} uncached)",
        cached.len(),
        uncached.len()
    );
    assert!(
        feed.latencies.len() >= 20,
        "{db:?}: the reader polled {} times",
        feed.latencies.len()
    );

    // Each verdict is the right one: the cache and the suppression list
    // in (a), the SMTP peers' answers in (b).
    for outcome in &cached {
        let (status, reason, cached) = outcome.verdict.clone().expect("a verdict");
        if outcome.email.starts_with("ok-") {
            assert_eq!(
                (status.as_str(), reason.as_str(), cached),
                ("deliverable", "accepted", true),
                "{db:?} {}",
                outcome.email
            );
        } else {
            assert_eq!(
                (status.as_str(), reason.as_str()),
                ("undeliverable", "suppressed"),
                "{db:?} {}",
                outcome.email
            );
        }
    }
    let mut reasons = BTreeMap::<String, usize>::new();
    for outcome in &uncached {
        let (status, reason, cached) = outcome.verdict.clone().expect("a verdict");
        *reasons.entry(reason.clone()).or_default() += 1;
        let expected = if outcome.email.starts_with("ok-") {
            ("deliverable", "accepted", false)
        } else {
            ("undeliverable", "mailbox_not_found", false)
        };
        assert_eq!(
            (status.as_str(), reason.as_str(), cached),
            expected,
            "{db:?} {}",
            outcome.email
        );
        if reason == "mailbox_not_found" {
            suppressed.insert(outcome.email.clone());
        }
    }
    println!(
        "load {db:?} uncached verdicts {reasons:?} over {probe_sessions} SMTP sessions; {} suppressed in all; the feed reader read {} entries while the load ran, {} in its final drain",
        suppressed.len(),
        feed.entries_live,
        feed.entries_drained,
    );

    // No lost suppression: the reader's picture is exactly the addresses
    // found missing, and each of them is in the table.
    let feed_live: BTreeSet<String> = feed
        .seen
        .iter()
        .filter(|(_, deleted)| !**deleted)
        .map(|(email, _)| email.clone())
        .collect();
    let lost: Vec<&String> = suppressed.difference(&feed_live).take(10).collect();
    let invented: Vec<&String> = feed_live.difference(&suppressed).take(10).collect();
    assert!(
        lost.is_empty() && invented.is_empty(),
        "{db:?}: the feed lost {lost:?} and invented {invented:?} ({} suppressed, {} in the feed)",
        suppressed.len(),
        feed_live.len()
    );
    let app = &app;
    let lookups = futures::stream::iter(suppressed.iter().map(|email| {
        let request = app
            .request(Method::GET, &format!("/suppressions/{email}"))
            .bearer_auth(KEY);
        async move { (email, app.send(request).await) }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut missing = Vec::new();
    for (email, reply) in lookups {
        if reply.status != 200 {
            missing.push(format!("{email}: {}", reply.status));
            continue;
        }
        let entry = reply.json();
        assert_eq!(entry["reason"], "mailbox_not_found", "{entry}");
        assert_eq!(entry["source"], "verify", "{entry}");
        assert_eq!(entry["smtp_code"], 550, "{entry}");
    }
    assert!(
        missing.is_empty(),
        "{db:?}: suppressions missing from the table: {missing:?}"
    );

    // A sample of the bodies against the contract.
    let verify_samples = cached.iter().chain(&uncached).filter_map(|outcome| {
        let (content_type, body) = outcome.sample.as_ref()?;
        Some((
            outcome.status.clone().ok()?,
            content_type.as_str(),
            body.as_slice(),
        ))
    });
    let checked = assert_samples_conform("POST", "/verify", verify_samples);
    let checked_feed = assert_samples_conform(
        "GET",
        "/suppressions",
        feed.samples
            .iter()
            .map(|(status, content_type, body)| (*status, content_type.as_str(), body.as_slice())),
    );
    assert!(checked > 0 && checked_feed > 0);
}

/// The two backends take turns: on a two-core machine they would otherwise
/// measure each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_no_5xx_and_lose_no_suppression_on_sqlite() {
    let _turn = ONE_AT_A_TIME.lock().await;
    load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_get_no_5xx_and_lose_no_suppression_on_postgres() {
    let _turn = ONE_AT_A_TIME.lock().await;
    load(Db::Postgres).await;
}
