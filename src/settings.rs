//! The command line and the typed settings it yields. Every flag has an
//! environment variable (the README's configuration table); secrets never reach `Debug`, logs or
//! `--help`.
//!
//! Flags come in groups ([`clap::Args`] structs, one help heading each),
//! and each subcommand takes the groups it uses: `serve` (the default) all
//! of them, `check` the database, the verification engine's and logging,
//! `migrate` the database's and logging. A component is built from the
//! groups it needs, never from the whole command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::http::{RateLimits, WebhookSigning};
use crate::jobs::JobSettings;
use crate::secret::{ExposeSecret, SecretString, parse_secret};
use crate::store::StoreSettings;
use crate::suppress::SoftBouncePolicy;
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
                  environment variable shown with it.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand mailvet serves, and takes `serve`'s flags.
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once, at start-up, and moved at most twice"
)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve(Settings),
    /// Apply pending database migrations and exit.
    Migrate(MigrateSettings),
    /// Verify addresses with the service's engine and settings, and print
    /// the verdicts.
    Check(CheckArgs),
}

/// `mailvet check`: what to verify, how to print it, and the settings.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The addresses to verify.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub emails: Vec<String>,
    /// Verify the addresses of a CSV file: the column named `email` (or
    /// `E-mail`, `Email Address`…), or else the first column, whose first
    /// row is a header unless it holds an `@`. `-` reads standard input.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// With --file: where to write the results, as CSV with every
    /// VerifyResult field (JSON lines with --json); `-` or no value
    /// writes standard output.
    #[arg(long, value_name = "PATH", requires = "file")]
    pub output: Option<PathBuf>,
    /// Print JSON (one VerifyResult per line) instead of a table or CSV.
    #[arg(long)]
    pub json: bool,
    /// Skip cached verdicts.
    #[arg(long)]
    pub fresh: bool,

    #[command(flatten)]
    pub settings: CheckSettings,
}

/// Everything the service (`mailvet serve`) is configured with.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub bounces: BounceArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What `mailvet check` is configured with: the database, the verification
/// engine's groups and logging.
#[derive(Debug, Clone, Args)]
pub struct CheckSettings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub smtp: SmtpArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// What `mailvet migrate` is configured with.
#[derive(Debug, Clone, Args)]
pub struct MigrateSettings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The HTTP server: where it listens, its limits, CORS, and whom it
/// believes about a client's address.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Address and port to serve HTTP on.
    #[arg(long, env = "MAILVET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Longest time an HTTP request may take before it is answered 504.
    #[arg(long, env = "MAILVET_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAILVET_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// On SIGTERM/SIGINT, how long to let in-flight requests finish.
    #[arg(long, env = "MAILVET_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Browser origins allowed to call POST /verify, comma separated.
    #[arg(long, env = "MAILVET_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Proxies whose X-Forwarded-For header names the client: IP addresses
    /// or CIDR ranges, comma separated (`10.0.0.0/8,192.168.1.7`). Without
    /// them the header is ignored.
    #[arg(
        long,
        env = "MAILVET_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = crate::http::parse_ip_range
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Requests a minute allowed from one client IP with a public key.
    #[arg(long, env = "MAILVET_RATE_LIMIT_PUBLIC", default_value_t = 60)]
    pub rate_limit_public: u32,

    /// Requests a second allowed with one secret key.
    #[arg(long, env = "MAILVET_RATE_LIMIT_SECRET", default_value_t = 200)]
    pub rate_limit_secret: u32,
}

impl HttpArgs {
    fn drop_empty_values(&mut self) {
        self.cors_origins.retain(|origin| !blank(origin));
    }

    /// The request rates allowed per caller.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            public_per_minute: self.rate_limit_public,
            secret_per_second: self.rate_limit_secret,
        }
    }
}

/// API keys, and the keys ESP webhooks are signed with.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Keys")]
pub struct KeyArgs {
    /// API keys with every permission, comma separated.
    #[arg(
        long,
        env = "MAILVET_SECRET_KEYS",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub secret_keys: Vec<SecretString>,

