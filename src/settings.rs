//! The command line and the typed settings it yields. Every flag has an
//! environment variable (DESIGN §4); secrets never reach `Debug`, logs or
//! `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::jobs::JobSettings;
use crate::secret::{ExposeSecret, SecretString, parse_secret};
use crate::store::StoreSettings;
use crate::telemetry::LogFormat;
use crate::verify::dns::DnsSettings;
use crate::verify::lists::Lists;
use crate::verify::probe::ProbeSettings;
use crate::verify::{CacheTtl, VerifierSettings};

#[derive(Debug, Parser)]
#[command(
    name = "mailvet",
    version,
    about = "Email verification and bounce suppression service",
    long_about = "mailvet checks email addresses (syntax, DNS, an SMTP probe of the \
                  recipient's mail server) and keeps a suppression list of addresses \
                  that hard-bounced.\n\nEvery flag can also be set through the \
                  environment variable shown with it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Verify addresses with the service's engine and settings, and print
    /// the verdicts.
    Check {
        /// The addresses to verify.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        emails: Vec<String>,
        /// Verify the addresses of a CSV file: the column named `email` (or
        /// `E-mail`, `Email Address`…), or else the first column, whose first
        /// row is a header unless it holds an `@`. `-` reads standard input.
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// With --file: where to write the results, as CSV with every
        /// VerifyResult field (JSON lines with --json); `-` or no value
        /// writes standard output.
        #[arg(long, value_name = "PATH", requires = "file")]
        output: Option<std::path::PathBuf>,
        /// Print JSON (one VerifyResult per line) instead of a table or CSV.
        #[arg(long)]
        json: bool,
        /// Skip cached verdicts.
        #[arg(long)]
        fresh: bool,
    },
}

