//! Watching the resolver. A captive, broken or lying network can answer
//! NXDOMAIN for every name; were it believed, every address checked would
//! become undeliverable and be suppressed. Canary names that must resolve
//! (large mail providers' domains by default) tell whether the resolver
//! can be trusted: while none of them resolves to a mail host, no
//! DNS-derived verdict is `undeliverable` and verification suppresses
//! nothing.
//!
//! The canaries are checked every [`RECHECK`], in the background and
//! whenever a verdict depends on it and the last check is older, through a
//! resolver of their own without a cache (a cached answer would hide a
//! network that broke since).

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex as AsyncMutex;

use super::dns::{DnsSettings, MailResolver, MailRoute};

/// How long a canary check is good for.
pub const RECHECK: Duration = Duration::from_secs(30);

/// What is known of the resolver, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ResolverHealth {
    /// No canary is configured: negative answers are believed.
    NotWatched,
    /// Not checked yet.
    Unchecked,
    /// A canary resolved to mail hosts at the last check.
    Healthy,
    /// No canary resolved at the last check.
    Failing { detail: String },
}

#[derive(Debug)]
struct Observed {
    health: ResolverHealth,
    at: Option<Instant>,
}

/// Checks canary names against the resolver.
#[derive(Debug)]
pub struct ResolverWatch {
    resolver: Option<MailResolver>,
    canaries: Vec<String>,
    observed: std::sync::Mutex<Observed>,
    /// One check at a time; others wait for its answer.
    checking: AsyncMutex<()>,
}

impl ResolverWatch {
    pub fn new(settings: &DnsSettings) -> Result<Self, super::dns::DnsError> {
        let canaries: Vec<String> = settings
            .canaries
            .iter()
            .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        let resolver = if canaries.is_empty() {
            None
        } else {
            Some(MailResolver::uncached(settings)?)
        };
        let health = if canaries.is_empty() {
            ResolverHealth::NotWatched
        } else {
            ResolverHealth::Unchecked
        };
        Ok(ResolverWatch {
            resolver,
            canaries,
            observed: std::sync::Mutex::new(Observed { health, at: None }),
            checking: AsyncMutex::new(()),
        })
    }

    /// Whether any canary is configured.
    pub fn is_watching(&self) -> bool {
        self.resolver.is_some()
    }

    /// What the last check found.
    pub fn health(&self) -> ResolverHealth {
        self.observed
            .lock()
            .expect("resolver health")
            .health
            .clone()
    }

    /// The last check's answer, if it is recent enough.
    fn recent(&self) -> Option<bool> {
        let observed = self.observed.lock().expect("resolver health");
        match observed.health {
            ResolverHealth::NotWatched => Some(true),
            _ if observed.at.is_none_or(|at| at.elapsed() >= RECHECK) => None,
            ResolverHealth::Failing { .. } => Some(false),
            ResolverHealth::Healthy | ResolverHealth::Unchecked => Some(true),
        }
    }

    /// Whether a negative answer of the resolver can be believed now:
    /// checks the canaries unless a check is recent.
    pub async fn trusted(&self) -> bool {
        if let Some(trusted) = self.recent() {
            return trusted;
        }
        let _turn = self.checking.lock().await;
        if let Some(trusted) = self.recent() {
            return trusted;
        }
        self.check().await
    }

    /// Resolves the canaries now; healthy when any of them has mail hosts.
    pub async fn check(&self) -> bool {
        let Some(resolver) = &self.resolver else {
            return true;
        };
        let mut failures = Vec::with_capacity(self.canaries.len());
        let mut healthy = false;
        for canary in &self.canaries {
            match resolver.mail_route(canary).await {
                Ok(MailRoute::Hosts { .. }) => {
                    healthy = true;
                    break;
                }
                Ok(other) => failures.push(format!("{canary}: {}", describe(&other))),
                Err(err) => failures.push(format!("{canary}: {}", err.detail)),
            }
        }
        let health = if healthy {
            ResolverHealth::Healthy
        } else {
            ResolverHealth::Failing {
                detail: format!(
                    "no canary name resolves to a mail host ({})",
                    failures.join("; ")
                ),
            }
        };
        self.record(health);
        healthy
    }

    fn record(&self, health: ResolverHealth) {
        let mut observed = self.observed.lock().expect("resolver health");
        let was_failing = matches!(observed.health, ResolverHealth::Failing { .. });
        match (&health, was_failing) {
            (ResolverHealth::Failing { detail }, false) => tracing::warn!(
                %detail,
                "the DNS resolver fails its canary checks: no negative DNS answer is trusted \
                 and verification suppresses nothing until it recovers"
            ),
            (ResolverHealth::Healthy, true) => {
                tracing::info!("the DNS resolver passes its canary checks again");
            }
            _ => {}
        }
        metrics::gauge!("mailvet_dns_resolver_healthy").set(if health == ResolverHealth::Healthy {
            1.0
        } else {
            0.0
        });
        *observed = Observed {
            health,
            at: Some(Instant::now()),
        };
    }
}

/// What a route that is not mail hosts says, in a few words.
pub(crate) fn describe(route: &MailRoute) -> &'static str {
    match route {
        MailRoute::Hosts { .. } => "mail hosts",
        MailRoute::NullMx => "a null MX",
        MailRoute::NoMailServer => "no mail host",
        MailRoute::NoSuchDomain => "NXDOMAIN",
    }
}
