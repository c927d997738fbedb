//! A loopback mail farm: one SMTP server per domain, each at an address of
//! its own (127.1.x.y, one listener each, all on one port, since mailvet's
//! `--smtp-port` is global), behaving as real servers do and counting what
//! every domain saw.
//!
//! Per-address servers matter: mailvet caps sessions per MX host name *and*
//! per IP address, so a farm on 127.0.0.1 alone would put every domain
//! under one address's cap.
//!
//! Each server, like Postfix with its usual settings:
//! - waits its domain's delay before every reply, the greeting included;
//! - accepts at most [`RCPT_LIMIT`] recipients a transaction, then answers
//!   `452 4.5.3 Error: too many recipients` (`smtpd_recipient_limit`);
//! - counts error replies (4xx and 5xx) in a session: from the
//!   [`SOFT_ERROR_LIMIT`]th on, each further reply waits [`ERROR_SLEEP`]
//!   more; once there are [`HARD_ERROR_LIMIT`], the next command gets
//!   `421 4.7.0 Error: too many errors` and the connection is closed
//!   (`smtpd_soft_error_limit`, `smtpd_error_sleep_time`,
//!   `smtpd_hard_error_limit`);
//! - rejects `gone…` local parts and mailvet's random catch-all probe
//!   (`mailvet-…`) as unknown (`550 5.1.1`), accepts other local parts, and
//!   refuses recipients at another domain as relaying (`554 5.7.1`), which a
//!   correct client never causes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Accepted recipients a transaction.
pub const RCPT_LIMIT: usize = 100;
/// Error replies after which every reply is slowed by [`ERROR_SLEEP`].
pub const SOFT_ERROR_LIMIT: usize = 10;
/// Error replies after which the session is closed with `421`.
pub const HARD_ERROR_LIMIT: usize = 20;
pub const ERROR_SLEEP: Duration = Duration::from_secs(1);

/// One domain of the farm.
#[derive(Debug, Clone)]
pub struct FarmDomain {
    pub name: String,
    pub address: Ipv4Addr,
    /// Waited before every reply.
    pub delay: Duration,
}

/// The address of the `index`th domain's server: 127.1.0.1, 127.1.0.2, …
/// 127.1.0.250, 127.1.1.1, …
pub fn address(index: usize) -> Ipv4Addr {
    let (high, low) = (index / 250, index % 250 + 1);
    Ipv4Addr::new(127, 1 + (high / 256) as u8, (high % 256) as u8, low as u8)
}

#[derive(Debug, Default)]
struct DomainCounters {
    sessions: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    rcpts: AtomicUsize,
    replies: AtomicUsize,
    /// Replies slowed by the soft error limit.
    slowed: AtomicUsize,
    /// `452` (recipient limit), `421` (hard error limit) and `554` (another
    /// domain's recipient) sent.
    too_many_rcpts: AtomicUsize,
    closed_for_errors: AtomicUsize,
    foreign: AtomicUsize,
    /// Microseconds waited before replies (delays and error sleeps).
    waited_us: AtomicU64,
}

#[derive(Debug, Default)]
struct Totals {
    /// Sessions open across the farm, and the most at once.
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// Sessions' durations added up, the longest wait inside one session,
    /// and (microseconds since the epoch) the first open and last close.
    busy_us: AtomicU64,
    longest_session_wait_us: AtomicU64,
    first_open_us: AtomicU64,
    last_close_us: AtomicU64,
}

/// What one domain's server saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainStats {
    pub sessions: usize,
    /// Most sessions open at the same time.
    pub peak: usize,
    pub rcpts: usize,
    pub replies: usize,
    pub slowed: usize,
    pub too_many_rcpts: usize,
    pub closed_for_errors: usize,
    pub foreign: usize,
    /// Time waited before replies, the delays and error sleeps added up.
    pub waited: Duration,
}

/// What the whole farm saw, at one moment.
#[derive(Debug, Clone)]
pub struct FarmStats {
    /// In the farm's domain order.
    pub domains: Vec<DomainStats>,
    pub most_open: usize,
    pub busy: Duration,
    /// The most time waited before replies within one session.
    pub longest_session_wait: Duration,
    pub first_open: Option<Instant>,
    pub last_close: Option<Instant>,
}

impl FarmStats {
    pub fn sessions(&self) -> usize {
        self.domains.iter().map(|d| d.sessions).sum()
    }