    /// A file of secret keys (one per line or comma separated), for Docker
    /// secrets; added to --secret-keys.
    #[arg(long, env = "MAILVET_SECRET_KEYS_FILE")]
    pub secret_keys_file: Option<PathBuf>,

    /// API keys that may only call POST /verify (safe in a browser).
    #[arg(
        long,
        env = "MAILVET_PUBLIC_KEYS",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub public_keys: Vec<SecretString>,

    /// A file of public keys, added to --public-keys.
    #[arg(long, env = "MAILVET_PUBLIC_KEYS_FILE")]
    pub public_keys_file: Option<PathBuf>,

    /// Mailgun's webhook signing key: when set, `POST /bounces/mailgun`
    /// accepts only events signed with it (401 otherwise).
    #[arg(
        long,
        env = "MAILVET_MAILGUN_SIGNING_KEY",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub mailgun_signing_key: Option<SecretString>,

    /// SendGrid's signed event webhook verification key (base64): when
    /// set, `POST /bounces/sendgrid` accepts only signed events (401
    /// otherwise).
    #[arg(long, env = "MAILVET_SENDGRID_VERIFICATION_KEY")]
    pub sendgrid_verification_key: Option<String>,
}

impl KeyArgs {
    fn drop_empty_values(&mut self) {
        self.secret_keys.retain(|key| !blank(key.expose_secret()));
        self.public_keys.retain(|key| !blank(key.expose_secret()));
    }

    /// The API keys, secret and public, from the flags and the key files.
    pub fn api_keys(&self) -> std::io::Result<(Vec<SecretString>, Vec<SecretString>)> {
        let read =
            |path: &Option<PathBuf>, keys: &[SecretString]| -> std::io::Result<Vec<SecretString>> {
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

    /// The keys ESP webhooks must be signed with, when configured.
    pub fn webhook_signing(&self) -> WebhookSigning {
        WebhookSigning {
            mailgun: self.mailgun_signing_key.clone(),
            sendgrid: self.sendgrid_verification_key.clone(),
        }
    }
}

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
}

impl SmtpArgs {
    fn drop_empty_values(&mut self) {
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

    /// The prober's settings.
    pub fn prober(&self) -> ProbeSettings {
        ProbeSettings {
            port: self.port,
            helo_name: self.helo_name(),
            mail_from: self.mail_from(),
            timeout: self.timeout,
            allow_private_targets: self.allow_private_targets,
            max_sessions: self.max_sessions,
            max_sessions_per_host: self.max_sessions_per_host,
            max_rejections_per_session: 8,
            max_recipients_per_session: self.max_recipients_per_session.max(1),
        }
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
            probe: smtp.prober(),
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

/// When reported bounces suppress an address.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Bounces")]
pub struct BounceArgs {
    /// Soft bounces within the window that suppress an address.
    #[arg(long, env = "MAILVET_SOFT_BOUNCE_LIMIT", default_value_t = 3)]
    pub soft_bounce_limit: u32,

    /// The window in which soft bounces are counted.
    #[arg(long, env = "MAILVET_SOFT_BOUNCE_WINDOW", default_value = "7d", value_parser = humantime::parse_duration)]
    pub soft_bounce_window: Duration,
}

impl BounceArgs {
    /// When repeated soft bounces suppress an address.
    pub fn soft_bounce_policy(&self) -> SoftBouncePolicy {
        SoftBouncePolicy {
            limit: self.soft_bounce_limit,
            window: chrono::Duration::from_std(self.soft_bounce_window)
                .unwrap_or_else(|_| chrono::Duration::days(7)),
        }
    }
}

/// Bulk jobs: uploads, and how this process works on them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Bulk jobs")]
pub struct JobArgs {
    /// Bulk jobs: domain groups this process verifies at once, each one
    /// SMTP session. Default: three quarters of --max-smtp-sessions, so
    /// that POST /verify always finds sessions free. 0 takes no job work
    /// (a replica that only serves the API).
    #[arg(long = "job-workers", env = "MAILVET_JOB_WORKERS")]
    pub workers: Option<usize>,

    /// Bulk jobs: addresses claimed per chunk (grouped by domain, so that a
    /// domain's addresses share one SMTP session).
    #[arg(
        long = "job-chunk-size",
        env = "MAILVET_JOB_CHUNK_SIZE",
        default_value_t = 500
    )]
    pub chunk_size: usize,

    /// Bulk jobs: how long a claim lasts unless renewed. A live replica
    /// renews its claims every third of this; a dead one's are claimed
    /// again when they run out.
    #[arg(long = "job-lease", env = "MAILVET_JOB_LEASE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub lease: Duration,

    /// Bulk jobs: the wait before a greylisted address is tried again.
    #[arg(long = "job-greylist-delay", env = "MAILVET_JOB_GREYLIST_DELAY", default_value = "5m", value_parser = humantime::parse_duration)]
    pub greylist_delay: Duration,

    /// Bulk jobs: tries of a greylisted address before the job reports it
    /// `unknown / greylisted`.
    #[arg(
        long = "job-greylist-attempts",
        env = "MAILVET_JOB_GREYLIST_ATTEMPTS",
        default_value_t = 3
    )]
    pub greylist_attempts: u32,

