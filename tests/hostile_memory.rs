//! Peak memory with hostile peers: 50 concurrent verifications against each
//! of an SMTP peer that streams a line that never ends, one that answers
//! `EHLO` with a 10 MB reply, a tarpit, one that answers a byte at a time
//! and never finishes, and a DNS server that answers garbage. The process's
//! peak resident set (`VmHWM`) may grow by less than `BOUND_MB` over its
//! level after start-up and a control run of as many verifications at once
//! against a well-behaved peer; buffering what the peers send would take
//! hundreds of megabytes (50 × 10 MB from the big reply alone).
//!
//! One test in its own binary, so that no other test's allocations count.
//! The peers write from shared static buffers, so they hold almost nothing
//! themselves. Every peer listens on 127.0.0.0/8.

#[path = "api/common/mod.rs"]
mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::{Db, TestApp};
use common::dns::{TestDns, Zone, garbage_server};
use common::memory::{memory_kib, reset_peak};
use common::probe::{probe_settings, verdict};
use common::smtp_peer::{Script, SmtpPeer};
use common::spec;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Concurrent verifications per hostile peer.
const PER_PEER: usize = 50;
/// What the peak resident set may grow by, in MiB.
const BOUND_MB: u64 = 32;
/// Size of the hostile `EHLO` reply.
const HUGE_REPLY_BYTES: usize = 10 * 1024 * 1024;
/// The SMTP phase timeout of the app under test (short, so the tarpit and
/// the slow peer end quickly).
const SMTP_TIMEOUT: Duration = Duration::from_secs(1);

/// 64 KiB of `A`: a line that never ends, in pieces.
static NO_NEWLINE: [u8; 64 * 1024] = [b'A'; 64 * 1024];

/// 64 continuation lines of 1,000 bytes (`250-xxx…\r\n`), sent over and
/// over to make the 10 MB reply.
fn reply_lines() -> Arc<Vec<u8>> {
    let mut line = b"250-".to_vec();
    line.extend(std::iter::repeat_n(b'x', 994));
    line.extend(b"\r\n");
    Arc::new(line.repeat(64))
}

/// A well-behaved peer on which mailboxes whose local part starts with
/// `ok-` exist; every other recipient is `550 5.1.1`.
fn ok_users() -> Script {
    Script::mailboxes_starting_with("ok-")
}

/// Listens on `ip:port` and runs `serve` for every connection.
async fn hostile_peer<F, Fut>(ip: &str, port: u16, serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((ip, port))
        .await
        .expect("bind a hostile peer");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    addr
}

/// Reads until the client sends a line feed (its command) or goes away.
async fn read_command(socket: &mut TcpStream) -> bool {
    let mut byte = [0u8; 256];
    loop {
        match socket.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if byte[..n].contains(&b'\n') => return true,
            Ok(_) => {}
        }
    }
}

