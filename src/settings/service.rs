//! The service's own flags: HTTP, API keys, bounce policy and bulk jobs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use super::{SmtpArgs, blank};
use crate::http::{RateLimits, WebhookSigning};
use crate::jobs::JobSettings;
use crate::secret::{ExposeSecret, SecretString, parse_secret};
use crate::suppress::SoftBouncePolicy;
use crate::token::{MIN_TOKEN_SECRET_CHARS, TokenSigner};

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

    /// The time budget of POST /verify when the request gives no
    /// `timeout_ms`: past it the answer is `unknown / timeout` and the
    /// verification goes on in the background, filling the cache. Bulk
    /// jobs and POST /verify/batch are not bound by it.
    #[arg(long, env = "MAILVET_VERIFY_TIMEOUT", default_value = "8s", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAILVET_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// On SIGTERM/SIGINT, how long to let in-flight requests finish.
    #[arg(long, env = "MAILVET_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// The longest a dashboard session lasts; it also ends after an hour
    /// unused, and at sign-out.
    #[arg(long, env = "MAILVET_UI_SESSION_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    pub ui_session_ttl: Duration,

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

    /// How often the gauges read from the database (suppression list size,
    /// jobs queued and running) are sampled for GET /metrics.
    #[arg(long, env = "MAILVET_METRICS_SAMPLE_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub metrics_sample_interval: Duration,
}

impl HttpArgs {
    pub(super) fn drop_empty_values(&mut self) {
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

    /// API keys that may only call POST /verify and POST /confirmations
    /// (safe in a browser).
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

    /// API keys that may only deliver ESP webhooks (POST /bounces/…), for
    /// the URL an ESP is given: a leaked one cannot read or change the
    /// suppression list. At least 16 characters each.
    #[arg(
        long,
        env = "MAILVET_WEBHOOK_KEYS",
        value_delimiter = ',',
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub webhook_keys: Vec<SecretString>,

    /// Mailgun's webhook signing key: when set, `POST /bounces/mailgun`
    /// accepts only events signed with it (401 otherwise).
    #[arg(
        long,
        env = "MAILVET_MAILGUN_SIGNING_KEY",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub mailgun_signing_key: Option<SecretString>,

    /// Amazon SNS topics whose messages `POST /bounces/ses` accepts, comma
    /// separated; any topic when empty. Every SNS message's signature is
    /// checked either way.
    #[arg(long, env = "MAILVET_SNS_TOPIC_ARNS", value_delimiter = ',')]
    pub sns_topic_arns: Vec<String>,

    /// SNS signing certificates known without fetching them: (URL, PEM).
    /// Not a flag; for embedding and tests.
    #[arg(skip)]
    pub sns_certificates: Vec<(String, String)>,

    /// SendGrid's signed event webhook verification key (base64): when
    /// set, `POST /bounces/sendgrid` accepts only signed events (401
    /// otherwise).
    #[arg(long, env = "MAILVET_SENDGRID_VERIFICATION_KEY")]
    pub sendgrid_verification_key: Option<String>,

    /// The secret that signs the tokens of public-key answers to POST
    /// /verify, which a signup form's backend checks (with this secret, or
    /// with POST /tokens/verify). At least 32 characters; without it no
    /// token is issued.
    #[arg(
        long,
        env = "MAILVET_TOKEN_SECRET",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub token_secret: Option<SecretString>,
}

/// The configured API keys, by what they may do.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    pub secret: Vec<SecretString>,
    pub public: Vec<SecretString>,
    pub webhook: Vec<SecretString>,
}

/// The shortest secret (or webhook) key accepted.
pub const MIN_SECRET_KEY_CHARS: usize = 16;

impl KeyArgs {
    pub(super) fn drop_empty_values(&mut self) {
        self.secret_keys.retain(|key| !blank(key.expose_secret()));
        self.public_keys.retain(|key| !blank(key.expose_secret()));
        self.webhook_keys.retain(|key| !blank(key.expose_secret()));
        if self
            .token_secret
            .as_ref()
            .is_some_and(|secret| blank(secret.expose_secret()))
        {
            self.token_secret = None;
        }
    }

