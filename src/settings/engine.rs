//! The verification engine's flags: the database, DNS, SMTP probes and
//! the verification rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::blank;
use crate::secret::{ExposeSecret, SecretString, parse_secret};
use crate::smtp::Socks5Proxy;
use crate::store::StoreSettings;
use crate::verify::dns::DnsSettings;
use crate::verify::lists::Lists;
use crate::verify::probe::ProbeSettings;
use crate::verify::{CacheTtl, VerifierSettings};

/// The database and its connection pool.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// Database: postgres://user:password@host/db, or sqlite://FILE for the
    /// embedded store (created if missing).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://mailvet.db",
        value_parser = parse_secret,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub url: SecretString,

    /// Most database connections to hold open.
    #[arg(
        long = "db-max-connections",
        env = "MAILVET_DB_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub max_connections: u32,

    /// How long a query waits for a free database connection.
    #[arg(long = "db-acquire-timeout", env = "MAILVET_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub acquire_timeout: Duration,
}

impl DatabaseArgs {
    /// The store's settings.
    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            url: self.url.clone(),
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
        }
    }
}

/// The verification engine's DNS lookups.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "DNS")]
pub struct DnsArgs {
    /// DNS servers as ip:port, comma separated (default: the system resolver).
    #[arg(
        long = "dns-servers",
        env = "MAILVET_DNS_SERVERS",
        value_delimiter = ','
    )]
    pub servers: Vec<SocketAddr>,

    /// Time allowed for one DNS query.
    #[arg(id = "dns_timeout", long = "dns-timeout", value_name = "TIMEOUT", env = "MAILVET_DNS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Names that must resolve to mail hosts, comma separated. While none
    /// does, the resolver is not trusted: no DNS answer makes an address
    /// undeliverable and verification suppresses nothing. `none` turns the
    /// check off.
    #[arg(
        long = "dns-canary",
        value_name = "DOMAINS",
        env = "MAILVET_DNS_CANARY",
        value_delimiter = ',',
        default_value = "gmail.com,outlook.com,yahoo.com"
    )]
    pub canaries: Vec<String>,
}

impl DnsArgs {
    /// The resolver's settings.
    pub fn resolver(&self) -> DnsSettings {
        DnsSettings {
            servers: self.servers.clone(),
            timeout: self.timeout,
            canaries: self
                .canaries
                .iter()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("none"))
                .collect(),
        }
    }
}

/// SMTP probes: how mailvet introduces itself, where it may connect, and
/// how many sessions it holds open.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "SMTP")]
pub struct SmtpArgs {
    /// TCP port of the mail servers to probe.
    #[arg(long = "smtp-port", env = "MAILVET_SMTP_PORT", default_value_t = 25)]
    pub port: u16,

    /// Timeout of each SMTP phase (connect, greeting, each command).
    #[arg(id = "smtp_timeout", long = "smtp-timeout", value_name = "TIMEOUT", env = "MAILVET_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Name to introduce ourselves with in EHLO (default: the host name).
    #[arg(long, env = "MAILVET_HELO_NAME")]
    pub helo_name: Option<String>,

    /// Envelope sender of probes (default: postmaster@<helo name>).
    #[arg(long, env = "MAILVET_MAIL_FROM")]
    pub mail_from: Option<String>,

    /// Most SMTP sessions open at once.
    #[arg(
        long = "max-smtp-sessions",
        env = "MAILVET_MAX_SMTP_SESSIONS",
        default_value_t = 64
    )]
    pub max_sessions: usize,

    /// Most SMTP sessions open at once to one mail host (politeness).
    #[arg(
        long = "max-smtp-sessions-per-host",
        env = "MAILVET_MAX_SMTP_SESSIONS_PER_HOST",
        default_value_t = 2
    )]
    pub max_sessions_per_host: usize,

    /// Most RCPT TO commands in one SMTP session (the catch-all check
    /// included) before the rest go to a new one; many providers take no
    /// more than 100.
    #[arg(
        long = "max-recipients-per-session",
        env = "MAILVET_MAX_RECIPIENTS_PER_SESSION",
        default_value_t = 100
    )]
    pub max_recipients_per_session: usize,

    /// Allow probes to connect to loopback, private, link-local and metadata
    /// addresses. Off by default: an MX pointing there is an attack.
    #[arg(long, env = "MAILVET_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,

    /// SOCKS5 proxies that SMTP probes go through, comma separated:
    /// socks5://[user:pass@]host:port. mailvet resolves and checks the mail
    /// host's address itself and asks the proxy for that address; each
    /// mail host sticks to one proxy. Without it probes connect directly.
    #[arg(
        long = "proxy",
        value_name = "URLS",
        env = "MAILVET_PROXY",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub proxies: Vec<SecretString>,
}

