//! (b) A bulk job against a slow mail server: 10,000 addresses over 500
//! domains, each domain with its own MX host name, every SMTP reply 20 ms
//! late. The wall time is compared with the least time the concurrency
//! settings allow for the SMTP work the peer actually saw:
//!
//! ```text
//! bound = max( replies × delay / C ,  longest session's replies × delay )
//! C     = min( --max-smtp-sessions , --job-workers )
//! ```
//!
//! Every reply costs `delay` inside a session, and at most `C` sessions can
//! be open at once: the global cap, and the job scheduler verifies at most
//! `--job-workers` domain groups (one session each) at a time. No session
//! can be shorter than its own replies in a row.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::dns::Dns;
use crate::jobs::{self, AddressList};
use crate::smtp::Peer;
use crate::support::{self, MailvetCommand, Outcome, env_duration, env_number};

/// The settings the job runs with (mailvet's defaults, given explicitly so
/// that the bound is computed from what was really set). Workers and chunk
/// size can be changed with `MAILVET_BENCH_BULK_WORKERS` and
/// `MAILVET_BENCH_BULK_CHUNK_SIZE`.
const MAX_SMTP_SESSIONS: u64 = 64;
const MAX_SMTP_SESSIONS_PER_HOST: u64 = 2;
const JOB_WORKERS: u64 = MAX_SMTP_SESSIONS * 3 / 4;
const JOB_CHUNK_SIZE: u64 = 500;
/// Wall time within this factor of the bound.
const GOAL: f64 = 1.3;