    /// Bulk jobs: the most addresses one job may hold.
    #[arg(
        long = "max-job-addresses",
        env = "MAILVET_MAX_JOB_ADDRESSES",
        default_value_t = 1_000_000
    )]
    pub max_addresses: u64,

    /// Bulk jobs: the largest upload accepted by POST /jobs, in bytes.
    #[arg(long = "max-job-upload-bytes", env = "MAILVET_MAX_JOB_UPLOAD_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_upload_bytes: usize,
}

impl JobArgs {
    /// The bulk jobs' settings; the default number of workers follows the
    /// SMTP group's session limit.
    pub fn job_settings(&self, smtp: &SmtpArgs) -> JobSettings {
        JobSettings {
            workers: self.workers.unwrap_or((smtp.max_sessions * 3 / 4).max(1)),
            chunk_size: self.chunk_size.max(1),
            lease: self.lease,
            greylist_delay: self.greylist_delay,
            greylist_attempts: self.greylist_attempts.max(1),
            max_addresses: self.max_addresses,
            max_upload_bytes: self.max_upload_bytes,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(long = "log-format", env = "MAILVET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// An empty value — `MAILVET_HELO_NAME=` in a compose file — counts as not
/// set.
fn blank(value: &str) -> bool {
    value.trim().is_empty()
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
        match &mut cli.command {
            Some(Command::Serve(settings)) => settings.drop_empty_values(),
            Some(Command::Check(check)) => check.settings.smtp.drop_empty_values(),
            Some(Command::Migrate(_)) | None => {}
        }
        cli
    }

    /// What to run: the subcommand given, or else `serve` with the flags
    /// given without one.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.settings))
    }
}

impl Command {
    /// The log format the command was given.
    pub fn log_format(&self) -> LogFormat {
        match self {
            Command::Serve(settings) => settings.log.format,
            Command::Migrate(settings) => settings.log.format,
            Command::Check(check) => check.settings.log.format,
        }
    }
}

impl Settings {
    /// Settings as if no flag was given (the environment still applies).
    pub fn defaults() -> Self {
        Cli::parse_args_from(["mailvet"]).settings
    }

    fn drop_empty_values(&mut self) {
        self.http.drop_empty_values();
        self.keys.drop_empty_values();
        self.smtp.drop_empty_values();
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
        assert_eq!(cli.settings.keys.secret_keys.len(), 2);
        assert_eq!(
            cli.settings.keys.secret_keys[1].expose_secret(),
            "sk_live_def"
        );
    }

    #[test]
    fn each_subcommand_takes_its_own_flags() {
        let cli = Cli::parse_from(["mailvet", "migrate", "--database-url", "sqlite://x.db"]);
        let Some(Command::Migrate(settings)) = cli.command else {
            panic!("migrate: {:?}", cli.command);
        };
        assert_eq!(settings.database.url.expose_secret(), "sqlite://x.db");

        let cli = Cli::parse_from([
            "mailvet",
            "check",
            "a@b.example",
            "--dns-servers",
            "127.0.0.1:53",
        ]);
        let Some(Command::Check(check)) = cli.command else {
            panic!("check: {:?}", cli.command);
        };
        assert_eq!(check.emails, ["a@b.example"]);
        assert_eq!(
            check.settings.dns.servers,
            ["127.0.0.1:53".parse::<SocketAddr>().expect("an address")]
        );

        let cli = Cli::parse_from(["mailvet", "serve", "--listen", "127.0.0.1:0"]);
        let Command::Serve(settings) = cli.into_command() else {
            panic!("serve");
        };
        assert_eq!(settings.http.listen.port(), 0);
    }

    #[test]
    fn without_a_subcommand_mailvet_serves_with_the_flags_given() {
        let cli = Cli::parse_from([
            "mailvet",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite://x.db",
        ]);
        let Command::Serve(settings) = cli.into_command() else {
            panic!("serve is the default");
        };
        assert_eq!(settings.http.listen.port(), 0);
        assert_eq!(settings.database.url.expose_secret(), "sqlite://x.db");
        // Flags before a subcommand would be ignored by it: refused instead.
        let ignored = Cli::try_parse_from(["mailvet", "--listen", "127.0.0.1:0", "serve"]);
        assert!(ignored.is_err(), "flags go after the subcommand");
    }

    #[test]
    fn check_takes_only_the_flags_it_uses() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("check")
            .expect("a check subcommand")
            .render_help()
            .to_string();
        for used in [
            "--dns-servers",
            "--database-url",
            "--smtp-port",
            "--log-format",
        ] {
            assert!(help.contains(used), "{used} missing from:\n{help}");
        }
        for unused in [
            "--listen",
            "--secret-keys",
            "--cors-origins",
            "--rate-limit-public",
            "--request-timeout",
            "--job-workers",
            "--soft-bounce-limit",
        ] {
            assert!(!help.contains(unused), "{unused} listed in:\n{help}");
        }
        let refused = Cli::try_parse_from(["mailvet", "check", "a@b.example", "--listen", "x"]);
        assert!(refused.is_err(), "check has no --listen");
    }

    #[test]
    fn help_shows_the_groups_as_headings() {
        let help = Cli::command().render_help().to_string();
        for heading in [
            "HTTP:",
            "Keys:",
            "Database:",
            "DNS:",
            "SMTP:",
            "Verification:",
            "Bounces:",
            "Bulk jobs:",
            "Logging:",
        ] {
            assert!(help.contains(heading), "{heading} missing from:\n{help}");
        }
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
        assert_eq!(settings.smtp.helo_name, None);
        assert_eq!(settings.smtp.mail_from, None);
        assert!(settings.keys.public_keys.is_empty());
        assert_eq!(settings.keys.secret_keys.len(), 1);
        assert_eq!(settings.keys.secret_keys[0].expose_secret(), "sk_one");
        assert!(settings.http.cors_origins.is_empty());

        let cli = Cli::parse_args_from(["mailvet", "check", "a@b.example", "--helo-name", ""]);
        let Command::Check(check) = cli.into_command() else {
            panic!("check");
        };
        assert_eq!(check.settings.smtp.helo_name, None);
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
        assert_eq!(cli.settings.smtp.timeout, Duration::from_millis(2500));
        assert_eq!(cli.settings.dns.servers.len(), 2);
        assert!(cli.settings.smtp.allow_private_targets);
    }

    #[test]
    fn trusted_proxies_take_ranges_and_single_addresses() {
        let cli = Cli::parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/8,192.168.1.7"]);
        let proxies: Vec<String> = cli
            .settings
            .http
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32"]);
        assert!(Cli::try_parse_from(["mailvet", "--trusted-proxies", "10.0.0.0/33"]).is_err());
    }
}
