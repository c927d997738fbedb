//! (e) Cached `POST /verify` against the same process's `GET /healthz`,
//! on SQLite and on Postgres, in one run.
//!
//! Two mailvets run side by side, one on a fresh SQLite file and one on a
//! scratch Postgres database, with one loopback DNS server and SMTP peer.
//! Each verifies one address for real and is asked again to check that the
//! answer now comes from memory. wrk then loads each process with the
//! cached `POST /verify` (secret key as `Bearer`) and with `GET /healthz`,
//! alternately, round after round: `/healthz` passes through the same
//! middleware and the same server but does no work of its own, so the
//! ratio is what the cached answer costs beyond it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use serde_json::Value;

use crate::dns::{Dns, ORIGIN};
use crate::smtp::Peer;
use crate::support::{self, API_KEY, MailvetCommand, Outcome, PgScratch, Server};
use crate::support::{env_duration, env_number};
use crate::wrk::{self, Load, WrkRun};

/// The cached answer should cost at most 15 % of the throughput of the
/// cheapest route of the same process.
const GOAL: f64 = 0.85;

/// One mailvet under test, and what wrk measured of it.
struct Backend {
    name: &'static str,
    server: Server,
    verify: Vec<WrkRun>,
    healthz: Vec<WrkRun>,
    ratios: Vec<f64>,
}

pub async fn run() -> Result<Outcome> {
    wrk::check_installed()?;
    let database = PgScratch::create().await?;
    let outcome = measure(&database.url).await;
    database.drop_now().await?;
    outcome
}

