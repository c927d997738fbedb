//! mailvet's benchmarks, run against the release binary:
//!
//! ```sh
//! cargo bench --bench bench             # all of them
//! cargo bench --bench bench -- verify   # those whose name contains "verify"
//! ```
//!
//! Each prints its figures and a ratio measured side by side in the same
//! run (the machine may be noisy; absolute figures vary, ratios less so).
//! DNS and SMTP go only to servers this program starts on loopback
//! (127.0.0.1, and 127.1.x.y for the mail farm).
//! `bench/README.md` says what each measures and how to read it.

mod bulk;
mod cached;
mod ceiling;
mod cold_start;
mod dns;
mod farm;
mod jobs;
mod memory;
mod scale;
mod smtp;
mod support;
mod upload;
mod verify;
mod wrk;

use std::process::ExitCode;
use std::time::Instant;

use support::Outcome;

/// Name and one-line description of each benchmark, in the order they run.
const BENCHES: [(&str, &str); 7] = [
    (
        "verify",
        "cached POST /verify under wrk, against a bare axum handler",
    ),
    (
        "cached",
        "cached POST /verify under wrk, against the same process's GET /healthz, SQLite and Postgres",
    ),
    (
        "bulk",
        "a 10,000-address job at a 20 ms-per-reply SMTP peer, against the concurrency bound",
    ),
    (
        "memory",
        "peak RSS of a large job (100,000 addresses; MAILVET_BENCH_MEMORY_ADDRESSES=1000000 for the full size)",
    ),
    (
        "cold_start",
        "process start to the first /readyz 200, SQLite and Postgres",
    ),
    (
        "scale",
        "one job on 1, 2 and 3 replicas sharing Postgres, against a mail farm of per-domain servers",
    ),
    (
        "upload",
        "a 1,000,000-address CSV streamed to POST /jobs on Postgres and SQLite, to the 202 (MAILVET_BENCH_UPLOAD_ADDRESSES)",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ceiling::SUBCOMMAND) {
        return ceiling::main(&args[1..]);
    }
    // `cargo bench` adds `--bench`; the other words are name filters.
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let selected: Vec<(&str, &str)> = BENCHES
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = BENCHES.iter().map(|(name, _)| *name).collect();
        eprintln!(
            "no benchmark matches {filters:?}; the benchmarks are: {}",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }

    mailvet::tls::install_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start a tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("mailvet benchmarks, against {}", support::MAILVET);
    let mut summary: Vec<(&str, Result<Outcome, String>)> = Vec::new();
    for (name, description) in selected {
        println!("\n== {name}: {description}");
        let started = Instant::now();
        let outcome = runtime.block_on(async {
            match name {
                "verify" => verify::run().await,
                "cached" => cached::run().await,
                "bulk" => bulk::run().await,
                "memory" => memory::run().await,
                "scale" => scale::run().await,
                "upload" => upload::run().await,
                _ => cold_start::run().await,
            }
        });
        let outcome = outcome.map_err(|err| format!("{err:#}"));
        match &outcome {
            Ok(_) => println!("  ({:.0} s)", started.elapsed().as_secs_f64()),
            Err(err) => println!("  FAILED: {err}"),
        }
        summary.push((name, outcome));
    }

    println!("\n== summary");
    let mut failed = false;
    for (name, outcome) in &summary {
        match outcome {
            Ok(Outcome { headline, met }) => {
                let verdict = match met {
                    Some(true) => "goal met",
                    Some(false) => "GOAL MISSED",
                    None => "no goal",
                };
                println!("  {name:<11} [{verdict}] {headline}");
            }
            Err(err) => {
                failed = true;
                let first = err.lines().next().unwrap_or_default();
                println!("  {name:<11} [FAILED] {first}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
