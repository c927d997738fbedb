//! One `POST /verify/batch` of 1,000 addresses at a domain whose server
//! refuses `MAIL FROM` with the longest reply mailvet reads: 64 lines of
//! 4 KiB, about 256 KiB. That one reply stands for every recipient of the
//! batch. Kept whole, it would make a response and database writes of
//! about 256 MiB; kept at 1 KiB per verdict, the response stays under
//! 1.6 MB and the process's peak resident set grows by less than
//! `BOUND_MB` over a control batch at a well-behaved domain.
//!
//! One test in its own binary, so that no other test's allocations count.
//! Every peer listens on 127.0.0.0/8.

#[path = "api/common/mod.rs"]
mod common;

use common::app::{Db, TestApp};
use common::dns::{TestDns, Zone};
use common::memory::{memory_kib, reset_peak};
use common::probe::probe_settings;
use common::smtp_peer::{Script, SmtpPeer};
use reqwest::Method;
use serde_json::{Value, json};

/// Addresses in the batch.
const BATCH: usize = 1000;
/// What the peak resident set may grow by, in MiB.
const BOUND_MB: u64 = 32;
/// The largest response the batch may make.
const MAX_RESPONSE_BYTES: usize = 1_600_000;

/// 64 lines of 4 KiB refusing `MAIL FROM`, with control bytes in them.
fn huge_refusal() -> String {
    let filler = "policy \u{1b}[31m refusal\u{7} ".repeat(4000 / 24);
    let mut lines: Vec<String> = (0..63)
        .map(|n| format!("550-5.7.1 {n:02} {filler}"))
        .collect();
    lines.push(format!("550 5.7.1 the end {filler}"));
    lines.join("\r\n")
}

async fn batch(app: &TestApp, domain: &str) -> (Vec<Value>, usize) {
    let emails: Vec<String> = (0..BATCH).map(|n| format!("user{n}@{domain}")).collect();
    let started = std::time::Instant::now();
    let reply = app
        .send(
            app.request(Method::POST, "/verify/batch")
                .json(&json!({ "emails": emails })),
        )
        .await;
    eprintln!("batch at {domain}: {:?}", started.elapsed());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let size = reply.body.len();
    let results = reply.json()["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), BATCH);
    (results, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_refusal_shared_by_a_batch_is_kept_small() {
    let good = SmtpPeer::start_at("127.0.79.1", 0, Script::mailboxes_starting_with("user")).await;
    let port = good.port();
    let hostile = SmtpPeer::start_at(
        "127.0.79.2",
        port,
        Script {
            mail_from: huge_refusal(),
            ..Script::mailboxes(&[])
        },
    )
    .await;
    let zones = [("good.test", "127.0.79.1"), ("hostile.test", "127.0.79.2")]
        .iter()
        .map(|(domain, ip)| {
            let mx = format!("mx.{domain}");
            Zone::new(domain).mx(domain, 10, &mx).ip(&mx, ip)
        })
        .collect();
    let dns = TestDns::start(zones).await;
    let app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, port)(settings);
        settings.verify.probe_budget_per_domain = 1_000_000;
        settings.http.request_timeout = std::time::Duration::from_secs(120);
    })
    .await;

    // Control: the same batch at a well-behaved domain.
    let (control, control_size) = batch(&app, "good.test").await;
    assert_eq!(control[1]["status"], "deliverable", "{}", control[1]);
    let (baseline_rss, _) = memory_kib();
    let reset = reset_peak();

    let (results, size) = batch(&app, "hostile.test").await;
    let (_, peak_hwm) = memory_kib();
    let growth = peak_hwm.saturating_sub(baseline_rss);
    println!(
        "hostile batch: {BATCH} addresses; response {size} bytes (control {control_size}); \
         peak VmHWM growth {:.1} MiB over the baseline (bound {BOUND_MB} MiB; peak {}reset)",
        growth as f64 / 1024.0,
        if reset { "" } else { "not " }
    );
    assert_eq!(hostile.sessions(), 1, "one refusal, one session");
    for result in &results {
        // A refusal of our sender says nothing about the mailbox.
        assert_eq!(result["status"], "unknown", "{result}");
        let message = result["smtp"]["message"].as_str().unwrap_or_default();
        assert!(message.len() <= 1024, "{} bytes kept", message.len());
        assert!(
            !message.chars().any(|c| c.is_control() && c != '\n'),
            "control characters kept: {message:?}"
        );
        assert!(
            result["message"].as_str().unwrap_or_default().len() <= 1024,
            "{result}"
        );
    }
    assert!(
        size <= MAX_RESPONSE_BYTES,
        "the response is {size} bytes (at most {MAX_RESPONSE_BYTES})"
    );
    if reset {
        assert!(
            growth <= BOUND_MB * 1024,
            "peak memory grew by {:.1} MiB (bound {BOUND_MB} MiB)",
            growth as f64 / 1024.0
        );
    }
}