async fn measure(postgres_url: &str) -> Result<Outcome> {
    let load = Load {
        threads: env_number("MAILVET_BENCH_WRK_THREADS", 2)? as u32,
        connections: env_number("MAILVET_BENCH_WRK_CONNECTIONS", 64)? as u32,
        duration: env_duration("MAILVET_BENCH_CACHED_DURATION", Duration::from_secs(5))?,
    };
    let rounds = env_number("MAILVET_BENCH_CACHED_ROUNDS", 3)?.max(1);

    let dir = tempfile::tempdir()?;
    let domain = format!("cached.{ORIGIN}");
    let dns = Dns::start([domain.as_str()]).await?;
    let peer = Peer::start(Duration::ZERO).await?;
    let spawn = |url: &str, log: &str| {
        // Secret keys are rate-limited to 200 requests a second by default;
        // lifted so that the limiter is measured, not its limit.
        MailvetCommand::new(url, dns.addr, peer.port)
            .arg("--rate-limit-secret", u32::MAX)
            .spawn(&dir.path().join(log))
    };
    let mut backends = Vec::new();
    for (name, url, log) in [
        ("SQLite", support::sqlite_url(dir.path()), "sqlite.log"),
        ("Postgres", postgres_url.to_owned(), "postgres.log"),
    ] {
        let mut server = spawn(&url, log)?;
        server.wait_ready(Duration::from_secs(60)).await?;
        backends.push(Backend {
            name,
            server,
            verify: Vec::new(),
            healthz: Vec::new(),
            ratios: Vec::new(),
        });
    }

    let email = format!("alice@{domain}");
    let body = serde_json::json!({ "email": email }).to_string();
    let client = support::client()?;
    let mut sizes = Vec::new();
    for backend in &backends {
        let first = ask(&client, &backend.server, &body).await?;
        if first.1["status"] != "deliverable" {
            bail!(
                "{}: the warm-up verification is not deliverable: {}",
                backend.name,
                first.1
            );
        }
        let (text, cached) = ask(&client, &backend.server, &body).await?;
        ensure!(
            cached["cached"] == true,
            "{}: the second answer did not come from the cache: {cached}",
            backend.name
        );
        sizes.push(format!("{} {} B", backend.name, text.len()));
    }
    let probes = peer.stats().sessions;

    let verify_script = dir.path().join("verify.lua");
    let auth = format!("Bearer {API_KEY}");
    wrk::write_script(&verify_script, &body, &[("Authorization", &auth)])?;
    let healthz_script = dir.path().join("healthz.lua");
    wrk::write_get_script(&healthz_script, &[])?;

    println!(
        "  wrk: {} threads, {} connections, {} s per run, {rounds} rounds alternating; \
         /verify answers: {}",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        sizes.join(", ")
    );
    // A short warm-up of each, not counted: connections, caches, allocator.
    let warm_up = Load {
        duration: Duration::from_secs(2),
        ..load
    };
    for backend in &backends {
        for (route, script) in routes(&verify_script, &healthz_script, 1) {
            wrk::run_async(&backend.server.url(route), &script, warm_up).await?;
        }
    }

    println!(
        "  {:<6} {:<9} {:<9} {:>9} {:>10} {:>10} {:>7}",
        "round", "backend", "route", "req/s", "p50", "p99", "errors"
    );
    for round in 1..=rounds as usize {
        // Alternate which backend and which route go first, so that
        // neither always follows the other.
        let mut order: Vec<usize> = (0..backends.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for index in order {
            let backend = &mut backends[index];
            let mut pair = [None, None];
            for (route, script) in routes(&verify_script, &healthz_script, round) {
                let run = wrk::run_async(&backend.server.url(route), &script, load).await?;
                print_run(&round.to_string(), backend.name, route, &run);
                pair[usize::from(route == "/healthz")] = Some(run);
            }
            if let [Some(verify), Some(healthz)] = pair {
                let ratio = verify.requests_per_second() / healthz.requests_per_second();
                println!(
                    "  {:<6} {:<9} {:<9} {:>8.1} %",
                    round,
                    backend.name,
                    "ratio",
                    ratio * 100.0
                );
                backend.verify.push(verify);
                backend.healthz.push(healthz);
                backend.ratios.push(ratio);
            }
        }
    }
    for backend in &mut backends {
        backend.server.check_alive()?;
    }
    ensure!(
        peer.stats().sessions == probes,
        "mailvet probed SMTP during the load: answers did not all come from memory"
    );

    let mut met = true;
    let mut headline = Vec::new();
    for backend in &backends {
        let verify = wrk::total(&backend.verify);
        let healthz = wrk::total(&backend.healthz);
        print_run("all", backend.name, "/verify", &verify);
        print_run("all", backend.name, "/healthz", &healthz);
        let ratio = wrk::median_ratio(&backend.ratios);
        let errors =
            verify.non_2xx + verify.socket_errors + healthz.non_2xx + healthz.socket_errors;
        if errors > 0 {
            println!(
                "  WARNING: {} answered {} non-2xx responses and had {} socket errors; see {}",
                backend.name,
                verify.non_2xx + healthz.non_2xx,
                verify.socket_errors + healthz.socket_errors,
                dir.path().display()
            );
        }
        met &= ratio >= GOAL && errors == 0;
        headline.push(format!(
            "{} {:.0} / {:.0} req/s = {:.1} %",
            backend.name,
            verify.requests_per_second(),
            healthz.requests_per_second(),
            ratio * 100.0
        ));
    }
    let ratios: Vec<String> = backends
        .iter()
        .map(|backend| {
            let verify = wrk::total(&backend.verify);
            let healthz = wrk::total(&backend.healthz);
            format!(
                "{} {:.1} % (p50 {:.2}×, p99 {:.2}×)",
                backend.name,
                wrk::median_ratio(&backend.ratios) * 100.0,
                verify.p50_us / healthz.p50_us,
                verify.p99_us / healthz.p99_us,
            )
        })
        .collect();
    println!(
        "  ratio: cached /verify / /healthz req/s (median of the rounds' ratios): {}; goal ≥ {:.0} % on each",
        ratios.join(", "),
        GOAL * 100.0
    );
    Ok(Outcome {
        headline: format!(
            "cached POST /verify / GET /healthz of the same process: {}; goal ≥ 85 % on each",
            headline.join(", ")
        ),
        met: Some(met),
    })
}

/// The two routes with their scripts, `/verify` first in odd rounds.
fn routes(verify: &Path, healthz: &Path, round: usize) -> [(&'static str, PathBuf); 2] {
    let verify = ("/verify", verify.to_owned());
    let healthz = ("/healthz", healthz.to_owned());
    if round % 2 == 1 {
        [verify, healthz]
    } else {
        [healthz, verify]
    }
}

/// `POST /verify` with `body`: the answer's text and JSON.
async fn ask(client: &reqwest::Client, server: &Server, body: &str) -> Result<(String, Value)> {
    let response = client
        .post(server.url("/verify"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    ensure!(
        status.is_success(),
        "{}: POST /verify answered {status}: {text}",
        server.name
    );
    let json = serde_json::from_str(&text)?;
    Ok((text, json))
}

fn print_run(round: &str, backend: &str, route: &str, run: &WrkRun) {
    println!(
        "  {:<6} {:<9} {:<9} {:>9.0} {:>7.2} ms {:>7.2} ms {:>7}",
        round,
        backend,
        route,
        run.requests_per_second(),
        run.p50_us / 1000.0,
        run.p99_us / 1000.0,
        run.non_2xx + run.socket_errors
    );
}