    /// `--token-secret`, when set, checked as [`KeyArgs::token_signer`]
    /// checks it.
    pub fn token_signer_secret(&self) -> std::io::Result<Option<&SecretString>> {
        Ok(self.token_signer()?.and(self.token_secret.as_ref()))
    }

    /// The signer of verdict tokens, when `--token-secret` is set; a
    /// secret shorter than [`MIN_TOKEN_SECRET_CHARS`] is refused.
    pub fn token_signer(&self) -> std::io::Result<Option<TokenSigner>> {
        let Some(secret) = &self.token_secret else {
            return Ok(None);
        };
        let chars = secret.expose_secret().chars().count();
        if chars < MIN_TOKEN_SECRET_CHARS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "--token-secret is {chars} characters long; it needs at least \
                     {MIN_TOKEN_SECRET_CHARS}, so that it cannot be guessed (make one with \
                     `openssl rand -hex 32`)"
                ),
            ));
        }
        Ok(Some(TokenSigner::new(secret)))
    }

    /// The API keys, secret, public and webhook, from the flags and the key
    /// files. Secret and webhook keys shorter than
    /// [`MIN_SECRET_KEY_CHARS`] are refused: they could be guessed.
    pub fn api_keys(&self) -> std::io::Result<ApiKeys> {
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
        let keys = ApiKeys {
            secret: read(&self.secret_keys_file, &self.secret_keys)?,
            public: read(&self.public_keys_file, &self.public_keys)?,
            webhook: self.webhook_keys.clone(),
        };
        for (kind, keys) in [("secret", &keys.secret), ("webhook", &keys.webhook)] {
            let short = keys
                .iter()
                .enumerate()
                .find(|(_, key)| key.expose_secret().chars().count() < MIN_SECRET_KEY_CHARS);
            if let Some((n, key)) = short {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{kind} key {} of {} is {} characters long; a {kind} key needs at least \
                         {MIN_SECRET_KEY_CHARS}, so that it cannot be guessed (make one with \
                         `openssl rand -hex 24`)",
                        n + 1,
                        keys.len(),
                        key.expose_secret().chars().count(),
                    ),
                ));
            }
        }
        Ok(keys)
    }

    /// The keys ESP webhooks must be signed with, when configured.
    pub fn webhook_signing(&self) -> WebhookSigning {
        WebhookSigning {
            mailgun: self.mailgun_signing_key.clone(),
            sendgrid: self.sendgrid_verification_key.clone(),
        }
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

    /// Bulk jobs: how long an address whose domain's probe budget is spent
    /// is tried again before the job answers it `unknown / rate_limited`,
    /// so that a job always finishes.
    #[arg(long = "job-rate-limit-deadline", env = "MAILVET_JOB_RATE_LIMIT_DEADLINE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub rate_limit_deadline: Duration,

    /// Bulk jobs: the longest one domain's addresses in a chunk may take
    /// (its SMTP sessions included); beyond it they are answered
    /// `unknown / timeout`, so that a server that answers a byte a minute
    /// cannot hold a worker for hours.
    #[arg(long = "job-group-deadline", env = "MAILVET_JOB_GROUP_DEADLINE", default_value = "15m", value_parser = humantime::parse_duration)]
    pub group_deadline: Duration,

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

    /// Bulk jobs: let a completion webhook reach loopback, private and
    /// link-local addresses (for a receiver on this host or its LAN). Off,
    /// such a webhook is refused, whatever its host name resolves to.
    #[arg(
        long = "allow-private-webhooks",
        env = "MAILVET_ALLOW_PRIVATE_WEBHOOKS"
    )]
    pub allow_private_webhooks: bool,

    /// Bulk jobs: the secret completion webhooks are signed with
    /// (HMAC-SHA256 of `<timestamp>.<body>`, in `X-Mailvet-Signature`);
    /// unsigned when not set.
    #[arg(
        long = "webhook-secret",
        env = "MAILVET_WEBHOOK_SECRET",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub webhook_secret: Option<SecretString>,
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
            rate_limit_deadline: self.rate_limit_deadline,
            group_deadline: self.group_deadline,
            allow_private_webhooks: self.allow_private_webhooks,
            webhook_secret: self.webhook_secret.clone(),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }
}
