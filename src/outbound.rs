//! Outbound HTTP: the job-completion webhook, Amazon SNS's subscription
//! confirmation and `mailvet doctor`'s public-address URL. Every request resolves its host through mailvet's own
//! resolver (`--dns-servers`), never the system's, and dials only the
//! addresses the SSRF guard allows — the addresses actually dialled, so a
//! name that resolves to a public address when the URL is checked and to
//! 127.0.0.1 when it is fetched (DNS rebinding) gains nothing. Private
//! targets are allowed only with `--allow-private-webhooks` (doctor's
//! URL: `--allow-private-targets`). Proxies from
//! the environment are ignored: they would dial on our behalf unchecked.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::error_chain;
use crate::verify::dns::{DnsSettings, MailResolver};
use crate::verify::guard::forbidden_target;

/// How long one outbound request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an outbound request was not sent or failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// A guarded HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
    /// The flag that allows private targets, named in refusals.
    private_flag: &'static str,
}

impl Outbound {
    /// A client that resolves through the servers of `dns`; private
    /// targets are allowed by `--allow-private-webhooks`.
    pub fn new(dns: &DnsSettings, allow_private: bool) -> Result<Self, OutboundError> {
        Self::allowing_private_by(dns, allow_private, "--allow-private-webhooks")
    }

    /// A client as [`Outbound::new`] makes, for a command whose flag
    /// `private_flag` allows private targets (named when one is refused).
    pub fn allowing_private_by(
        dns: &DnsSettings,
        allow_private: bool,
        private_flag: &'static str,
    ) -> Result<Self, OutboundError> {
        crate::tls::install_provider();
        let resolver = GuardedResolver {
            resolver: MailResolver::new(dns)
                .map_err(|err| OutboundError::Failed(err.to_string()))?,
            allow_private,
            private_flag,
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("mailvet/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|err| OutboundError::Failed(format!("building the HTTP client: {err}")))?;
        Ok(Outbound {
            client,
            allow_private,
            private_flag,
        })
    }

    /// Starts a request to `url`, refusing at once a URL whose host is an
    /// address literal the guard forbids (those never reach the resolver).
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let parsed = url::Url::parse(url)
            .map_err(|err| OutboundError::Refused(format!("not a URL: {err}")))?;
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::Refused("the URL has no host".into())),
        };
        if let Some(ip) = literal
            && !self.allow_private
            && let Some(why) = forbidden_target(ip)
        {
            return Err(OutboundError::Refused(refusal(ip, why, self.private_flag)));
        }
        Ok(self.client.request(method, parsed))
    }

    /// Sends a request built with [`Outbound::request`]. Errors name the
    /// host, never the URL: a URL may carry credentials or tokens.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OutboundError> {
        request.send().await.map_err(|err| {
            let host = err
                .url()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default();
            let err = err.without_url();
            OutboundError::Failed(format!("request to {host} failed: {}", error_chain(&err)))
        })
    }
}

fn refusal(ip: IpAddr, why: &str, flag: &str) -> String {
    format!("{ip} is a {why} address; pass {flag} to allow private targets")
}

/// Resolves through mailvet's resolver and keeps the addresses the guard
/// allows.
#[derive(Debug)]
struct GuardedResolver {
    resolver: MailResolver,
    allow_private: bool,
    private_flag: &'static str,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let resolver = self.resolver.clone();
        let allow_private = self.allow_private;
        let flag = self.private_flag;
        Box::pin(async move {
            let found = resolver.host_addresses(&host).await.map_err(|err| {
                Box::new(OutboundError::Failed(err.to_string()))
                    as Box<dyn std::error::Error + Send + Sync>
            })?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| match forbidden_target(*ip) {
                    Some(why) if !allow_private => {
                        refused.get_or_insert_with(|| refusal(*ip, why, flag));
                        false
                    }
                    _ => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| format!("{host} has no address"));
                return Err(Box::new(OutboundError::Refused(why))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