/// Everything mailvet can be configured with.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address and port to serve HTTP on.
    #[arg(
        long,
        env = "MAILVET_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Database: postgres://user:password@host/db, or sqlite://FILE for the
    /// embedded store (created if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://mailvet.db",
        value_parser = parse_secret,
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    pub database_url: SecretString,

    /// Most database connections to hold open.
    #[arg(
        long,
        env = "MAILVET_DB_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub db_max_connections: u32,

    /// How long a query waits for a free database connection.
    #[arg(long, env = "MAILVET_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// DNS servers as ip:port, comma separated (default: the system resolver).
    #[arg(
        long,
        env = "MAILVET_DNS_SERVERS",
        value_delimiter = ',',
        global = true
    )]
    pub dns_servers: Vec<SocketAddr>,

    /// Time allowed for one DNS query.
    #[arg(long, env = "MAILVET_DNS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub dns_timeout: Duration,

    /// TCP port of the mail servers to probe.
    #[arg(long, env = "MAILVET_SMTP_PORT", default_value_t = 25, global = true)]
    pub smtp_port: u16,

    /// Timeout of each SMTP phase (connect, greeting, each command).
    #[arg(long, env = "MAILVET_SMTP_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub smtp_timeout: Duration,

    /// Name to introduce ourselves with in EHLO (default: the host name).
    #[arg(long, env = "MAILVET_HELO_NAME", global = true)]
    pub helo_name: Option<String>,

    /// Envelope sender of probes (default: postmaster@<helo name>).
    #[arg(long, env = "MAILVET_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,

    /// Most SMTP sessions open at once.
    #[arg(
        long,
        env = "MAILVET_MAX_SMTP_SESSIONS",
        default_value_t = 64,
        global = true
    )]
    pub max_smtp_sessions: usize,

    /// Most SMTP sessions open at once to one mail host (politeness).
    #[arg(
        long,
        env = "MAILVET_MAX_SMTP_SESSIONS_PER_HOST",
        default_value_t = 2,
        global = true
    )]
    pub max_smtp_sessions_per_host: usize,

    /// New SMTP probes allowed per domain per minute. Beyond it, answers
    /// come from the cache or the domain's catch-all result, or are
    /// `unknown / rate_limited`: never a flood of sessions at one domain.
    #[arg(
        long,
        env = "MAILVET_PROBE_BUDGET_PER_DOMAIN",
        default_value_t = 60,
        global = true
    )]
    pub probe_budget_per_domain: u32,

    /// Extra disposable domains, one per line (# comments allowed).
    #[arg(long, env = "MAILVET_DISPOSABLE_DOMAINS_FILE", global = true)]
    pub disposable_domains_file: Option<std::path::PathBuf>,

    /// How long a `deliverable` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_DELIVERABLE", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub cache_ttl_deliverable: Duration,

    /// How long an `undeliverable` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_UNDELIVERABLE", default_value = "30d", value_parser = humantime::parse_duration, global = true)]
    pub cache_ttl_undeliverable: Duration,

    /// How long a `risky` verdict is reused.
    #[arg(long, env = "MAILVET_CACHE_TTL_RISKY", default_value = "1d", value_parser = humantime::parse_duration, global = true)]
    pub cache_ttl_risky: Duration,

    /// How long an `unknown` verdict is reused (keep it short: the cause
    /// is usually temporary).
    #[arg(long, env = "MAILVET_CACHE_TTL_UNKNOWN", default_value = "10m", value_parser = humantime::parse_duration, global = true)]
    pub cache_ttl_unknown: Duration,

    /// Soft bounces within the window that suppress an address.
    #[arg(
        long,
        env = "MAILVET_SOFT_BOUNCE_LIMIT",
        default_value_t = 3,
        global = true
    )]
    pub soft_bounce_limit: u32,

    /// The window in which soft bounces are counted.
    #[arg(long, env = "MAILVET_SOFT_BOUNCE_WINDOW", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub soft_bounce_window: Duration,

    /// Bulk jobs: domain groups this process verifies at once, each one
    /// SMTP session. Default: three quarters of --max-smtp-sessions, so
    /// that POST /verify always finds sessions free. 0 takes no job work
    /// (a replica that only serves the API).
    #[arg(long, env = "MAILVET_JOB_WORKERS", global = true)]
    pub job_workers: Option<usize>,

    /// Bulk jobs: addresses claimed per chunk (grouped by domain, so that a
    /// domain's addresses share one SMTP session).
    #[arg(
        long,
        env = "MAILVET_JOB_CHUNK_SIZE",
        default_value_t = 500,
        global = true
    )]
    pub job_chunk_size: usize,

    /// Bulk jobs: how long a claim lasts unless renewed. A live replica
    /// renews its claims every third of this; a dead one's are claimed
    /// again when they run out.
    #[arg(long, env = "MAILVET_JOB_LEASE", default_value = "5m", value_parser = humantime::parse_duration, global = true)]
    pub job_lease: Duration,

    /// Bulk jobs: the wait before a greylisted address is tried again.
    #[arg(long, env = "MAILVET_JOB_GREYLIST_DELAY", default_value = "5m", value_parser = humantime::parse_duration, global = true)]
    pub job_greylist_delay: Duration,

    /// Bulk jobs: tries of a greylisted address before the job reports it
    /// `unknown / greylisted`.
    #[arg(
        long,
        env = "MAILVET_JOB_GREYLIST_ATTEMPTS",
        default_value_t = 3,
        global = true
    )]
    pub job_greylist_attempts: u32,

    /// Bulk jobs: the most addresses one job may hold.
    #[arg(
        long,
        env = "MAILVET_MAX_JOB_ADDRESSES",
        default_value_t = 1_000_000,
        global = true
    )]
    pub max_job_addresses: u64,

    /// Bulk jobs: the largest upload accepted by POST /jobs, in bytes.
    #[arg(long, env = "MAILVET_MAX_JOB_UPLOAD_BYTES", default_value_t = 256 * 1024 * 1024, global = true)]
    pub max_job_upload_bytes: usize,

    /// Allow probes to connect to loopback, private, link-local and metadata
    /// addresses. Off by default: an MX pointing there is an attack.
    #[arg(long, env = "MAILVET_ALLOW_PRIVATE_TARGETS", global = true)]
    pub allow_private_targets: bool,

    /// API keys with every permission, comma separated.
    #[arg(
        long,
        env = "MAILVET_SECRET_KEYS",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true,
        global = true
    )]
    pub secret_keys: Vec<SecretString>,

    /// API keys that may only call POST /verify (safe in a browser).
    #[arg(
        long,
        env = "MAILVET_PUBLIC_KEYS",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true,
        global = true
    )]
    pub public_keys: Vec<SecretString>,

    /// A file of secret keys (one per line or comma separated), for Docker
    /// secrets; added to --secret-keys.
    #[arg(long, env = "MAILVET_SECRET_KEYS_FILE", global = true)]
    pub secret_keys_file: Option<std::path::PathBuf>,

    /// Mailgun's webhook signing key: when set, `POST /bounces/mailgun`
    /// accepts only events signed with it (401 otherwise).
    #[arg(
        long,
        env = "MAILVET_MAILGUN_SIGNING_KEY",
        value_parser = parse_secret,
        hide_env_values = true,
        global = true
    )]
    pub mailgun_signing_key: Option<SecretString>,

    /// SendGrid's signed event webhook verification key (base64): when
    /// set, `POST /bounces/sendgrid` accepts only signed events (401
    /// otherwise).
    #[arg(long, env = "MAILVET_SENDGRID_VERIFICATION_KEY", global = true)]
    pub sendgrid_verification_key: Option<String>,

    /// A file of public keys, added to --public-keys.
    #[arg(long, env = "MAILVET_PUBLIC_KEYS_FILE", global = true)]
    pub public_keys_file: Option<std::path::PathBuf>,

    /// Requests a minute allowed from one client IP with a public key.
    #[arg(
        long,
        env = "MAILVET_RATE_LIMIT_PUBLIC",
        default_value_t = 60,
        global = true
    )]
    pub rate_limit_public: u32,

    /// Requests a second allowed with one secret key.
    #[arg(
        long,
        env = "MAILVET_RATE_LIMIT_SECRET",
        default_value_t = 200,
        global = true
    )]
    pub rate_limit_secret: u32,

    /// Proxies whose X-Forwarded-For header names the client: IP addresses
    /// or CIDR ranges, comma separated (`10.0.0.0/8,192.168.1.7`). Without
    /// them the header is ignored.
    #[arg(
        long,
        env = "MAILVET_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::http::parse_ip_range,
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Browser origins allowed to call POST /verify, comma separated.
    #[arg(
        long,
        env = "MAILVET_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// Longest time an HTTP request may take before it is answered 504.
    #[arg(long, env = "MAILVET_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub request_timeout: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAILVET_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// On SIGTERM/SIGINT, how long to let in-flight requests finish.
    #[arg(long, env = "MAILVET_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(long, env = "MAILVET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Cli {
    /// Parses the process's arguments and environment.
    pub fn parse_args() -> Self {
        Self::parse_args_from(std::env::args_os())
    }

    /// Parses the given arguments (and the environment). An empty value —
    /// `MAILVET_HELO_NAME=` in a compose file — counts as not set.
    pub fn parse_args_from<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cli = Cli::parse_from(args);
        cli.settings.drop_empty_values();
        cli
    }
}

