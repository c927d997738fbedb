//! A scripted SMTP server on loopback: answers as the test says, records
//! every command it receives, and can misbehave (silence, garbage, replies
//! split across packets, slow replies, dropped connections, STARTTLS).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

type RcptFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// How the peer behaves.
#[derive(Clone)]
pub struct Script {
    /// The greeting; `None` accepts the connection and never says a word.
    pub greeting: Option<String>,
    /// The reply to EHLO, lines joined by CRLF.
    pub ehlo: String,
    pub mail_from: String,
    /// The reply to `RCPT TO` for an address.
    pub rcpt: RcptFn,
    /// Waited before every reply.
    pub delay: Duration,
    /// Sends each reply a few bytes at a time, in separate packets.
    pub split: bool,
    /// Advertises STARTTLS and refuses MAIL FROM until it is used.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Closes the connection after this many RCPT commands in a session.
    pub drop_after_rcpts: Option<usize>,
}

impl Script {
    /// A well-behaved server that knows these mailboxes.
    pub fn mailboxes(users: &[&str]) -> Self {
        let users: Vec<String> = users.iter().map(|user| user.to_ascii_lowercase()).collect();
        Script {
            greeting: Some("220 mx.example.test ESMTP ready".into()),
            ehlo: "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 SMTPUTF8"
                .into(),
            mail_from: "250 2.1.0 Ok".into(),
            rcpt: Arc::new(move |address: &str| {
                if users.contains(&address.to_ascii_lowercase()) {
                    "250 2.1.5 Ok".into()
                } else {
                    format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table")
                }
            }),
            delay: Duration::ZERO,
            split: false,
            tls: None,
            drop_after_rcpts: None,
        }
    }

    /// Knows every mailbox whose local part starts with `prefix`; every
    /// other recipient (mailvet's catch-all check included) is `550 5.1.1`.
    pub fn mailboxes_starting_with(prefix: &'static str) -> Self {
        Script {
            rcpt: Arc::new(move |address: &str| {
                if address.starts_with(prefix) {
                    "250 2.1.5 Ok".into()
                } else {
                    format!("550 5.1.1 <{address}>: Recipient address rejected: User unknown")
                }
            }),
            ..Script::mailboxes(&[])
        }
    }

    /// Accepts every recipient (a catch-all domain).
    pub fn catch_all() -> Self {
        Script {
            rcpt: Arc::new(|_: &str| "250 2.1.5 Ok".into()),
            ..Script::mailboxes(&[])
        }
    }

    /// Answers every recipient with `reply`.
    pub fn rcpt_reply(reply: &str) -> Self {
        let reply = reply.to_owned();
        Script {
            rcpt: Arc::new(move |_: &str| reply.clone()),
            ..Script::mailboxes(&[])
        }
    }
}

/// What the peer received.
#[derive(Default)]
struct Log {
    sessions: AtomicUsize,
    /// Connections open now, and the most open at once.
    open: AtomicUsize,
    peak: AtomicUsize,
    commands: Mutex<Vec<String>>,
    /// The address each connection came from.
    clients: Mutex<Vec<std::net::IpAddr>>,
}

