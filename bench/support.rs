//! What every benchmark needs: the processes it starts (the release mailvet
//! binary, the bare axum ceiling), free loopback ports, `/proc` readings,
//! scratch Postgres databases, a streamed HTTP upload, and settings from the
//! environment.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The release binary `cargo bench` built.
pub const MAILVET: &str = env!("CARGO_BIN_EXE_mailvet");

/// The secret key the benchmarks give mailvet and send as `Bearer`.
pub const API_KEY: &str = "sk_bench_0123456789abcdef";

/// What a benchmark reports in the final summary.
#[derive(Debug)]
pub struct Outcome {
    pub headline: String,
    /// Whether the goal was met, when the benchmark has one.
    pub met: Option<bool>,
}

/// A whole number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={value} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// A duration (`10s`, `1m 30s`) from the environment, or `default`.
pub fn env_duration(name: &str, default: Duration) -> Result<Duration> {
    match std::env::var(name) {
        Ok(value) => humantime::parse_duration(value.trim())
            .with_context(|| format!("{name}={value} is not a duration such as 10s")),
        Err(_) => Ok(default),
    }
}

/// Where scratch Postgres databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("MAILVET_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A port nobody listens on right now, on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A SQLite URL for a fresh file in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("mailvet.db").display())
}

/// An HTTP client that sends the bench key with every request.
pub fn client() -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {API_KEY}").parse()?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(120))
        .build()?)
}

/// The `serve` command line of a mailvet whose DNS and SMTP stay on
/// loopback servers the benchmark started.
#[derive(Debug, Clone)]
pub struct MailvetCommand {
    args: Vec<String>,
}

impl MailvetCommand {
    pub fn new(database_url: &str, dns: SocketAddr, smtp_port: u16) -> Self {
        let args = [
            "serve",
            "--database-url",
            database_url,
            "--dns-servers",
            &dns.to_string(),
            "--smtp-port",
            &smtp_port.to_string(),
            "--allow-private-targets",
            "--helo-name",
            "bench.mailvet.test",
            "--mail-from",
            "postmaster@bench.mailvet.test",
            "--secret-keys",
            API_KEY,
        ]
        .map(str::to_owned)
        .to_vec();
        MailvetCommand { args }
    }

    /// Adds `--flag value`; a later flag wins over an earlier one.
    pub fn arg(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value.to_string());
        self
    }

    /// Starts mailvet on a free loopback port, its logs in `log`.
    pub fn spawn(&self, log: &Path) -> Result<Server> {
        let port = free_port()?;
        let mut command = Command::new(MAILVET);
        command
            .args(&self.args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The benchmarks' DNS server knows only its own zone.
            .args(["--dns-canary", "none"]);
        // Only the flags above configure it, not the caller's environment
        // (RUST_LOG still passes: the log level is the caller's choice).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("MAILVET_") || name == "DATABASE_URL" {
                command.env_remove(name.as_ref());
            }
        }
        Server::spawn("mailvet", command, port, log)
    }
}

/// A process the benchmark started; killed (by its PID) when dropped.
#[derive(Debug)]
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub started: Instant,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Spawns `command` (which must listen on `127.0.0.1:port`), its
    /// standard output and error in `log`.
    pub fn spawn(name: &'static str, mut command: Command, port: u16, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Server {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            started,
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `GET /readyz` until it answers 200; returns the time from the
    /// process's start. Fails if the process exits or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let probe = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = self.url("/readyz");
        loop {
            if let Ok(response) = probe.get(&url).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return Ok(self.started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before it was ready; its log ends:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            if self.started.elapsed() > timeout {
                bail!(
                    "{} not ready after {timeout:?}; its log ends:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
    pub fn status_kib(&self, field: &str) -> Result<u64> {
        proc_status_kib(self.pid(), field)
    }

    /// Fails (with the log) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(anyhow!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail(20)
            )),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    Ok(kib.parse()?)
}

/// A Postgres database of the benchmark's own, dropped by [`PgScratch::drop_now`].
#[derive(Debug)]
pub struct PgScratch {
    pub url: String,
    name: String,
    admin: String,
}

impl PgScratch {
    pub async fn create() -> Result<Self> {
        let admin = postgres_admin_url();
        let mut conn = admin_connection(&admin).await?;
        let name = format!("mailvet_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin)?;
        url.set_path(&name);
        Ok(PgScratch {
            url: url.to_string(),
            name,
            admin,
        })
    }

    pub async fn drop_now(self) -> Result<()> {
        let mut conn = admin_connection(&self.admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop database if exists {} with (force)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping database {}", self.name))?;
        conn.close().await.ok();
        Ok(())
    }
}

async fn admin_connection(admin: &str) -> Result<PgConnection> {
    let redacted = mailvet::secret::redact_url(admin);
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(admin)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(err)) => Err(anyhow!(
            "Postgres at {redacted} is unreachable ({err}). Start one (see the README's \
             \"Running the tests\") or set MAILVET_BENCH_DATABASE_URL to a server where the \
             user may create databases"
        )),
        Err(_) => Err(anyhow!("Postgres at {redacted} did not answer within 10 s")),
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// `POST`s a body produced chunk by chunk (`Transfer-Encoding: chunked`),
/// so that a large upload is never held in memory whole. reqwest can only
/// stream with its `stream` feature, which this crate does not enable.
pub async fn post_streamed(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    chunks: impl Iterator<Item = Vec<u8>>,
) -> Result<RawResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {API_KEY}\r\n\
         content-type: {content_type}\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut sent_all = true;
    for chunk in chunks.filter(|chunk| !chunk.is_empty()) {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).await.is_err() {
            // The server answered early (413, 4xx) and closed; read why.
            sent_all = false;
            break;
        }
    }
    if sent_all {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<RawResponse> {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("no HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|window| window == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

/// The median of a few measurements.
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    match values.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2,
    }
}

/// Milliseconds with one decimal.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A deterministic pseudo-random sequence (xorshift64*), so that every run
/// submits the same list in the same order.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `0..n`, shuffled (Fisher–Yates).
    pub fn permutation(&mut self, n: u32) -> Vec<u32> {
        let mut order: Vec<u32> = (0..n).collect();
        for i in (1..order.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }
}