pub async fn run() -> Result<Outcome> {
    let domains = env_number("MAILVET_BENCH_BULK_DOMAINS", 500)?.max(1) as u32;
    let addresses = env_number("MAILVET_BENCH_BULK_ADDRESSES", 10_000)?.max(1) as u32;
    let delay = env_duration("MAILVET_BENCH_BULK_DELAY", Duration::from_millis(20))?;
    let workers = env_number("MAILVET_BENCH_BULK_WORKERS", JOB_WORKERS)?.max(1);
    let chunk_size = env_number("MAILVET_BENCH_BULK_CHUNK_SIZE", JOB_CHUNK_SIZE)?.max(1);
    let list = AddressList::new(domains, addresses.div_ceil(domains));

    let dir = tempfile::tempdir()?;
    let names = list.domains();
    let dns = Dns::start(names.iter().map(String::as_str)).await?;
    let peer = Peer::start(delay).await?;
    let command = MailvetCommand::new(&support::sqlite_url(dir.path()), dns.addr, peer.port)
        .arg("--max-smtp-sessions", MAX_SMTP_SESSIONS)
        .arg("--max-smtp-sessions-per-host", MAX_SMTP_SESSIONS_PER_HOST)
        .arg("--job-workers", workers)
        .arg("--job-chunk-size", chunk_size)
        // One unit per domain per batch: a shuffled list touches a domain in
        // many chunks; the budget must not be what is measured.
        .arg("--probe-budget-per-domain", 1_000_000);
    let mut mailvet = command.spawn(&dir.path().join("mailvet.log"))?;
    mailvet.wait_ready(Duration::from_secs(60)).await?;
    let client = support::client()?;
    println!(
        "  {} addresses over {} domains (shuffled), SMTP peer delay {} ms per reply; \
         --max-smtp-sessions {MAX_SMTP_SESSIONS}, --max-smtp-sessions-per-host \
         {MAX_SMTP_SESSIONS_PER_HOST}, --job-workers {workers}, --job-chunk-size {chunk_size}",
        list.len(),
        domains,
        delay.as_millis()
    );

    let dns_before = dns.queries();
    let started = Instant::now();
    let id = jobs::submit(&mailvet, &list).await?;
    let uploaded = started.elapsed();
    let timeout = env_duration("MAILVET_BENCH_BULK_TIMEOUT", Duration::from_secs(300))?;
    let job = jobs::wait(
        &client,
        &mut mailvet,
        &id,
        Duration::from_millis(50),
        timeout,
        jobs::progress(started),
    )
    .await?;
    let wall = started.elapsed();
    let smtp = peer.stats();
    let queries = dns.queries() - dns_before;

    let n = list.len() as f64;
    let concurrency = MAX_SMTP_SESSIONS.min(workers);
    let throughput_bound = delay.mul_f64(smtp.replies as f64 / concurrency as f64);
    let serial_bound = delay * smtp.longest_session as u32;
    let bound = throughput_bound.max(serial_bound);
    let ratio = wall.as_secs_f64() / bound.as_secs_f64();

    jobs::print_outcome(&id, &job, wall, uploaded);
    println!(
        "  SMTP sessions        {:>9}     ({:.3} per address, {:.1} per domain)",
        smtp.sessions,
        smtp.sessions as f64 / n,
        smtp.sessions as f64 / f64::from(domains)
    );
    println!(
        "  SMTP replies         {:>9}     ({:.1} per session, longest session {}; RCPT {} = {:.3} per address)",
        smtp.replies,
        smtp.replies as f64 / smtp.sessions.max(1) as f64,
        smtp.longest_session,
        smtp.rcpts,
        smtp.rcpts as f64 / n
    );
    println!(
        "  sessions open at once{:>8}     (cap C = min({MAX_SMTP_SESSIONS} sessions, {workers} job workers) = {concurrency})",
        smtp.most_open
    );
    if let (Some(first), Some(last)) = (smtp.first_open, smtp.last_close) {
        println!(
            "  SMTP activity        {:>9.2} s  (first session at +{:.2} s, last closed at +{:.2} s; \
             {:.1} sessions open on average)",
            (last - first).as_secs_f64(),
            first.saturating_duration_since(started).as_secs_f64(),
            last.saturating_duration_since(started).as_secs_f64(),
            smtp.mean_open()
        );
    }
    println!(
        "  DNS queries          {:>9}     ({:.3} per address, {:.2} per domain: {})",
        queries,
        queries as f64 / n,
        queries as f64 / f64::from(domains),
        dns.queries_by_type()
    );
    println!(
        "  bound                {:>9.2} s  (max of replies × {} ms / C = {:.2} s and longest session {:.2} s)",
        bound.as_secs_f64(),
        delay.as_millis(),
        throughput_bound.as_secs_f64(),
        serial_bound.as_secs_f64()
    );
    println!(
        "  ratio: wall / bound = {:.2} / {:.2} s = {ratio:.2}× (goal ≤ {GOAL}×)",
        wall.as_secs_f64(),
        bound.as_secs_f64()
    );
    if let (Some(first), Some(last)) = (smtp.first_open, smtp.last_close)
        && smtp.replies > 0
        && throughput_bound >= serial_bound
    {
        // wall / (replies × delay / C), factored into where the time went.
        let span = (last - first).as_secs_f64();
        let per_reply = smtp.busy.as_secs_f64() / smtp.replies as f64;
        println!(
            "  where the ratio goes: replies took {:.1} ms each, not {} ({:.2}×) · sessions \
             open {:.1} on average, not {concurrency} ({:.2}×) · wall / SMTP activity ({:.2}×)",
            per_reply * 1000.0,
            delay.as_millis(),
            per_reply / delay.as_secs_f64(),
            smtp.mean_open(),
            concurrency as f64 / smtp.mean_open(),
            wall.as_secs_f64() / span
        );
    }
    let unknown = job["counts"]["unknown"].as_u64().unwrap_or(0);
    if unknown > 0 {
        println!(
            "  WARNING: {unknown} addresses are unknown (timeouts or rate limits?); see {}",
            dir.path().join("mailvet.log").display()
        );
    }
    Ok(Outcome {
        headline: format!(
            "bulk {} addresses / {} domains at {} ms per SMTP reply: {:.2} s wall vs {:.2} s bound = {ratio:.2}× (goal ≤ {GOAL}×); {:.3} SMTP sessions and {:.3} DNS queries per address",
            list.len(),
            domains,
            delay.as_millis(),
            wall.as_secs_f64(),
            bound.as_secs_f64(),
            smtp.sessions as f64 / n,
            queries as f64 / n
        ),
        met: Some(ratio <= GOAL && unknown == 0),
    })
}