impl Settings {
    /// Settings as if no flag was given (the environment still applies).
    pub fn defaults() -> Self {
        Cli::parse_args_from(["mailvet"]).settings
    }

    fn drop_empty_values(&mut self) {
        let blank = |value: &str| value.trim().is_empty();
        self.helo_name = self.helo_name.take().filter(|name| !blank(name));
        self.mail_from = self.mail_from.take().filter(|from| !blank(from));
        self.secret_keys.retain(|key| !blank(key.expose_secret()));
        self.public_keys.retain(|key| !blank(key.expose_secret()));
        self.cors_origins.retain(|origin| !blank(origin));
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

    /// The API keys, secret and public, from the flags and the key files.
    pub fn api_keys(&self) -> std::io::Result<(Vec<SecretString>, Vec<SecretString>)> {
        let read = |path: &Option<std::path::PathBuf>,
                    keys: &[SecretString]|
         -> std::io::Result<Vec<SecretString>> {
            let mut all = keys.to_vec();
            if let Some(path) = path {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("reading keys from {}: {err}", path.display()),
                    )
                })?;
                all.extend(
                    text.split([',', '\n', '\r'])
                        .map(str::trim)
                        .filter(|key| !key.is_empty() && !key.starts_with('#'))
                        .map(SecretString::from),
                );
            }
            Ok(all)
        };
        Ok((
            read(&self.secret_keys_file, &self.secret_keys)?,
            read(&self.public_keys_file, &self.public_keys)?,
        ))
    }

    /// When repeated soft bounces suppress an address.
    pub fn soft_bounce_policy(&self) -> crate::suppress::SoftBouncePolicy {
        crate::suppress::SoftBouncePolicy {
            limit: self.soft_bounce_limit,
            window: chrono::Duration::from_std(self.soft_bounce_window)
                .unwrap_or_else(|_| chrono::Duration::days(7)),
        }
    }

    /// The verification engine's settings, with the operator's disposable
    /// domains read in.
    pub fn verifier(&self) -> std::io::Result<VerifierSettings> {
        let lists = match &self.disposable_domains_file {
            Some(path) => Lists::from_file(path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("reading {}: {err}", path.display()))
            })?,
            None => Lists::default(),
        };
        Ok(VerifierSettings {
            dns: DnsSettings {
                servers: self.dns_servers.clone(),
                timeout: self.dns_timeout,
            },
            probe: ProbeSettings {
                port: self.smtp_port,
                helo_name: self.helo_name(),
                mail_from: self.mail_from(),
                timeout: self.smtp_timeout,
                allow_private_targets: self.allow_private_targets,
                max_sessions: self.max_smtp_sessions,
                max_sessions_per_host: self.max_smtp_sessions_per_host,
                max_rejections_per_session: 8,
            },
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

    /// The bulk jobs' settings.
    pub fn jobs(&self) -> JobSettings {
        JobSettings {
            workers: self
                .job_workers
                .unwrap_or((self.max_smtp_sessions * 3 / 4).max(1)),
            chunk_size: self.job_chunk_size.max(1),
            lease: self.job_lease,
            greylist_delay: self.job_greylist_delay,
            greylist_attempts: self.job_greylist_attempts.max(1),
            max_addresses: self.max_job_addresses,
            max_upload_bytes: self.max_job_upload_bytes,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn store(&self) -> StoreSettings {
        StoreSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let cli = Cli::parse_from([
            "mailvet",
            "--database-url",
            "postgres://mailvet:hunter2@db/mailvet",
            "--secret-keys",
            "sk_live_abc,sk_live_def",
            "--public-keys",
            "pk_live_xyz",
        ]);
        let shown = format!("{cli:?}");
        for secret in ["hunter2", "sk_live_abc", "sk_live_def", "pk_live_xyz"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert_eq!(cli.settings.secret_keys.len(), 2);
        assert_eq!(cli.settings.secret_keys[1].expose_secret(), "sk_live_def");
    }

    #[test]
    fn subcommands_take_the_global_flags() {
        let cli = Cli::parse_from(["mailvet", "migrate", "--database-url", "sqlite://x.db"]);
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(cli.settings.database_url.expose_secret(), "sqlite://x.db");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let cli = Cli::parse_args_from([
            "mailvet",
            "--helo-name",
            "",
            "--mail-from",
            " ",
            "--public-keys",
            "",
            "--secret-keys",
            "sk_one,,",
            "--cors-origins",
            "",
        ]);
        let settings = cli.settings;
        assert_eq!(settings.helo_name, None);
        assert_eq!(settings.mail_from, None);
        assert!(settings.public_keys.is_empty());
        assert_eq!(settings.secret_keys.len(), 1);
        assert_eq!(settings.secret_keys[0].expose_secret(), "sk_one");
        assert!(settings.cors_origins.is_empty());
    }

    #[test]
    fn durations_and_lists_parse_from_flags() {
        let cli = Cli::parse_from([
            "mailvet",
            "--smtp-timeout",
            "2s 500ms",
            "--dns-servers",
            "127.0.0.1:5353,[::1]:53",
            "--allow-private-targets",
        ]);
        assert_eq!(cli.settings.smtp_timeout, Duration::from_millis(2500));
        assert_eq!(cli.settings.dns_servers.len(), 2);
        assert!(cli.settings.allow_private_targets);
    }

    #[test]
    fn trusted_proxies_take_ranges_and_single_addresses() {
        let cli = Cli::parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/8,192.168.1.7"]);
        let proxies: Vec<String> = cli
            .settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
        assert!(Cli::try_parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/33"]).is_err());
    }
}
