//! (c) Memory of a large bulk job: the peak resident set (`VmHWM` in
//! `/proc/<pid>/status`) of the mailvet process through the streamed CSV
//! upload, the verification (SMTP peer without delay) and the streamed
//! download of every result, next to its resident set once ready and idle.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::dns::Dns;
use crate::jobs::{self, AddressList};
use crate::smtp::Peer;
use crate::support::{self, MailvetCommand, Outcome, env_duration, env_number, mib};

/// Peak resident set below 200 MB.
const GOAL_KIB: u64 = 200 * 1000 * 1000 / 1024;

pub async fn run() -> Result<Outcome> {
    let addresses = env_number("MAILVET_BENCH_MEMORY_ADDRESSES", 100_000)?.max(1);
    let domains = env_number("MAILVET_BENCH_MEMORY_DOMAINS", 1_000)?.clamp(1, addresses) as u32;
    let list = AddressList::new(domains, (addresses as u32).div_ceil(domains));

    let dir = tempfile::tempdir()?;
    let names = list.domains();
    let dns = Dns::start(names.iter().map(String::as_str)).await?;
    let peer = Peer::start(Duration::ZERO).await?;
    let command = MailvetCommand::new(&support::sqlite_url(dir.path()), dns.addr, peer.port)
        .arg("--probe-budget-per-domain", 1_000_000)
        .arg("--max-job-addresses", (list.len() as u64).max(1_000_000));
    let mut mailvet = command.spawn(&dir.path().join("mailvet.log"))?;
    mailvet.wait_ready(Duration::from_secs(60)).await?;
    let client = support::client()?;
    let pid = mailvet.pid();
    let idle = mailvet.status_kib("VmRSS")?;
    println!(
        "  {} addresses over {domains} domains (shuffled), SMTP peer without delay; \
         mailvet idle: VmRSS {}",
        list.len(),
        mib(idle)
    );

    let started = Instant::now();
    let id = jobs::submit(&mailvet, &list).await?;
    let uploaded = started.elapsed();
    let after_upload = mailvet.status_kib("VmHWM")?;
    println!(
        "  upload: {:.1} s, VmHWM {}",
        uploaded.as_secs_f64(),
        mib(after_upload)
    );
    let timeout = env_duration("MAILVET_BENCH_MEMORY_TIMEOUT", Duration::from_secs(3600))?;
    let mut last_print = Instant::now();
    let job = jobs::wait(
        &client,
        &mut mailvet,
        &id,
        Duration::from_millis(500),
        timeout,
        |job| {
            if last_print.elapsed() > Duration::from_secs(30) {
                last_print = Instant::now();
                let rss = support::proc_status_kib(pid, "VmRSS").unwrap_or(0);
                println!(
                    "  … {} / {} after {:.0} s, VmRSS {}",
                    job["processed"],
                    job["total"],
                    started.elapsed().as_secs_f64(),
                    mib(rss)
                );
            }
        },
    )
    .await?;
    let verified = started.elapsed();
    let after_job = mailvet.status_kib("VmHWM")?;
    println!(
        "  job: completed {:.1} s after the upload began ({:.0} addresses/s after the upload), VmHWM {}; {}",
        verified.as_secs_f64(),
        list.len() as f64 / (verified - uploaded).as_secs_f64(),
        mib(after_job),
        jobs::counts(&job)
    );
    let download_started = Instant::now();
    let (rows, bytes) = jobs::download(&client, &mailvet, &id).await?;
    let peak = mailvet.status_kib("VmHWM")?;
    println!(
        "  results: {rows} rows, {:.1} MB in {:.1} s, VmHWM {}",
        bytes as f64 / 1e6,
        download_started.elapsed().as_secs_f64(),
        mib(peak)
    );
    ensure!(
        rows == list.len() as u64,
        "the results have {rows} rows for {} addresses",
        list.len()
    );
    let smtp = peer.stats();
    println!(
        "  SMTP sessions {} ({:.3} per address), DNS queries {}",
        smtp.sessions,
        smtp.sessions as f64 / list.len() as f64,
        dns.queries()
    );
    let ratio = peak as f64 / GOAL_KIB as f64;
    println!(
        "  ratio: peak VmHWM / goal = {} / 200 MB = {:.2} (goal < 1); peak / idle = {:.1}×",
        mib(peak),
        ratio,
        peak as f64 / idle as f64
    );
    Ok(Outcome {
        headline: format!(
            "{}-address job: peak RSS {} ({:.1} MB; idle {}) = {:.0} % of the 200 MB goal; {:.0} s to verify",
            list.len(),
            mib(peak),
            peak as f64 * 1024.0 / 1e6,
            mib(idle),
            ratio * 100.0,
            verified.as_secs_f64()
        ),
        met: Some(peak < GOAL_KIB),
    })
}