    pub fn replies(&self) -> usize {
        self.domains.iter().map(|d| d.replies).sum()
    }

    pub fn rcpts(&self) -> usize {
        self.domains.iter().map(|d| d.rcpts).sum()
    }

    pub fn waited(&self) -> Duration {
        self.domains.iter().map(|d| d.waited).sum()
    }

    /// Sessions open on average between the first's start and the last's end.
    pub fn mean_open(&self) -> f64 {
        match (self.first_open, self.last_close) {
            (Some(first), Some(last)) if last > first => {
                self.busy.as_secs_f64() / (last - first).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// A running farm; its listeners stop when it is dropped.
#[derive(Debug)]
pub struct Farm {
    pub port: u16,
    counters: Arc<Vec<DomainCounters>>,
    totals: Arc<Totals>,
    epoch: Instant,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Farm {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Farm {
    /// Binds one listener per domain, all on one free port.
    pub async fn start(domains: Vec<FarmDomain>) -> Result<Self> {
        let listeners = bind_all(&domains).await?;
        let port = listeners[0].local_addr()?.port();
        let domains = Arc::new(domains);
        let counters: Arc<Vec<DomainCounters>> =
            Arc::new(domains.iter().map(|_| DomainCounters::default()).collect());
        let totals = Arc::new(Totals {
            first_open_us: AtomicU64::new(u64::MAX),
            ..Totals::default()
        });
        let epoch = Instant::now();
        let mut tasks = Vec::with_capacity(listeners.len());
        for (index, listener) in listeners.into_iter().enumerate() {
            let (domains, counters, totals) = (domains.clone(), counters.clone(), totals.clone());
            tasks.push(tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let _ = socket.set_nodelay(true);
                    let opened = epoch.elapsed().as_micros() as u64;
                    let mine = &counters[index];
                    mine.sessions.fetch_add(1, Ordering::Relaxed);
                    let open = mine.open.fetch_add(1, Ordering::Relaxed) + 1;
                    mine.peak.fetch_max(open, Ordering::Relaxed);
                    let all_open = totals.open.fetch_add(1, Ordering::Relaxed) + 1;
                    totals.most_open.fetch_max(all_open, Ordering::Relaxed);
                    totals.first_open_us.fetch_min(opened, Ordering::Relaxed);
                    let (domains, counters, totals) =
                        (domains.clone(), counters.clone(), totals.clone());
                    tokio::spawn(async move {
                        let mine = &counters[index];
                        let waited = session(socket, &domains[index], mine).await;
                        let closed = epoch.elapsed().as_micros() as u64;
                        mine.open.fetch_sub(1, Ordering::Relaxed);
                        totals.open.fetch_sub(1, Ordering::Relaxed);
                        totals
                            .busy_us
                            .fetch_add(closed.saturating_sub(opened), Ordering::Relaxed);
                        totals
                            .longest_session_wait_us
                            .fetch_max(waited.as_micros() as u64, Ordering::Relaxed);
                        totals.last_close_us.fetch_max(closed, Ordering::Relaxed);
                    });
                }
            }));
        }
        Ok(Farm {
            port,
            counters,
            totals,
            epoch,
            tasks,
        })
    }

    /// Sessions open across the farm now.
    pub fn open_now(&self) -> usize {
        self.totals.open.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> FarmStats {
        let load = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        let domains = self
            .counters
            .iter()
            .map(|c| DomainStats {
                sessions: load(&c.sessions),
                peak: load(&c.peak),
                rcpts: load(&c.rcpts),
                replies: load(&c.replies),
                slowed: load(&c.slowed),
                too_many_rcpts: load(&c.too_many_rcpts),
                closed_for_errors: load(&c.closed_for_errors),
                foreign: load(&c.foreign),
                waited: Duration::from_micros(c.waited_us.load(Ordering::Relaxed)),
            })
            .collect();
        let t = &self.totals;
        let at = |us: u64| self.epoch + Duration::from_micros(us);
        FarmStats {
            domains,
            most_open: load(&t.most_open),
            busy: Duration::from_micros(t.busy_us.load(Ordering::Relaxed)),
            longest_session_wait: Duration::from_micros(
                t.longest_session_wait_us.load(Ordering::Relaxed),
            ),
            first_open: match t.first_open_us.load(Ordering::Relaxed) {
                u64::MAX => None,
                us => Some(at(us)),
            },
            last_close: match t.last_close_us.load(Ordering::Relaxed) {
                0 => None,
                us => Some(at(us)),
            },
        }
    }
}

/// One listener per domain address, all on the same port: the first takes
/// a free port, the others must get it too, or the round starts again.
async fn bind_all(domains: &[FarmDomain]) -> Result<Vec<TcpListener>> {
    let Some(first) = domains.first() else {
        bail!("a farm needs at least one domain");
    };
    'attempt: for _ in 0..20 {
        let listener = TcpListener::bind((first.address, 0)).await?;
        let port = listener.local_addr()?.port();
        let mut listeners = vec![listener];
        for domain in &domains[1..] {
            match TcpListener::bind((domain.address, port)).await {
                Ok(listener) => listeners.push(listener),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue 'attempt,
                Err(err) => bail!("binding {}:{port}: {err}", domain.address),
            }
        }
        return Ok(listeners);
    }
    bail!("no port free on all {} farm addresses", domains.len())
}

/// Where one session stands.
struct Session<'a> {
    stream: BufReader<TcpStream>,
    domain: &'a FarmDomain,
    counters: &'a DomainCounters,
    errors: usize,
    waited: Duration,
}

impl Session<'_> {
    /// Sends a reply after the domain's delay (and the error sleep, past
    /// the soft limit), counting it, and an error if it is one.
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let mut wait = self.domain.delay;
        if self.errors >= SOFT_ERROR_LIMIT {
            wait += ERROR_SLEEP;
            self.counters.slowed.fetch_add(1, Ordering::Relaxed);
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.waited += wait;
        self.counters
            .waited_us
            .fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        self.counters.replies.fetch_add(1, Ordering::Relaxed);
        if text.starts_with('4') || text.starts_with('5') {
            self.errors += 1;
        }
        self.stream.get_mut().write_all(text.as_bytes()).await
    }
}

/// One session; returns the time it waited before its replies.
async fn session(socket: TcpStream, domain: &FarmDomain, counters: &DomainCounters) -> Duration {
    let mut session = Session {
        stream: BufReader::new(socket),
        domain,
        counters,
        errors: 0,
        waited: Duration::ZERO,
    };
    let _ = serve(&mut session).await;
    session.waited
}

async fn serve(session: &mut Session<'_>) -> std::io::Result<()> {
    let host = format!("mx.{}", session.domain.name);
    session
        .reply(&format!("220 {host} ESMTP ready\r\n"))
        .await?;
    let mut accepted = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if session.stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if session.errors >= HARD_ERROR_LIMIT {
            session
                .counters
                .closed_for_errors
                .fetch_add(1, Ordering::Relaxed);
            return session
                .reply(&format!("421 4.7.0 {host} Error: too many errors\r\n"))
                .await;
        }
        let verb = line
            .split([' ', ':', '\r', '\n'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let text = match verb.as_str() {
            "EHLO" => format!(
                "250-{host}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            ),
            "HELO" => format!("250 {host}\r\n"),
            "MAIL" => {
                accepted = 0;
                "250 2.1.0 Ok\r\n".to_owned()
            }
            "RCPT" => {
                session.counters.rcpts.fetch_add(1, Ordering::Relaxed);
                rcpt(session, &line, &mut accepted)
            }
            "RSET" => {
                accepted = 0;
                "250 2.0.0 Ok\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".to_owned(),
            "QUIT" => return session.reply("221 2.0.0 Bye\r\n").await,
            _ => "502 5.5.2 Error: command not recognized\r\n".to_owned(),
        };
        session.reply(&text).await?;
    }
}

/// The answer to `RCPT TO:<local@domain>`.
fn rcpt(session: &Session<'_>, line: &str, accepted: &mut usize) -> String {
    let address = line
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let (local, domain) = address.rsplit_once('@').unwrap_or((&address, ""));
    if domain != session.domain.name {
        session.counters.foreign.fetch_add(1, Ordering::Relaxed);
        return format!("554 5.7.1 <{address}>: Relay access denied\r\n");
    }
    if *accepted >= RCPT_LIMIT {
        session
            .counters
            .too_many_rcpts
            .fetch_add(1, Ordering::Relaxed);
        return "452 4.5.3 Error: too many recipients\r\n".to_owned();
    }
    if local.starts_with("mailvet-") || local.starts_with("gone") {
        return format!(
            "550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table\r\n"
        );
    }
    *accepted += 1;
    "250 2.1.5 Ok\r\n".to_owned()
}
