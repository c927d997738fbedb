//! Signup confirmation (double opt-in): a message with a signed, expiring,
//! single-use link, sent through the operator's relay to an address that
//! verification did not find undeliverable; the link marks the address
//! confirmed. See docs/ARCHITECTURE.md, "Confirming signups".

pub mod cursor;
pub mod link;
pub mod relay;
pub mod template;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use uuid::Uuid;

pub use cursor::FeedCursor;
pub use link::{LinkError, LinkSigner};
pub use relay::{Relay, RelayError, RelayUrlError};
pub use template::Templates;

use crate::store::ConfirmationLimits;

/// How many requests a public-key client, and a secret key, may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Requests an hour from one client address with a public key.
    pub public_per_hour: u32,
    /// Requests an hour with one secret key.
    pub secret_per_hour: u32,
}

/// What sending confirmations needs, when all of it is configured.
#[derive(Debug)]
pub struct Sender {
    pub relay: Relay,
    pub links: LinkSigner,
    /// `--public-url`, ending in `/`.
    pub public_url: url::Url,
    pub from: Mailbox,
    pub templates: Templates,
    /// How long a link works.
    pub ttl: chrono::Duration,
    /// Requests an address may receive in a day.
    pub per_address: u32,
    pub clients: ClientLimits,
}

/// The confirmation workflow's configuration: ready, or what is missing.
#[derive(Debug)]
pub struct Confirmations {
    sender: Result<Sender, String>,
    /// The origins `redirect_url` may lead to (`scheme://host[:port]`).
    redirect_origins: Vec<String>,
    /// The origins a public key may request confirmations from.
    public_origins: Vec<String>,
}

/// The origin of a URL (`https://shop.example`), for http(s) URLs only.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    matches!(parsed.scheme(), "http" | "https")
        .then(|| parsed.origin().ascii_serialization())
        .filter(|origin| origin != "null")
}

impl Confirmations {
    /// `sender` is the error saying what to configure when it is missing;
    /// the origins are as configured (`https://shop.example`), the
    /// redirect origins including the CORS ones.
    pub fn new(
        sender: Result<Sender, String>,
        redirect_origins: &[String],
        public_origins: &[String],
    ) -> Self {
        let normalize = |origins: &[String]| {
            origins
                .iter()
                .filter_map(|origin| origin_of(origin))
                .collect::<Vec<_>>()
        };
        Confirmations {
            sender,
            redirect_origins: normalize(redirect_origins),
            public_origins: normalize(public_origins),
        }
    }

    /// The sender, or what is missing to have one.
    pub fn sender(&self) -> Result<&Sender, &str> {
        self.sender.as_ref().map_err(String::as_str)
    }

    /// Whether the link may lead to `url` after confirming.
    pub fn redirect_allowed(&self, url: &str) -> bool {
        origin_of(url).is_some_and(|origin| self.redirect_origins.contains(&origin))
    }

    /// Whether a public key may request confirmations from a browser page
    /// of this origin.
    pub fn public_origin_allowed(&self, origin: &str) -> bool {
        origin_of(origin).is_some_and(|origin| self.public_origins.contains(&origin))
    }
}

impl Sender {
    /// The limits of one request by `public` (a public key) or not.
    pub fn limits(&self, public: bool) -> ConfirmationLimits {
        ConfirmationLimits {
            per_address: self.per_address,
            address_window: chrono::Duration::days(1),
            per_client: if public {
                self.clients.public_per_hour
            } else {
                self.clients.secret_per_hour
            },
            client_window: chrono::Duration::hours(1),
        }
    }

    /// The link of request `id`, working until `expires_at`.
    pub fn link(&self, id: Uuid, expires_at: DateTime<Utc>) -> String {
        let token = self.links.sign(id, expires_at.timestamp());
        format!("{}confirm/{token}", self.public_url)
    }

    /// The confirmation message to `email`.
    pub fn message(
        &self,
        email: &str,
        link: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Message, String> {
        let to: Mailbox = email
            .parse()
            .map_err(|err| format!("the address cannot be written in a message header: {err}"))?;
        let expires_in = spoken_duration(self.ttl);
        let rendered = self.templates.render(&template::Values {
            email,
            link,
            expires_at: &crate::rfc3339::format(&expires_at),
            expires_in: &expires_in,
        });
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(|err| format!("the message cannot be built: {err}"))
    }
}

/// A link's lifetime as the message says it: `48 hours`, `1 hour`,
/// `30 minutes`.
fn spoken_duration(ttl: chrono::Duration) -> String {
    let (n, unit) = if ttl.num_hours() >= 1 {
        (ttl.num_hours(), "hour")
    } else if ttl.num_minutes() >= 1 {
        (ttl.num_minutes(), "minute")
    } else {
        (ttl.num_seconds().max(1), "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lifetimes_are_said_in_words() {
        assert_eq!(spoken_duration(chrono::Duration::hours(48)), "48 hours");
        assert_eq!(spoken_duration(chrono::Duration::hours(1)), "1 hour");
        assert_eq!(spoken_duration(chrono::Duration::minutes(30)), "30 minutes");
        assert_eq!(spoken_duration(chrono::Duration::seconds(2)), "2 seconds");
    }

    #[test]
    fn redirects_go_only_to_configured_origins() {
        let confirmations = Confirmations::new(
            Err("not configured".into()),
            &[
                "https://shop.example".into(),
                "http://localhost:3000/".into(),
            ],
            &[],
        );
        assert!(confirmations.redirect_allowed("https://shop.example/welcome?x=1"));
        assert!(confirmations.redirect_allowed("https://SHOP.example:443/"));
        assert!(confirmations.redirect_allowed("http://localhost:3000/done"));
        for refused in [
            "https://shop.example.evil.test/",
            "http://shop.example/",
            "https://evil.test/?https://shop.example",
            "javascript:alert(1)",
            "//shop.example/",
            "http://localhost:3001/",
        ] {
            assert!(!confirmations.redirect_allowed(refused), "{refused}");
        }
    }
}
