//! (e) Taking a large list in: a 1,000,000-address CSV (1,000 domains,
//! shuffled) generated on the fly and streamed to `POST /jobs` with
//! `Transfer-Encoding: chunked`, timed from the first byte sent to the
//! 202 answer, with mailvet's peak resident set (`VmHWM`) after it. Once
//! on a fresh Postgres database (the goal), once on a fresh SQLite file
//! (for comparison). Nothing is verified: the job is queued when the
//! answer comes, and mailvet is stopped then.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::dns::Dns;
use crate::jobs::{self, AddressList};
use crate::support::{self, MailvetCommand, Outcome, PgScratch, env_number, mib};

/// Postgres: the upload answered within 10 s …
const GOAL_SECONDS: f64 = 10.0;
/// … with mailvet's peak resident set below 200 MB.
const GOAL_KIB: u64 = 200 * 1000 * 1000 / 1024;

/// One backend's figures.
#[derive(Debug)]
struct Measured {
    seconds: f64,
    peak_kib: u64,
    /// CPU seconds mailvet spent during the upload.
    cpu: f64,
}

pub async fn run() -> Result<Outcome> {
    let addresses = env_number("MAILVET_BENCH_UPLOAD_ADDRESSES", 1_000_000)?.max(1);
    let domains = env_number("MAILVET_BENCH_UPLOAD_DOMAINS", 1_000)?.clamp(1, addresses) as u32;
    let list = AddressList::new(domains, (addresses as u32).div_ceil(domains));
    // Nothing is verified; the DNS server is only there so that mailvet's
    // resolver is set up on loopback rather than from the system's.
    let dns = Dns::start(std::iter::empty()).await?;
    let dir = tempfile::tempdir()?;
    println!(
        "  {} addresses over {domains} domains (shuffled), streamed as CSV in 64 KiB chunks",
        list.len()
    );

    let database = PgScratch::create().await?;
    let postgres = async {
        let measured = measure(&database.url, dns.addr, &list, &dir.path().join("pg.log")).await?;
        let stored = stored_items(&database.url).await?;
        ensure!(
            stored == list.len() as u64,
            "Postgres holds {stored} job items for {} addresses",
            list.len()
        );
        Ok(measured)
    }
    .await;
    database.drop_now().await?;
    let postgres = report("Postgres", &list, postgres?);

    let sqlite_dir = tempfile::tempdir()?;
    let sqlite_url = support::sqlite_url(sqlite_dir.path());
    let sqlite = measure(&sqlite_url, dns.addr, &list, &dir.path().join("sqlite.log")).await?;
    let sqlite = report("SQLite", &list, sqlite);

    let met = postgres.seconds < GOAL_SECONDS && postgres.peak_kib < GOAL_KIB;
    println!(
        "  ratio: Postgres wall / goal = {:.2} / {GOAL_SECONDS:.0} s = {:.2}, VmHWM / goal = {} / 200 MB = {:.2} (goal < 1 for both); Postgres / SQLite wall = {:.2}×",
        postgres.seconds,
        postgres.seconds / GOAL_SECONDS,
        mib(postgres.peak_kib),
        postgres.peak_kib as f64 / GOAL_KIB as f64,
        postgres.seconds / sqlite.seconds
    );
    Ok(Outcome {
        headline: format!(
            "{}-address upload: Postgres {:.1} s, {}; SQLite {:.1} s, {} (goal on Postgres: < 10 s and < 200 MB)",
            list.len(),
            postgres.seconds,
            mib(postgres.peak_kib),
            sqlite.seconds,
            mib(sqlite.peak_kib)
        ),
        met: Some(met),
    })
}

/// Starts mailvet on `database_url`, uploads the list, and reads the peak
/// resident set once the answer has come.
async fn measure(
    database_url: &str,
    dns: std::net::SocketAddr,
    list: &AddressList,
    log: &Path,
) -> Result<Measured> {
    // Port 9 (discard): no address of the list resolves, so nothing is dialled.
    let command = MailvetCommand::new(database_url, dns, 9)
        .arg("--max-job-addresses", (list.len() as u64).max(1_000_000));
    let mut mailvet = command.spawn(log)?;
    mailvet.wait_ready(Duration::from_secs(60)).await?;
    let idle = mailvet.status_kib("VmRSS")?;
    let cpu_before = cpu_seconds(mailvet.pid())?;
    let started = Instant::now();
    jobs::submit(&mailvet, list).await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = mailvet.status_kib("VmHWM")?;
    let cpu = cpu_seconds(mailvet.pid())? - cpu_before;
    mailvet.check_alive()?;
    if database_url.starts_with("postgres") {
        // While mailvet still holds its connections.
        println!(
            "    (the database's Postgres server processes: CPU {:.1} s since they started)",
            backend_cpu_seconds(database_url).await?
        );
    }
    println!("    (idle VmRSS {})", mib(idle));
    Ok(Measured {
        seconds,
        peak_kib,
        cpu,
    })
}

fn report(backend: &str, list: &AddressList, measured: Measured) -> Measured {
    println!(
        "  {backend:<9} {:>6.2} s  {:>9.0} addresses/s  VmHWM {}  (mailvet CPU {:.1} s)",
        measured.seconds,
        list.len() as f64 / measured.seconds,
        mib(measured.peak_kib),
        measured.cpu
    );
    measured
}

/// User and system CPU seconds of a process so far (`/proc/<pid>/stat`,
/// in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("no command name in /proc/<pid>/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> Result<f64> {
        Ok(fields
            .get(index)
            .context("a short /proc/<pid>/stat")?
            .parse::<u64>()? as f64)
    };
    // utime and stime are the 14th and 15th fields; the state (3rd) is first here.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds of the Postgres server processes serving `url`'s database.
async fn backend_cpu_seconds(url: &str) -> Result<f64> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("connecting to the scratch database")?;
    let pids: Vec<i32> = sqlx::query_scalar(
        "select pid from pg_stat_activity where datname = current_database() \
         and pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await?;
    conn.close().await.ok();
    // Only when the server runs on this machine.
    Ok(pids
        .into_iter()
        .filter_map(|pid| cpu_seconds(pid as u32).ok())
        .sum())
}

/// How many job items the scratch database holds.
async fn stored_items(url: &str) -> Result<u64> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("connecting to the scratch database")?;
    let count: i64 = sqlx::query_scalar("select count(*) from job_items")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(count as u64)
}
