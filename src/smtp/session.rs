//! One SMTP session with a mail server, over tokio: greeting, `EHLO` (with a
//! `HELO` fallback), `STARTTLS`, `MAIL FROM`, `RCPT TO`, `RSET`, `QUIT`.
//! Never `DATA`. Every phase has its own timeout, and what the server sends
//! is bounded (line length, lines per reply), so a hostile peer can neither
//! hang a probe nor exhaust memory.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::proxy::{ProxyError, Socks5Proxy};
use super::reply::{ReplyLine, SmtpReply};

/// Longest reply line accepted (RFC 5321 allows 512 octets; servers exceed it).
const MAX_LINE_BYTES: usize = 4096;
/// Most lines in one reply (an `EHLO` reply lists a few dozen at most).
const MAX_REPLY_LINES: usize = 64;

/// A phase of the session, for timeouts and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    MailFrom,
    RcptTo,
    Rset,
    Quit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::MailFrom => "MAIL FROM",
            Phase::RcptTo => "RCPT TO",
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
        })
    }
}

/// A session that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The SOCKS5 proxy itself failed (not the mail server behind it).
    #[error("SOCKS5 egress failed ({proxy}): {detail}")]
    Proxy { proxy: String, detail: String },
    #[error("no answer to {0} within the timeout")]
    Timeout(Phase),
    #[error("the server closed the connection during {0}")]
    Closed(Phase),
    #[error("unreadable reply during {phase}: {detail}")]
    Protocol { phase: Phase, detail: String },
    #[error("TLS negotiation failed: {0}")]
    Tls(String),
    #[error("I/O error during {phase}: {source}")]
    Io {
        phase: Phase,
        #[source]
        source: io::Error,
    },
}

impl SessionError {
    /// The phase in which the session failed.
    pub fn phase(&self) -> Phase {
        match self {
            SessionError::Connect { .. } | SessionError::Proxy { .. } => Phase::Connect,
            SessionError::Timeout(phase) | SessionError::Closed(phase) => *phase,
            SessionError::Protocol { phase, .. } | SessionError::Io { phase, .. } => *phase,
            SessionError::Tls(_) => Phase::StartTls,
        }
    }
}

/// What the server advertised in its `EHLO` reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    pub smtputf8: bool,
    pub pipelining: bool,
}

