//! (a) Cached `POST /verify` under load, against the framework's ceiling.
//!
//! mailvet runs on a fresh SQLite file with a loopback DNS server and SMTP
//! peer. One address is verified (a real probe), then asked again to check
//! the answer now comes from the cache. wrk then loads mailvet and the bare
//! axum server alternately, round after round, with the same script shape
//! (mailvet's requests carry the secret key), so that both see the same
//! machine noise.

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use serde_json::Value;

use crate::dns::{Dns, ORIGIN};
use crate::smtp::Peer;
use crate::support::{self, API_KEY, MailvetCommand, Outcome, env_duration, env_number};
use crate::wrk::{self, Load, WrkRun};

/// mailvet's cached answers should reach half the bare framework's rate.
const GOAL: f64 = 0.5;

pub async fn run() -> Result<Outcome> {
    wrk::check_installed()?;
    let load = Load {
        threads: env_number("MAILVET_BENCH_WRK_THREADS", 2)? as u32,
        connections: env_number("MAILVET_BENCH_WRK_CONNECTIONS", 64)? as u32,
        duration: env_duration("MAILVET_BENCH_WRK_DURATION", Duration::from_secs(10))?,
    };
    let rounds = env_number("MAILVET_BENCH_WRK_ROUNDS", 3)?.max(1);

    let dir = tempfile::tempdir()?;
    let domain = format!("verify.{ORIGIN}");
    let dns = Dns::start([domain.as_str()]).await?;
    let peer = Peer::start(Duration::ZERO).await?;
    // Secret keys are rate-limited to 200 requests a second by default;
    // lifted here so that the limiter is measured, not its limit.
    let command = MailvetCommand::new(&support::sqlite_url(dir.path()), dns.addr, peer.port)
        .arg("--rate-limit-secret", u32::MAX);
    let mut mailvet = command.spawn(&dir.path().join("mailvet.log"))?;
    mailvet.wait_ready(Duration::from_secs(60)).await?;

    let email = format!("alice@{domain}");
    let client = support::client()?;
    let ask = |client: &reqwest::Client, url: String| {
        let body = serde_json::json!({ "email": email });
        let request = client.post(url).json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            ensure!(
                status.is_success(),
                "POST /verify answered {status}: {text}"
            );
            let json: Value = serde_json::from_str(&text)?;
            Ok::<_, anyhow::Error>((text, json))
        }
    };
    let (_, first) = ask(&client, mailvet.url("/verify")).await?;
    if first["status"] != "deliverable" {
        bail!("the warm-up verification is not deliverable: {first}");
    }
    let (cached_text, cached) = ask(&client, mailvet.url("/verify")).await?;
    ensure!(
        cached["cached"] == true,
        "the second answer did not come from the cache: {cached}"
    );
    let probes = peer.stats().sessions;

    let template = dir.path().join("verdict.json");
    std::fs::write(&template, &cached_text)?;
    let mut ceiling = crate::ceiling::spawn(&template, &dir.path().join("ceiling.log"))?;
    ceiling.wait_ready(Duration::from_secs(30)).await?;
    let (ceiling_text, _) = ask(&client, ceiling.url("/verify")).await?;

    let body = serde_json::json!({ "email": email }).to_string();
    let mailvet_script = dir.path().join("mailvet.lua");
    let auth = format!("Bearer {API_KEY}");
    wrk::write_script(&mailvet_script, &body, &[("Authorization", &auth)])?;
    let ceiling_script = dir.path().join("ceiling.lua");
    wrk::write_script(&ceiling_script, &body, &[])?;

    println!(
        "  wrk: {} threads, {} connections, {} s per run, {rounds} rounds alternating; \
         response bodies: mailvet {} B, ceiling {} B",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        cached_text.len(),
        ceiling_text.len()
    );
    let mailvet_url = mailvet.url("/verify");
    let ceiling_url = ceiling.url("/verify");
    // A short warm-up of each, not counted: connections, caches, allocator.
    let warm_up = Load {
        duration: Duration::from_secs(2),
        ..load
    };
    wrk::run_async(&ceiling_url, &ceiling_script, warm_up).await?;
    wrk::run_async(&mailvet_url, &mailvet_script, warm_up).await?;

    let mut ceiling_runs = Vec::new();
    let mut mailvet_runs = Vec::new();
    let mut round_ratios = Vec::new();
    println!(
        "  {:<8} {:<13} {:>11} {:>10} {:>10} {:>8}",
        "round", "server", "req/s", "p50", "p99", "errors"
    );
    for round in 1..=rounds {
        // Alternate which goes first, so neither always follows the other.
        let order: [(&str, &str, &std::path::Path); 2] = if round % 2 == 1 {
            [
                ("ceiling", &ceiling_url, &ceiling_script),
                ("mailvet", &mailvet_url, &mailvet_script),
            ]
        } else {
            [
                ("mailvet", &mailvet_url, &mailvet_script),
                ("ceiling", &ceiling_url, &ceiling_script),
            ]
        };
        for (name, url, script) in order {
            let result = wrk::run_async(url, script, load).await?;
            print_run(&round.to_string(), name, &result);
            if name == "mailvet" {
                mailvet_runs.push(result);
            } else {
                ceiling_runs.push(result);
            }
        }
        if let (Some(m), Some(c)) = (mailvet_runs.last(), ceiling_runs.last()) {
            let ratio = m.requests_per_second() / c.requests_per_second();
            println!("  {:<8} {:<13} {:>10.1} %", round, "ratio", ratio * 100.0);
            round_ratios.push(ratio);
        }
    }
    mailvet.check_alive()?;
    ceiling.check_alive()?;
    ensure!(
        peer.stats().sessions == probes,
        "mailvet probed SMTP during the load: answers did not all come from the cache"
    );

    let mailvet_total = wrk::total(&mailvet_runs);
    let ceiling_total = wrk::total(&ceiling_runs);
    print_run("all", "ceiling", &ceiling_total);
    print_run("all", "mailvet", &mailvet_total);
    let errors = mailvet_total.non_2xx + mailvet_total.socket_errors;
    if errors > 0 {
        println!(
            "  WARNING: mailvet answered {} non-2xx responses and had {} socket errors; \
             see {}",
            mailvet_total.non_2xx,
            mailvet_total.socket_errors,
            dir.path().join("mailvet.log").display()
        );
    }
    let ratio = wrk::median_ratio(&round_ratios);
    println!(
        "  ratio: mailvet / ceiling req/s = {:.1} % (median of the rounds' ratios; all rounds \
         {:.0} / {:.0} req/s = {:.1} %; goal ≥ {:.0} %); p50 {:.2}×, p99 {:.2}× the ceiling's",
        ratio * 100.0,
        mailvet_total.requests_per_second(),
        ceiling_total.requests_per_second(),
        mailvet_total.requests_per_second() / ceiling_total.requests_per_second() * 100.0,
        GOAL * 100.0,
        mailvet_total.p50_us / ceiling_total.p50_us,
        mailvet_total.p99_us / ceiling_total.p99_us,
    );
    let met = ratio >= GOAL && errors == 0;
    Ok(Outcome {
        headline: format!(
            "cached POST /verify: {:.0} req/s (p50 {:.2} ms, p99 {:.2} ms) = {:.1} % of the bare axum ceiling ({:.0} req/s); goal ≥ 50 %",
            mailvet_total.requests_per_second(),
            mailvet_total.p50_us / 1000.0,
            mailvet_total.p99_us / 1000.0,
            ratio * 100.0,
            ceiling_total.requests_per_second(),
        ),
        met: Some(met),
    })
}

pub fn print_run(round: &str, server: &str, run: &WrkRun) {
    println!(
        "  {:<8} {:<13} {:>11.0} {:>7.2} ms {:>7.2} ms {:>8}",
        round,
        server,
        run.requests_per_second(),
        run.p50_us / 1000.0,
        run.p99_us / 1000.0,
        run.non_2xx + run.socket_errors
    );
}
