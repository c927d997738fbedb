//! Signup confirmations: the relay, the public URL of the links, the
//! sender, the limits and the templates.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{KeyArgs, SmtpArgs, blank};
use crate::confirm::{ClientLimits, Confirmations, LinkSigner, Relay, Sender, Templates};
use crate::secret::{ExposeSecret, SecretString, parse_secret};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Signup confirmation")]
pub struct ConfirmArgs {
    /// The mail relay confirmation messages are sent through:
    /// smtp://user:pass@host:587 (STARTTLS when offered; required before
    /// a password goes to a relay off loopback) or smtps://user:pass@host:465
    /// (implicit TLS). Without it, POST /confirmations answers 503.
    #[arg(
        long,
        env = "MAILVET_RELAY_URL",
        value_parser = parse_secret,
        hide_env_values = true
    )]
    pub relay_url: Option<SecretString>,

    /// The URL this service is reached at from the outside
    /// (https://mailvet.example.com/): confirmation links start with it.
    #[arg(long, env = "MAILVET_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The From of confirmation messages (`Shop <hello@shop.example>`);
    /// default: --mail-from.
    #[arg(long, env = "MAILVET_CONFIRM_FROM")]
    pub confirm_from: Option<String>,

    /// Origins a confirmation link may redirect to, besides
    /// --cors-origins, comma separated (https://shop.example).
    #[arg(long, env = "MAILVET_CONFIRM_REDIRECT_ORIGINS", value_delimiter = ',')]
    pub confirm_redirect_origins: Vec<String>,

    /// How long a confirmation link works.
    #[arg(long, env = "MAILVET_CONFIRM_TTL", default_value = "48h", value_parser = humantime::parse_duration)]
    pub confirm_ttl: Duration,

    /// Confirmation messages one address may be sent in a day.
    #[arg(long, env = "MAILVET_CONFIRM_LIMIT_PER_ADDRESS", default_value_t = 3)]
    pub confirm_limit_per_address: u32,

    /// Confirmation requests an hour from one client address with a
    /// public key.
    #[arg(long, env = "MAILVET_CONFIRM_LIMIT_PER_CLIENT", default_value_t = 10)]
    pub confirm_limit_per_client: u32,

    /// Confirmation requests an hour with one secret key.
    #[arg(long, env = "MAILVET_CONFIRM_LIMIT_PER_KEY", default_value_t = 1000)]
    pub confirm_limit_per_key: u32,

    /// A directory whose subject.txt, body.txt and body.html replace the
    /// default confirmation message (placeholders: {{email}}, {{link}},
    /// {{expires_at}}, {{expires_in}}).
    #[arg(long, env = "MAILVET_CONFIRM_TEMPLATE_DIR")]
    pub confirm_template_dir: Option<PathBuf>,

    /// A PEM file of the CA that issued the relay's certificate, trusted
    /// besides the Web PKI roots (for a relay with a private CA).
    #[arg(long, env = "MAILVET_RELAY_CA_FILE")]
    pub relay_ca_file: Option<PathBuf>,

    /// The longest each step of a conversation with the relay may take.
    #[arg(long, env = "MAILVET_RELAY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub relay_timeout: Duration,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl ConfirmArgs {
    pub(super) fn drop_empty_values(&mut self) {
        if self
            .relay_url
            .as_ref()
            .is_some_and(|url| blank(url.expose_secret()))
        {
            self.relay_url = None;
        }
        self.public_url = self.public_url.take().filter(|url| !blank(url));
        self.confirm_from = self.confirm_from.take().filter(|from| !blank(from));
        self.confirm_redirect_origins
            .retain(|origin| !blank(origin));
    }

    /// The confirmation workflow. Without a relay, a public URL or a
    /// token secret it is not configured (and says so to callers); a
    /// value that is given but wrong stops start-up.
    pub fn confirmations(
        &self,
        smtp: &SmtpArgs,
        keys: &KeyArgs,
        cors_origins: &[String],
    ) -> std::io::Result<Confirmations> {
        let mut redirect_origins = cors_origins.to_vec();
        redirect_origins.extend(self.confirm_redirect_origins.iter().cloned());
        for origin in &redirect_origins {
            if crate::confirm::origin_of(origin).is_none() {
                return Err(invalid(format!(
                    "`{origin}` is not an origin (https://shop.example)"
                )));
            }
        }
        let sender = self.sender(smtp, keys)?;
        Ok(Confirmations::new(sender, &redirect_origins, cors_origins))
    }

    fn sender(&self, smtp: &SmtpArgs, keys: &KeyArgs) -> std::io::Result<Result<Sender, String>> {
        let missing: Vec<&str> = [
            ("--relay-url", self.relay_url.is_none()),
            ("--public-url", self.public_url.is_none()),
            ("--token-secret", keys.token_secret.is_none()),
        ]
        .into_iter()
        .filter_map(|(flag, missing)| missing.then_some(flag))
        .collect();
        if !missing.is_empty() {
            return Ok(Err(format!(
                "signup confirmations are not configured on this server: {} must be set",
                missing.join(", ")
            )));
        }
        let (Some(relay_url), Some(public_url), Some(secret)) = (
            &self.relay_url,
            &self.public_url,
            keys.token_signer_secret()?,
        ) else {
            return Ok(Err("signup confirmations are not configured".into()));
        };
        let ca = self
            .relay_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("reading --relay-ca-file {}: {err}", path.display()),
                    )
                })
            })
            .transpose()?;
        let relay = Relay::new(
            relay_url,
            &smtp.helo_name(),
            self.relay_timeout,
            ca.as_deref(),
        )
        .map_err(|err| invalid(err.to_string()))?;
        let mut public_url = url::Url::parse(public_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or_else(|| invalid(format!("--public-url `{public_url}` is not an http(s) URL")))?;
        if !public_url.path().ends_with('/') {
            let path = format!("{}/", public_url.path());
            public_url.set_path(&path);
        }
        let from_text = self
            .confirm_from
            .clone()
            .unwrap_or_else(|| smtp.mail_from());
        let from = from_text.parse().map_err(|err| {
            invalid(format!(
                "--confirm-from `{from_text}` is not a mailbox: {err}"
            ))
        })?;
        let templates = match &self.confirm_template_dir {
            Some(dir) => Templates::load(dir)?,
            None => Templates::default(),
        };
        let ttl = chrono::Duration::from_std(self.confirm_ttl)
            .ok()
            .filter(|ttl| *ttl >= chrono::Duration::seconds(1))
            .ok_or_else(|| invalid("--confirm-ttl must be at least a second".into()))?;
        Ok(Ok(Sender {
            relay,
            links: LinkSigner::new(secret),
            public_url,
            from,
            templates,
            ttl,
            per_address: self.confirm_limit_per_address.max(1),
            clients: ClientLimits {
                public_per_hour: self.confirm_limit_per_client.max(1),
                secret_per_hour: self.confirm_limit_per_key.max(1),
            },
        }))
    }
}