impl SmtpArgs {
    pub(super) fn drop_empty_values(&mut self) {
        self.helo_name = self.helo_name.take().filter(|name| !blank(name));
        self.mail_from = self.mail_from.take().filter(|from| !blank(from));
    }

    /// The name given in `EHLO`: `--helo-name`, else the host's name.
    pub fn helo_name(&self) -> String {
        self.helo_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "localhost".to_owned())
        })
    }

    /// The envelope sender of probes: `--mail-from`, else
    /// `postmaster@<helo name>`.
    pub fn mail_from(&self) -> String {
        self.mail_from
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", self.helo_name()))
    }

    /// The `--proxy` URLs, parsed. An error names the proxy by its place
    /// in the list, never by its text, which may hold a password.
    pub fn proxies(&self) -> Result<Vec<Socks5Proxy>, String> {
        self.proxies
            .iter()
            .filter(|raw| !blank(raw.expose_secret()))
            .enumerate()
            .map(|(index, raw)| {
                Socks5Proxy::parse(raw.expose_secret())
                    .map_err(|err| format!("--proxy / MAILVET_PROXY, URL {}: {err}", index + 1))
            })
            .collect()
    }

    /// The prober's settings.
    pub fn prober(&self) -> Result<ProbeSettings, String> {
        Ok(ProbeSettings {
            port: self.port,
            helo_name: self.helo_name(),
            mail_from: self.mail_from(),
            timeout: self.timeout,
            allow_private_targets: self.allow_private_targets,
            max_sessions: self.max_sessions,
            max_sessions_per_host: self.max_sessions_per_host,
            max_rejections_per_session: 8,
            max_recipients_per_session: self.max_recipients_per_session.max(1),
            proxies: self.proxies()?,
        })
    }
}

/// The verification engine's own rules: the probe budget, the disposable
/// domains and how long verdicts are reused.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Verification")]
pub struct VerifyArgs {
    /// New SMTP probes allowed per domain per minute. Beyond it, answers
    /// come from the cache or the domain's catch-all result, or are
    /// `unknown / rate_limited`: never a flood of sessions at one domain.
    /// Callers with a public key share half of it, each client at most a
    /// tenth; secret keys and jobs may use all of it.
    #[arg(long, env = "MAILVET_PROBE_BUDGET_PER_DOMAIN", default_value_t = 60)]
    pub probe_budget_per_domain: u32,

    /// Extra disposable domains, one per line (# comments allowed).
    #[arg(long, env = "MAILVET_DISPOSABLE_DOMAINS_FILE")]
    pub disposable_domains_file: Option<PathBuf>,

    /// How long a `deliverable` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_DELIVERABLE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub cache_ttl_deliverable: Duration,

    /// How long an `undeliverable` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_UNDELIVERABLE", default_value = "30d", value_parser = humantime::parse_duration)]
    pub cache_ttl_undeliverable: Duration,

    /// How long a `risky` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_RISKY", default_value = "1d", value_parser = humantime::parse_duration)]
    pub cache_ttl_risky: Duration,

    /// How long an `unknown` verdict is reused (keep it short: the cause
    /// is usually temporary).
    #[arg(long, env = "MAILVET_CACHE_TTL_UNKNOWN", default_value = "10m", value_parser = humantime::parse_duration)]
    pub cache_ttl_unknown: Duration,
}

impl VerifyArgs {
    /// The verification engine's settings, from this group and the DNS and
    /// SMTP groups, with the operator's disposable domains read in.
    pub fn verifier(&self, dns: &DnsArgs, smtp: &SmtpArgs) -> std::io::Result<VerifierSettings> {
        let lists = match &self.disposable_domains_file {
            Some(path) => Lists::from_file(path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("reading {}: {err}", path.display()))
            })?,
            None => Lists::default(),
        };
        Ok(VerifierSettings {
            dns: dns.resolver(),
            probe: smtp
                .prober()
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?,
            ttl: CacheTtl {
                deliverable: self.cache_ttl_deliverable,
                undeliverable: self.cache_ttl_undeliverable,
                risky: self.cache_ttl_risky,
                unknown: self.cache_ttl_unknown,
            },
            lists,
            probe_budget_per_domain: self.probe_budget_per_domain,
        })
    }
}