impl Extensions {
    fn from_ehlo(reply: &SmtpReply) -> Self {
        let mut found = Extensions::default();
        // The first line is the server's greeting text; keywords follow.
        for line in reply.lines().iter().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or_default();
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => found.starttls = true,
                "SMTPUTF8" => found.smtputf8 = true,
                "PIPELINING" => found.pipelining = true,
                _ => {}
            }
        }
        found
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Settings of a session.
#[derive(Clone)]
pub struct SessionConfig {
    /// The name given in `EHLO`/`HELO`.
    pub helo_name: String,
    /// The time allowed for each phase: connecting, the greeting, and each
    /// command's reply.
    pub timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("helo_name", &self.helo_name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An open SMTP session.
pub struct Session {
    io: BufReader<Box<dyn Stream>>,
    peer: SocketAddr,
    /// The mail server's name (the MX host), for TLS and reports.
    host: String,
    config: SessionConfig,
    extensions: Extensions,
    tls: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("host", &self.host)
            .field("extensions", &self.extensions)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects and reads the greeting. The greeting may be a refusal
    /// (4xx/5xx); the caller decides what that means.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        config: SessionConfig,
    ) -> Result<(Session, SmtpReply), SessionError> {
        Self::connect_via(None, addr, host, config).await
    }

    /// Like [`Session::connect`], through `proxy` when one is given: the
    /// proxy is asked to connect to `addr`, never to a name.
    pub async fn connect_via(
        proxy: Option<&Socks5Proxy>,
        addr: SocketAddr,
        host: &str,
        config: SessionConfig,
    ) -> Result<(Session, SmtpReply), SessionError> {
        let stream: Box<dyn Stream> = match proxy {
            None => Box::new(Self::direct(addr, config.timeout).await?),
            Some(proxy) => match proxy.connect(addr, config.timeout).await {
                Ok(stream) => Box::new(stream),
                Err(ProxyError::Timeout) => return Err(SessionError::Timeout(Phase::Connect)),
                Err(ProxyError::Target(source)) => {
                    return Err(SessionError::Connect { addr, source });
                }
                Err(ProxyError::Proxy(detail)) => {
                    return Err(SessionError::Proxy {
                        proxy: proxy.to_string(),
                        detail,
                    });
                }
            },
        };
        let mut session = Session {
            io: BufReader::new(stream),
            peer: addr,
            host: host.to_owned(),
            config,
            extensions: Extensions::default(),
            tls: false,
        };
        let greeting = session.timed(Phase::Greeting, None).await?;
        Ok((session, greeting))
    }

    async fn direct(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, SessionError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SessionError::Timeout(Phase::Connect))?
            .map_err(|source| SessionError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn extensions(&self) -> Extensions {
        self.extensions
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Sends `EHLO`; if the server does not know it, `HELO`. Returns the
    /// final reply (positive, or the refusal).
    pub async fn hello(&mut self) -> Result<SmtpReply, SessionError> {
        let command = format!("EHLO {}", self.config.helo_name);
        let reply = self.timed(Phase::Ehlo, Some(&command)).await?;
        if reply.is_positive() {
            self.extensions = Extensions::from_ehlo(&reply);
            return Ok(reply);
        }
        if !reply.is_permanent() {
            return Ok(reply);
        }
        self.extensions = Extensions::default();
        let command = format!("HELO {}", self.config.helo_name);
        self.timed(Phase::Helo, Some(&command)).await
    }

    /// Upgrades the session to TLS and says `EHLO` again. Returns the
    /// `STARTTLS` refusal if the server refused it.
    pub async fn start_tls(
        self,
    ) -> Result<Result<(Session, SmtpReply), (Session, SmtpReply)>, SessionError> {
        let mut this = self;
        let reply = this.timed(Phase::StartTls, Some("STARTTLS")).await?;
        if reply.code() != 220 {
            return Ok(Err((this, reply)));
        }
        if !this.io.buffer().is_empty() {
            // Bytes sent after the 220 would be read as if they came over TLS
            // (CVE-2011-0411 and kin).
            return Err(SessionError::Protocol {
                phase: Phase::StartTls,
                detail: "the server sent data after agreeing to STARTTLS".into(),
            });
        }
        let server_name = match this.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(this.host.clone())
                .map_err(|err| SessionError::Tls(format!("{}: {err}", this.host)))?,
        };
        let connector = tokio_rustls::TlsConnector::from(this.config.tls.clone());
        let inner = this.io.into_inner();
        let tls = tokio::time::timeout(this.config.timeout, connector.connect(server_name, inner))
            .await
            .map_err(|_| SessionError::Timeout(Phase::StartTls))?
            .map_err(|err| SessionError::Tls(err.to_string()))?;
        let mut upgraded = Session {
            io: BufReader::new(Box::new(tls)),
            peer: this.peer,
            host: this.host,
            config: this.config,
            extensions: Extensions::default(),
            tls: true,
        };
        let hello = upgraded.hello().await?;
        Ok(Ok((upgraded, hello)))
    }

    /// `MAIL FROM:<from>`, with the SMTPUTF8 parameter when asked.
    pub async fn mail_from(
        &mut self,
        from: &str,
        smtputf8: bool,
    ) -> Result<SmtpReply, SessionError> {
        let parameter = if smtputf8 { " SMTPUTF8" } else { "" };
        let command = format!("MAIL FROM:<{from}>{parameter}");
        self.timed(Phase::MailFrom, Some(&command)).await
    }

    /// `RCPT TO:<to>`.
    pub async fn rcpt_to(&mut self, to: &str) -> Result<SmtpReply, SessionError> {
        let command = format!("RCPT TO:<{to}>");
        self.timed(Phase::RcptTo, Some(&command)).await
    }

    /// `RSET`: ends the mail transaction, keeps the session.
    pub async fn rset(&mut self) -> Result<SmtpReply, SessionError> {
        self.timed(Phase::Rset, Some("RSET")).await
    }

    /// `QUIT`, best effort: the session ends either way.
    pub async fn quit(mut self) {
        let _ = self.timed(Phase::Quit, Some("QUIT")).await;
        let _ = self.io.get_mut().shutdown().await;
    }

    /// Sends a command (if any) and reads its reply, within the timeout.
    async fn timed(
        &mut self,
        phase: Phase,
        command: Option<&str>,
    ) -> Result<SmtpReply, SessionError> {
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, self.exchange(phase, command))
            .await
            .map_err(|_| SessionError::Timeout(phase))?
    }

    async fn exchange(
        &mut self,
        phase: Phase,
        command: Option<&str>,
    ) -> Result<SmtpReply, SessionError> {
        if let Some(command) = command {
            let stream = self.io.get_mut();
            let io_error = |source| SessionError::Io { phase, source };
            stream
                .write_all(command.as_bytes())
                .await
                .map_err(io_error)?;
            stream.write_all(b"\r\n").await.map_err(io_error)?;
            stream.flush().await.map_err(io_error)?;
        }
        self.read_reply(phase).await
    }

    async fn read_reply(&mut self, phase: Phase) -> Result<SmtpReply, SessionError> {
        let mut lines = Vec::new();
        loop {
            let raw = self.read_line(phase).await?;
            let line = ReplyLine::parse(&raw).map_err(|err| SessionError::Protocol {
                phase,
                detail: err.to_string(),
            })?;
            let more = line.more;
            lines.push(line);
            if !more {
                break;
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(SessionError::Protocol {
                    phase,
                    detail: format!("a reply of more than {MAX_REPLY_LINES} lines"),
                });
            }
        }
        SmtpReply::from_lines(lines).map_err(|err| SessionError::Protocol {
            phase,
            detail: err.to_string(),
        })
    }

    /// Reads one line (without CRLF) of at most `MAX_LINE_BYTES`, however
    /// the bytes are split across TCP reads.
    async fn read_line(&mut self, phase: Phase) -> Result<String, SessionError> {
        let mut line = Vec::new();
        loop {
            let buffer = self
                .io
                .fill_buf()
                .await
                .map_err(|source| SessionError::Io { phase, source })?;
            if buffer.is_empty() {
                return Err(SessionError::Closed(phase));
            }
            let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), false),
            };
            if line.len() + taken > MAX_LINE_BYTES + 2 {
                return Err(SessionError::Protocol {
                    phase,
                    detail: format!("a reply line longer than {MAX_LINE_BYTES} bytes"),
                });
            }
            line.extend_from_slice(&buffer[..taken]);
            self.io.consume(taken);
            if done {
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }
}
