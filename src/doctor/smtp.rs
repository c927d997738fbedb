//! Outbound SMTP: for each doctor domain, its first mail host is greeted
//! — connect, the greeting, `EHLO`, `QUIT` — on each path a connection
//! can take. Nothing is sent: no `MAIL FROM`, no `RCPT TO`, no `DATA`.

use std::net::{IpAddr, SocketAddr};

use futures::future::join_all;

use super::{Row, printable};
use crate::settings::SmtpArgs;
use crate::smtp::{
    Phase, Session, SessionConfig, SessionError, SmtpReply, Socks5Proxy, probe_tls_config,
};
use crate::verify::dns::{MailResolver, MailRoute};
use crate::verify::guard::forbidden_target;

/// Most characters of a server's reply shown in a row.
const REPLY_SHOWN: usize = 200;

const ADVICE_BLOCKED_PORT: &str = "outbound port 25 looks blocked here; use --proxy with a SOCKS5 \
                                   host that may send on port 25";
const ADVICE_REFUSED: &str = "the server refused this address: check PTR, HELO, blocklists";

/// How a connection to a mail host is opened.
#[derive(Debug, Clone)]
enum Path {
    /// From this host. `probes_use_it` is false when proxies are set: a
    /// blocked port 25 here is then only worth a warning.
    Direct { probes_use_it: bool },
    /// Through the `number`th `--proxy`.
    Proxy { number: usize, proxy: Socks5Proxy },
}

impl Path {
    /// Every path: directly, and through each configured proxy. A proxy
    /// URL that does not parse is a failed row instead.
    fn all(smtp: &SmtpArgs) -> (Vec<Path>, Option<Row>) {
        match smtp.proxies() {
            Ok(proxies) => {
                let mut paths = vec![Path::Direct {
                    probes_use_it: proxies.is_empty(),
                }];
                paths.extend(
                    proxies
                        .into_iter()
                        .enumerate()
                        .map(|(index, proxy)| Path::Proxy {
                            number: index + 1,
                            proxy,
                        }),
                );
                (paths, None)
            }
            Err(err) => (
                vec![Path::Direct {
                    probes_use_it: false,
                }],
                Some(Row::fail(
                    "proxies",
                    err,
                    "write each proxy as socks5://[user:pass@]host:port",
                )),
            ),
        }
    }

    fn label(&self) -> String {
        match self {
            Path::Direct { .. } => "direct".to_owned(),
            Path::Proxy { number, proxy } => format!("proxy {number}, {proxy}"),
        }
    }

    /// Connects over this path and reads the greeting.
    async fn connect(
        &self,
        addr: SocketAddr,
        host: &str,
        config: SessionConfig,
    ) -> Result<(Session, SmtpReply), SessionError> {
        match self {
            Path::Direct { .. } => Session::connect(addr, host, config).await,
            Path::Proxy { proxy, .. } => {
                Session::connect_via(Some(proxy), addr, host, config).await
            }
        }
    }
}

/// A mail host to greet: its name and the address chosen.
struct Target {
    host: String,
    ip: IpAddr,
}

/// A row per domain and path.
pub(super) async fn check(
    resolver: &MailResolver,
    smtp: &SmtpArgs,
    domains: &[String],
) -> Vec<Row> {
    if domains.is_empty() {
        return vec![Row::warn(
            "smtp",
            "no domain to try",
            "set --doctor-domains to a few large providers (gmail.com,outlook.com,yahoo.com)",
        )];
    }
    let config = SessionConfig {
        helo_name: smtp.helo_name(),
        timeout: smtp.timeout,
        tls: probe_tls_config(),
    };
    let (paths, bad_proxies) = Path::all(smtp);
    let checks = domains.iter().map(|domain| {
        let config = config.clone();
        let paths = paths.clone();
        async move {
            let target = match target(resolver, domain, smtp.allow_private_targets).await {
                Ok(target) => target,
                Err(row) => return vec![row],
            };
            let mut rows = Vec::with_capacity(paths.len());
            for path in &paths {
                rows.push(greet(domain, &target, path, smtp.port, config.clone()).await);
            }
            rows
        }
    });
    bad_proxies
        .into_iter()
        .chain(join_all(checks).await.into_iter().flatten())
        .collect()
}