pub struct SmtpPeer {
    pub addr: SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpPeer {
    /// Starts on `ip:port` (port 0 for any).
    pub async fn start_at(ip: &str, port: u16, script: Script) -> Self {
        let listener = TcpListener::bind((ip, port))
            .await
            .expect("bind the SMTP peer");
        let addr = listener.local_addr().expect("address");
        let log = Arc::new(Log::default());
        let shared = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, client)) = listener.accept().await {
                shared.sessions.fetch_add(1, Ordering::SeqCst);
                shared.clients.lock().expect("log").push(client.ip());
                let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                shared.peak.fetch_max(open, Ordering::SeqCst);
                let script = script.clone();
                let log = shared.clone();
                tokio::spawn(async move {
                    session(Box::new(socket), script, log.clone()).await;
                    log.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        SmtpPeer { addr, log, task }
    }

    pub async fn start(script: Script) -> Self {
        Self::start_at("127.0.0.1", 0, script).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn sessions(&self) -> usize {
        self.log.sessions.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn peak_sessions(&self) -> usize {
        self.log.peak.load(Ordering::SeqCst)
    }

    /// The address each connection came from, in order.
    pub fn clients(&self) -> Vec<std::net::IpAddr> {
        self.log.clients.lock().expect("log").clone()
    }

    /// Every command received, in order, across sessions.
    pub fn commands(&self) -> Vec<String> {
        self.log.commands.lock().expect("log").clone()
    }

    /// The addresses of every `RCPT TO` received.
    pub fn rcpts(&self) -> Vec<String> {
        self.commands()
            .iter()
            .filter_map(|command| {
                let rest = command.strip_prefix("RCPT TO:<")?;
                Some(rest.split('>').next().unwrap_or_default().to_owned())
            })
            .collect()
    }
}

async fn send(
    stream: &mut (impl AsyncWrite + Unpin),
    script: &Script,
    reply: &str,
) -> std::io::Result<()> {
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    let bytes = format!("{reply}\r\n").into_bytes();
    if script.split {
        for chunk in bytes.chunks(3) {
            stream.write_all(chunk).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    } else {
        stream.write_all(&bytes).await?;
        stream.flush().await?;
    }
    Ok(())
}

async fn session(stream: Box<dyn Stream>, script: Script, log: Arc<Log>) {
    let Some(greeting) = script.greeting.clone() else {
        // A tarpit: hold the connection, say nothing.
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(stream);
        return;
    };
    let mut stream = BufReader::new(stream);
    if send(stream.get_mut(), &script, &greeting).await.is_err() {
        return;
    }
    let mut tls = false;
    let mut rcpts = 0;
    loop {
        let mut line = String::new();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        log.commands.lock().expect("log").push(command.clone());
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => match (&script.tls, tls) {
                (Some(_), false) => script.ehlo.replacen("250 ", "250-STARTTLS\r\n250 ", 1),
                _ => script.ehlo.clone(),
            },
            "HELO" => "250 mx.example.test".into(),
            "STARTTLS" => match (&script.tls, tls) {
                (Some(config), false) => {
                    if send(stream.get_mut(), &script, "220 2.0.0 Ready to start TLS")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                    let Ok(upgraded) = acceptor.accept(stream.into_inner()).await else {
                        return;
                    };
                    stream = BufReader::new(Box::new(upgraded));
                    tls = true;
                    continue;
                }
                _ => "454 4.7.0 TLS not available".into(),
            },
            "MAIL" if script.tls.is_some() && !tls => {
                "530 5.7.0 Must issue a STARTTLS command first".into()
            }
            "MAIL" => script.mail_from.clone(),
            "RCPT" => {
                rcpts += 1;
                if script.drop_after_rcpts.is_some_and(|limit| rcpts > limit) {
                    return;
                }
                let address = command
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address)
                    .unwrap_or_default();
                (script.rcpt)(address)
            }
            "RSET" => "250 2.0.0 Ok".into(),
            "NOOP" => "250 2.0.0 Ok".into(),
            "QUIT" => {
                let _ = send(stream.get_mut(), &script, "221 2.0.0 Bye").await;
                return;
            }
            "DATA" => "554 5.5.1 This test server never takes a message".into(),
            _ => "502 5.5.2 Error: command not recognized".into(),
        };
        if send(stream.get_mut(), &script, &reply).await.is_err() {
            return;
        }
    }
}

/// A TLS configuration with a fresh self-signed certificate.
pub fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_owned()])
        .expect("generate a certificate");
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a server certificate");
    Arc::new(config)
}

/// A raw peer that sends `bytes` as soon as a client connects, then keeps
/// reading (and ignoring) whatever comes.
pub async fn raw_peer(bytes: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let _ = socket.write_all(&bytes).await;
                let mut sink = [0u8; 1024];
                loop {
                    match tokio::io::AsyncReadExt::read(&mut socket, &mut sink).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    addr
}
