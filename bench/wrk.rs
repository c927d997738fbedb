//! Load from `wrk`: a Lua script sets the POST body and headers and, when
//! the run is done, prints the exact figures (requests, duration,
//! percentiles in µs, errors) on one line that is read back here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

/// Fails with installation advice when `wrk` is missing.
pub fn check_installed() -> Result<()> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "wrk is not installed; install it with `sudo apt-get install -y wrk` \
             (Debian/Ubuntu) or `brew install wrk` (macOS), then run the benchmark again"
        ),
        Err(err) => Err(err).context("running wrk"),
    }
}

/// How wrk loads the server.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub requests: u64,
    pub seconds: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Responses that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

impl WrkRun {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Writes the Lua script that POSTs `body` as JSON with `headers`.
pub fn write_script(path: &Path, body: &str, headers: &[(&str, &str)]) -> Result<()> {
    let mut script = String::from("wrk.method = \"POST\"\n");
    script.push_str(&format!("wrk.body = {}\n", lua_string(body)));
    script.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    write_rest(path, script, headers)
}

/// Writes the Lua script that GETs the URL with `headers`.
pub fn write_get_script(path: &Path, headers: &[(&str, &str)]) -> Result<()> {
    write_rest(path, String::from("wrk.method = \"GET\"\n"), headers)
}

/// Adds the headers and the summary printer to `script` and writes it.
fn write_rest(path: &Path, mut script: String, headers: &[(&str, &str)]) -> Result<()> {
    for (name, value) in headers {
        script.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua_string(name),
            lua_string(value)
        ));
    }
    script.push_str(
        r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "MAILVET_BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"#,
    );
    std::fs::write(path, script).with_context(|| format!("writing {}", path.display()))
}

fn lua_string(text: &str) -> String {
    format!("{text:?}")
}

/// Runs wrk against `url` with the script, off the async threads.
pub async fn run_async(url: &str, script: &Path, load: Load) -> Result<WrkRun> {
    let url = url.to_owned();
    let script = script.to_owned();
    tokio::task::spawn_blocking(move || run(&url, &script, load))
        .await
        .context("the wrk task")?
}

/// Rounds summed: requests and time added, percentiles averaged (each
/// round ran as long as the others).
pub fn total(runs: &[WrkRun]) -> WrkRun {
    let n = runs.len().max(1) as f64;
    WrkRun {
        requests: runs.iter().map(|run| run.requests).sum(),
        seconds: runs.iter().map(|run| run.seconds).sum(),
        p50_us: runs.iter().map(|run| run.p50_us).sum::<f64>() / n,
        p99_us: runs.iter().map(|run| run.p99_us).sum::<f64>() / n,
        non_2xx: runs.iter().map(|run| run.non_2xx).sum(),
        socket_errors: runs.iter().map(|run| run.socket_errors).sum(),
    }
}

/// The median of the rounds' ratios: each round pairs two runs a few
/// seconds apart, and the median is the least disturbed by a noisy
/// neighbour.
pub fn median_ratio(ratios: &[f64]) -> f64 {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Runs wrk (blocking) against `url` with the script.
pub fn run(url: &str, script: &Path, load: Load) -> Result<WrkRun> {
    let output = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .args(["--timeout", "5s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("MAILVET_BENCH "))
        .ok_or_else(|| anyhow!("wrk printed no summary:\n{stdout}"))?;
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in wrk's summary: {line}"))?
            .parse::<f64>()
            .with_context(|| format!("{name} in wrk's summary: {line}"))
    };
    Ok(WrkRun {
        requests: field("requests")? as u64,
        seconds: field("duration_us")? / 1e6,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        non_2xx: field("non2xx")? as u64,
        socket_errors: field("socket_errors")? as u64,
    })
}