/// Holds the connection, reading and ignoring, until the client closes it.
async fn drain(mut socket: TcpStream) {
    let mut sink = [0u8; 256];
    while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// `220 ` and then `A`s, with no line feed, for as long as anyone reads.
async fn endless_line(mut socket: TcpStream) {
    if socket.write_all(b"220 ").await.is_err() {
        return;
    }
    while socket.write_all(&NO_NEWLINE).await.is_ok() {}
}

/// A greeting, then 10 MB of reply lines to `EHLO`, then the connection
/// held open.
async fn huge_reply(mut socket: TcpStream, lines: Arc<Vec<u8>>) {
    if socket.write_all(b"220 big.test ESMTP\r\n").await.is_err()
        || !read_command(&mut socket).await
    {
        return;
    }
    let mut sent = 0;
    while sent < HUGE_REPLY_BYTES {
        if socket.write_all(&lines).await.is_err() {
            return;
        }
        sent += lines.len();
    }
    if socket.write_all(b"250 that was all\r\n").await.is_ok() {
        drain(socket).await;
    }
}

/// Accepts and never says a word.
async fn tarpit(socket: TcpStream) {
    drain(socket).await;
}

/// A greeting a byte every few milliseconds, then an `EHLO` reply that
/// trickles in the same way and never ends (`250-slow` lines forever).
async fn slow_motion(mut socket: TcpStream) {
    const EVERY: Duration = Duration::from_millis(4);
    for byte in b"220 slow.test ESMTP\r\n" {
        if socket.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(EVERY).await;
    }
    if !read_command(&mut socket).await {
        return;
    }
    for byte in b"250-slow\r\n".iter().cycle() {
        if socket.write_all(&[*byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(EVERY).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A `POST /verify` answer: the address, the result, and the raw body with
/// its content type for the spec check (done after the measurement).
struct Answer {
    email: String,
    result: Value,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn assert_verdict(&self, expected: (&str, &str)) {
        assert_eq!(
            verdict(&self.result),
            expected,
            "{}: {}",
            self.email,
            self.result
        );
    }
}

/// `POST /verify` for each address at once, each answered 200.
async fn verify_all(app: &TestApp, emails: Vec<String>) -> Vec<Answer> {
    let requests = emails.into_iter().map(|email| async move {
        let response = app
            .request(Method::POST, "/verify")
            .timeout(Duration::from_secs(30))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{email}: no answer: {err}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.expect("a body").to_vec();
        assert_eq!(status, 200, "{email}: {}", String::from_utf8_lossy(&body));
        let result = serde_json::from_slice(&body).expect("a JSON body");
        Answer {
            email,
            result,
            content_type,
            body,
        }
    });
    futures::future::join_all(requests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_cannot_make_memory_grow_without_bound() {
    let started = Instant::now();

    // SMTP: each hostile behaviour is the MX of its own domain, all on one
    // port on their own loopback addresses; a well-behaved peer for the
    // warm-up.
    let lines = reply_lines();
    let good = SmtpPeer::start_at("127.0.78.1", 0, ok_users()).await;
    let port = good.port();
    hostile_peer("127.0.78.2", port, endless_line).await;
    hostile_peer("127.0.78.3", port, move |socket| {
        huge_reply(socket, lines.clone())
    })
    .await;
    hostile_peer("127.0.78.4", port, tarpit).await;
    hostile_peer("127.0.78.5", port, slow_motion).await;
    // Four well-behaved domains, MX hosts of their own names on the good
    // peer, so that the control runs as many sessions at once as the
    // attack.
    let hosts = [
        ("good1.test", "127.0.78.1"),
        ("good2.test", "127.0.78.1"),
        ("good3.test", "127.0.78.1"),
        ("good4.test", "127.0.78.1"),
        ("endless.test", "127.0.78.2"),
        ("huge.test", "127.0.78.3"),
        ("tarpit.test", "127.0.78.4"),
        ("slow.test", "127.0.78.5"),
    ];
    let zones = hosts
        .iter()
        .map(|(domain, ip)| {
            let mx = format!("mx.{domain}");
            Zone::new(domain).mx(domain, 10, &mx).ip(&mx, ip)
        })
        .collect();
    let dns = TestDns::start(zones).await;
    let smtp_app = TestApp::spawn_with(Db::Sqlite, |settings| {
        probe_settings(dns.addr, port)(settings);
        settings.smtp.timeout = SMTP_TIMEOUT;
        settings.verify.probe_budget_per_domain = 1_000_000;
        // Every hostile session at once: the worst case for memory.
        settings.smtp.max_sessions = 4 * PER_PEER;
        settings.smtp.max_sessions_per_host = PER_PEER;
    })
    .await;

    // DNS: a server that answers garbage and truncated packets.
    let garbage = garbage_server().await;
    let dns_app = TestApp::spawn_with(Db::Sqlite, move |settings| {
        settings.dns.servers = vec![garbage];
        settings.dns.timeout = Duration::from_millis(500);
        settings.smtp.allow_private_targets = true;
    })
    .await;
    let (startup_rss, _) = memory_kib();

    // Warm-up and control: as many verifications at once against a
    // well-behaved peer as the attack will make, so that what is loaded
    // once (lists, resolvers, pools) and what 250 ordinary concurrent
    // sessions and HTTP connections cost are in the baseline.
    let control: Vec<String> = (0..5 * PER_PEER)
        .map(|i| {
            let kind = if i % 2 == 0 { "ok" } else { "no" };
            format!("{kind}-control{i}@good{}.test", 1 + i % 4)
        })
        .collect();
    for answer in verify_all(&smtp_app, control).await {
        let expected = if answer.email.starts_with("ok-") {
            ("deliverable", "accepted")
        } else {
            ("undeliverable", "mailbox_not_found")
        };
        answer.assert_verdict(expected);
    }
    let warm = verify_all(&dns_app, vec!["warm@garbage.test".into()]).await;
    assert_eq!(
        verdict(&warm[0].result),
        ("unknown", "dns_error"),
        "{}",
        warm[0].result
    );

    // The baseline; then the peak is reset to the current level where the
    // kernel allows it (`clear_refs` 5), so that start-up spikes do not
    // hide growth.
    let (baseline_rss, baseline_hwm) = memory_kib();
    let reset = reset_peak();

    let attack_started = Instant::now();
    let addresses = |domain: &str| -> Vec<String> {
        (0..PER_PEER).map(|i| format!("user{i}@{domain}")).collect()
    };
    let mut smtp_emails = Vec::new();
    for domain in ["endless.test", "huge.test", "tarpit.test", "slow.test"] {
        smtp_emails.extend(addresses(domain));
    }
    let (smtp_results, dns_results) = tokio::join!(
        verify_all(&smtp_app, smtp_emails),
        verify_all(&dns_app, addresses("garbage.test")),
    );
    let attack = attack_started.elapsed();
    let (after_rss, peak_hwm) = memory_kib();

    let growth = peak_hwm.saturating_sub(baseline_rss);
    println!(
        "hostile memory: {} verifications in {:.2} s; RSS after start-up {:.1} MiB, \
         baseline (after warm-up and control) RSS {:.1} MiB / VmHWM {:.1} MiB; peak VmHWM {:.1} MiB \
         (peak {}reset at the baseline); growth {:.1} MiB (bound {BOUND_MB} MiB; \
         {PER_PEER} × 10 MB buffered would be {} MB); RSS after {:.1} MiB",
        smtp_results.len() + dns_results.len(),
        attack.as_secs_f64(),
        mib(startup_rss),
        mib(baseline_rss),
        mib(baseline_hwm),
        mib(peak_hwm),
        if reset { "" } else { "not " },
        mib(growth),
        PER_PEER * 10,
        mib(after_rss),
    );

    // Each peer got an honest unknown, and nothing was suppressed.
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for answer in smtp_results.iter().chain(&dns_results) {
        let domain = answer.email.split('@').nth(1).unwrap_or_default();
        let expected = match domain {
            "endless.test" | "huge.test" => ("unknown", "smtp_error"),
            "tarpit.test" | "slow.test" => ("unknown", "timeout"),
            _ => ("unknown", "dns_error"),
        };
        answer.assert_verdict(expected);
        spec::assert_conforms("POST", "/verify", 200, &answer.content_type, &answer.body);
        *outcomes
            .entry(format!(
                "{domain} {}",
                answer.result["reason"].as_str().unwrap_or_default()
            ))
            .or_default() += 1;
    }
    println!("hostile memory: verdicts {outcomes:?}");
    // Only the control's unknown users are suppressed.
    for app in [&smtp_app, &dns_app] {
        let feed = app.get("/suppressions?limit=1000").await;
        assert_eq!(feed.status, 200, "{}", feed.text());
        let feed = feed.json();
        let hostile: Vec<&Value> = feed["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter(|entry| {
                !entry["email"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("no-control"))
            })
            .collect();
        assert!(
            hostile.is_empty(),
            "suppressed after hostile answers: {hostile:?}"
        );
    }

    assert!(
        growth < BOUND_MB * 1024,
        "the peak resident set grew by {:.1} MiB with hostile peers (bound {BOUND_MB} MiB)",
        mib(growth)
    );
    // The timeouts bound the whole exchange, not each read.
    assert!(
        attack < Duration::from_secs(20),
        "the hostile verifications took {attack:?}"
    );
    println!(
        "hostile memory: whole test {:.2} s",
        started.elapsed().as_secs_f64()
    );
}