/// The domain's first mail host and its first address the guard allows,
/// or the row that says why there is none.
async fn target(resolver: &MailResolver, domain: &str, allow_private: bool) -> Result<Target, Row> {
    let check = format!("smtp {domain}");
    let hosts = match resolver.mail_route(domain).await {
        Ok(MailRoute::Hosts { hosts, .. }) => hosts,
        Ok(other) => {
            return Err(Row::fail(
                check,
                format!(
                    "{domain} has {}",
                    crate::verify::resolver_watch::describe(&other)
                ),
                "choose --doctor-domains that receive mail, or see the resolver rows",
            ));
        }
        Err(err) => {
            return Err(Row::fail(
                check,
                format!("looking up {domain}'s mail hosts failed: {}", err.detail),
                "see the resolver rows; check --dns-servers",
            ));
        }
    };
    let first = &hosts[0];
    // IPv4 first: many hosts that may send on port 25 have no IPv6 route.
    let allowed = first
        .addrs
        .iter()
        .filter(|ip| ip.is_ipv4())
        .chain(first.addrs.iter().filter(|ip| ip.is_ipv6()))
        .find(|ip| allow_private || forbidden_target(**ip).is_none());
    match allowed {
        Some(ip) => Ok(Target {
            host: first.name.clone(),
            ip: *ip,
        }),
        None => {
            let why = first
                .addrs
                .first()
                .and_then(|ip| forbidden_target(*ip).map(|why| format!("{ip} is a {why} address")))
                .unwrap_or_else(|| "no address".to_owned());
            Err(Row::fail(
                check,
                format!("{}: {why}, which probes may not reach", first.name),
                "a mail host at a private address is refused unless --allow-private-targets",
            ))
        }
    }
}

/// Connect, greeting, `EHLO`, `QUIT`.
async fn greet(
    domain: &str,
    target: &Target,
    path: &Path,
    port: u16,
    config: SessionConfig,
) -> Row {
    let row = greet_over(domain, target, path, port, config).await;
    match path {
        Path::Direct {
            probes_use_it: false,
        } => row.only_a_warning("probes go through the proxies, not this way"),
        _ => row,
    }
}

async fn greet_over(
    domain: &str,
    target: &Target,
    path: &Path,
    port: u16,
    config: SessionConfig,
) -> Row {
    let check = format!("smtp {domain} ({})", path.label());
    let addr = SocketAddr::new(target.ip, port);
    let at = format!("{} [{}]:{port}", target.host, target.ip);
    let (mut session, greeting) = match path.connect(addr, &target.host, config).await {
        Ok(opened) => opened,
        Err(err) => return session_failure(check, &at, &err),
    };
    if !greeting.is_positive() {
        session.quit().await;
        return refusal(check, &at, "greeting", &greeting);
    }
    let row = match session.hello().await {
        Ok(hello) if hello.is_positive() => Row::pass(
            check,
            format!(
                "{at}: {}; our EHLO accepted",
                printable(&greeting.to_string(), REPLY_SHOWN)
            ),
        ),
        Ok(hello) => refusal(check, &at, "EHLO", &hello),
        Err(err) => {
            return session_failure(check, &at, &err);
        }
    };
    session.quit().await;
    row
}

/// A refusal: 4xx is a warning (the server may accept later), 5xx a
/// failure.
fn refusal(check: String, at: &str, phase: &str, reply: &SmtpReply) -> Row {
    let text = printable(&reply.message(), REPLY_SHOWN);
    let detail = format!("{at}: {phase} refused: {} {text}", reply.code());
    if reply.is_permanent() {
        Row::fail(check, detail, ADVICE_REFUSED)
    } else {
        Row::warn(check, detail, ADVICE_REFUSED)
    }
}

fn session_failure(check: String, at: &str, err: &SessionError) -> Row {
    let detail = format!(
        "{at}: {}",
        printable(&crate::error::error_chain(err), REPLY_SHOWN)
    );
    match err {
        SessionError::Proxy { .. } => Row::fail(
            check,
            detail,
            "check that the proxy runs and is reachable from here, and its user and password",
        ),
        SessionError::Connect { .. } | SessionError::Timeout(Phase::Connect) => {
            Row::fail(check, detail, ADVICE_BLOCKED_PORT)
        }
        _ => Row::fail(
            check,
            detail,
            "the server took the connection but did not talk: it may be slowing down or \
             refusing this address (check PTR, HELO, blocklists), or a firewall interferes",
        ),
    }
}
