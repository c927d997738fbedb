//! A loopback SMTP peer that waits a fixed delay before every reply and
//! counts what it sees: sessions, replies, recipients, and how many sessions
//! were open at once.
//!
//! It accepts every recipient but two kinds, which it rejects as unknown
//! (`550 5.1.1`): mailvet's random catch-all probe (`mailvet-…@`), so that
//! accepted addresses come out `deliverable`, and local parts starting with
//! `gone`, the benchmarks' undeliverable addresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Counters {
    sessions: AtomicUsize,
    replies: AtomicUsize,
    rcpts: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
    longest_session: AtomicUsize,
    /// Microseconds since `epoch`: sessions' time added up, the first
    /// session's start and the last one's end.
    busy_us: AtomicU64,
    first_open_us: AtomicU64,
    last_close_us: AtomicU64,
}

/// What the peer saw, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Connections accepted.
    pub sessions: usize,
    /// Replies sent, the greeting included; each came after the delay.
    pub replies: usize,
    /// `RCPT TO` commands received (catch-all probes included).
    pub rcpts: usize,
    /// Most sessions open at the same time.
    pub most_open: usize,
    /// Most replies sent in one session.
    pub longest_session: usize,
    /// Sessions' durations added up.
    pub busy: Duration,
    /// When the first session opened and the last one closed.
    pub first_open: Option<Instant>,
    pub last_close: Option<Instant>,
}

impl PeerStats {
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

/// A running peer on 127.0.0.1; stops when dropped.
#[derive(Debug)]
pub struct Peer {
    pub port: u16,
    epoch: Instant,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Peer {
    pub async fn start(delay: Duration) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let epoch = Instant::now();
        let counters = Arc::new(Counters {
            first_open_us: AtomicU64::new(u64::MAX),
            ..Counters::default()
        });
        let shared = counters.clone();
        let micros = move || epoch.elapsed().as_micros() as u64;
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let opened = micros();
                let _ = socket.set_nodelay(true);
                shared.sessions.fetch_add(1, Ordering::Relaxed);
                shared.first_open_us.fetch_min(opened, Ordering::Relaxed);
                let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
                shared.most_open.fetch_max(open, Ordering::Relaxed);
                let counters = shared.clone();
                tokio::spawn(async move {
                    let replies = session(socket, delay, &counters).await;
                    let closed = micros();
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                    counters
                        .longest_session
                        .fetch_max(replies, Ordering::Relaxed);
                    counters
                        .busy_us
                        .fetch_add(closed - opened, Ordering::Relaxed);
                    counters.last_close_us.fetch_max(closed, Ordering::Relaxed);
                });
            }
        });
        Ok(Peer {
            port,
            epoch,
            counters,
            task,
        })
    }

    pub fn stats(&self) -> PeerStats {
        let c = &self.counters;
        PeerStats {
            sessions: c.sessions.load(Ordering::Relaxed),
            replies: c.replies.load(Ordering::Relaxed),
            rcpts: c.rcpts.load(Ordering::Relaxed),
            most_open: c.most_open.load(Ordering::Relaxed),
            longest_session: c.longest_session.load(Ordering::Relaxed),
            busy: Duration::from_micros(c.busy_us.load(Ordering::Relaxed)),
            first_open: match c.first_open_us.load(Ordering::Relaxed) {
                u64::MAX => None,
                us => Some(self.epoch + Duration::from_micros(us)),
            },
            last_close: match c.last_close_us.load(Ordering::Relaxed) {
                0 => None,
                us => Some(self.epoch + Duration::from_micros(us)),
            },
        }
    }
}

/// One session; returns the number of replies sent.
async fn session(socket: TcpStream, delay: Duration, counters: &Counters) -> usize {
    let mut stream = BufReader::new(socket);
    let mut sent = 0;
    let greeting = "220 mx.bench.test ESMTP ready\r\n";
    if send(&mut stream, delay, greeting, counters, &mut sent)
        .await
        .is_err()
    {
        return sent;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return sent,
            Ok(_) => {}
        }
        let verb = line
            .split([' ', ':', '\r', '\n'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let text = match verb.as_str() {
            "EHLO" => {
                "250-mx.bench.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            }
            "HELO" => "250 mx.bench.test\r\n",
            "MAIL" => "250 2.1.0 Ok\r\n",
            "RCPT" => {
                counters.rcpts.fetch_add(1, Ordering::Relaxed);
                let local = line
                    .split_once('<')
                    .map(|(_, rest)| rest.trim_start().to_ascii_lowercase())
                    .unwrap_or_default();
                if local.starts_with("mailvet-") || local.starts_with("gone") {
                    "550 5.1.1 Recipient address rejected: User unknown\r\n"
                } else {
                    "250 2.1.5 Ok\r\n"
                }
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok\r\n",
            "QUIT" => {
                let bye = "221 2.0.0 Bye\r\n";
                let _ = send(&mut stream, delay, bye, counters, &mut sent).await;
                return sent;
            }
            _ => "502 5.5.2 Error: command not recognized\r\n",
        };
        if send(&mut stream, delay, text, counters, &mut sent)
            .await
            .is_err()
        {
            return sent;
        }
    }
}

/// Sends a reply after the delay, counting it.
async fn send(
    stream: &mut BufReader<TcpStream>,
    delay: Duration,
    text: &str,
    counters: &Counters,
    sent: &mut usize,
) -> std::io::Result<()> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    *sent += 1;
    counters.replies.fetch_add(1, Ordering::Relaxed);
    stream.get_mut().write_all(text.as_bytes()).await
}
