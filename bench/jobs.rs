//! Bulk jobs from the outside: a deterministic address list streamed as a
//! CSV upload to `POST /jobs`, `GET /jobs/{id}` polled until the job ends,
//! and the results streamed back from `GET /jobs/{id}/results`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::dns::ORIGIN;
use crate::support::{Rng, Server, post_streamed};

/// Addresses spread evenly over domains, in a shuffled (but always the
/// same) order, as a real list would come. One local part in 20 starts
/// with `gone`, which the SMTP peer rejects: those come out undeliverable
/// and are suppressed, as in real lists.
#[derive(Debug)]
pub struct AddressList {
    domains: u32,
    order: Vec<u32>,
}

impl AddressList {
    pub fn new(domains: u32, per_domain: u32) -> Self {
        let order = Rng::new(0x6d61_696c_7665_7421).permutation(domains * per_domain);
        AddressList { domains, order }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn domain(index: u32) -> String {
        format!("d{index:04}.{ORIGIN}")
    }

    pub fn domains(&self) -> Vec<String> {
        (0..self.domains).map(Self::domain).collect()
    }

    pub fn address(&self, position: usize) -> String {
        let n = self.order[position];
        let (domain, user) = (n % self.domains, n / self.domains);
        let local = if user % 20 == 19 { "gone" } else { "user" };
        format!("{local}{user}@{}", Self::domain(domain))
    }

    /// The list as CSV (`email` header), in pieces of about 64 KiB.
    pub fn csv_chunks(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        const PIECE: usize = 64 * 1024;
        let mut position = 0;
        let mut header = true;
        std::iter::from_fn(move || {
            if position >= self.len() && !header {
                return None;
            }
            let mut piece = Vec::with_capacity(PIECE + 64);
            if header {
                piece.extend_from_slice(b"email\n");
                header = false;
            }
            while piece.len() < PIECE && position < self.len() {
                piece.extend_from_slice(self.address(position).as_bytes());
                piece.push(b'\n');
                position += 1;
            }
            Some(piece)
        })
    }
}

/// Uploads the list as a job; returns its id.
pub async fn submit(server: &Server, list: &AddressList) -> Result<String> {
    submit_csv(server, list.csv_chunks(), list.len()).await
}

/// Uploads a CSV of `total` addresses, given piece by piece, as a job;
/// returns its id.
pub async fn submit_csv(
    server: &Server,
    csv: impl Iterator<Item = Vec<u8>>,
    total: usize,
) -> Result<String> {
    let response = post_streamed(server.addr, "/jobs", "text/csv", csv).await?;
    let body = String::from_utf8_lossy(&response.body);
    match response.status {
        202 => {}
        404 | 405 => bail!(
            "POST /jobs answered {}: this mailvet build does not serve bulk jobs yet",
            response.status
        ),
        status => bail!("POST /jobs answered {status}: {body}"),
    }
    let job: Value = serde_json::from_str(&body).context("POST /jobs answered no Job JSON")?;
    let id = job["id"].as_str().context("the Job has no id")?.to_owned();
    if let Some(location) = response.header("location")
        && location != format!("/jobs/{id}")
    {
        println!("  note: Location is {location}, not /jobs/{id}");
    }
    if job["total"] != total {
        bail!("the job holds {} addresses, not {total}", job["total"]);
    }
    Ok(id)
}

/// Prints a finished job's counts and its wall time (upload included),
/// beside the job's own created→completed time.
pub fn print_outcome(id: &str, job: &Value, wall: Duration, uploaded: Duration) {
    println!("  job {id}: {}", counts(job));
    println!(
        "  wall time            {:>9.2} s  (upload {:.2} s; the job's own created→completed {})",
        wall.as_secs_f64(),
        uploaded.as_secs_f64(),
        server_seconds(job)
            .map(|s| format!("{s:.2} s"))
            .unwrap_or_else(|| "n/a".into())
    );
}

/// A [`wait`] callback that prints the job's progress every 10 s, timed
/// from `started`.
pub fn progress(started: Instant) -> impl FnMut(&Value) {
    let mut last_print = Instant::now();
    move |job| {
        if last_print.elapsed() > Duration::from_secs(10) {
            last_print = Instant::now();
            println!(
                "  … {} / {} after {:.0} s",
                job["processed"],
                job["total"],
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Polls the job every `every` until it is no longer queued or running;
/// `on_poll` sees each answer. Fails unless it completed.
pub async fn wait(
    client: &reqwest::Client,
    server: &mut Server,
    id: &str,
    every: Duration,
    timeout: Duration,
    mut on_poll: impl FnMut(&Value),
) -> Result<Value> {
    let started = Instant::now();
    let url = server.url(&format!("/jobs/{id}"));
    loop {
        let response = client.get(&url).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET /jobs/{id} answered {status}: {text}");
        }
        let job: Value = serde_json::from_str(&text)?;
        on_poll(&job);
        match job["status"].as_str() {
            Some("queued" | "running") => {}
            Some("completed") => return Ok(job),
            _ => bail!("the job ended {}: {job}", job["status"]),
        }
        server.check_alive()?;
        if started.elapsed() > timeout {
            bail!("the job did not complete within {timeout:?}: {job}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Seconds between the job's `created_at` and `completed_at`.
pub fn server_seconds(job: &Value) -> Option<f64> {
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(job[field].as_str()?)
            .ok()
            .map(|time| time.timestamp_millis())
    };
    Some((at("completed_at")? - at("created_at")?) as f64 / 1000.0)
}

/// The job's counts as `deliverable 9500, undeliverable 500, …`.
pub fn counts(job: &Value) -> String {
    ["deliverable", "undeliverable", "risky", "unknown"]
        .iter()
        .map(|status| format!("{status} {}", job["counts"][status]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Streams the results as CSV; returns (data rows, bytes).
pub async fn download(client: &reqwest::Client, server: &Server, id: &str) -> Result<(u64, u64)> {
    let mut response = client
        .get(server.url(&format!("/jobs/{id}/results?format=csv")))
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!(
            "GET /jobs/{id}/results answered {status}: {}",
            response.text().await?
        );
    }
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|&&byte| byte == b'\n').count() as u64;
    }
    // The header row is not a result.
    Ok((lines.saturating_sub(1), bytes))
}
