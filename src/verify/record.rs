//! Recording fresh verdicts: the verdict cache (one transaction for a
//! batch), the answers kept in memory, and the suppression list for
//! permanent failures of the recipient.

use std::sync::Arc;
use std::time::Duration;

use super::degraded::warn_store;
use super::memo::Memo;
use super::resolver_watch::ResolverWatch;
use super::result::VerifyResult;
use crate::address::EmailAddress;
use crate::patterns::{self, BouncePatterns, Pattern};
use crate::store::{CachedVerification, Evidence, Store};
use crate::suppress::SuppressionList;
use crate::vocab::{Status, SuppressionReason};

/// How long each status's verdict is reused.
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl {
    pub deliverable: Duration,
    pub undeliverable: Duration,
    pub risky: Duration,
    pub unknown: Duration,
}

impl CacheTtl {
    fn for_status(&self, status: Status) -> Duration {
        match status {
            Status::Deliverable => self.deliverable,
            Status::Undeliverable => self.undeliverable,
            Status::Risky => self.risky,
            Status::Unknown => self.unknown,
        }
    }
}

/// Writes fresh verdicts where they are kept.
#[derive(Debug)]
pub(super) struct Recorder {
    pub store: Arc<dyn Store>,
    pub suppressions: Arc<SuppressionList>,
    pub ttl: CacheTtl,
    pub watch: Arc<ResolverWatch>,
    /// Rejections by the mail servers, grouped into patterns.
    pub patterns: Arc<BouncePatterns>,
}

impl Recorder {
    /// Caches fresh verdicts (one transaction for the lot), keeps them in
    /// memory under the suppression list's `version`, and suppresses
    /// permanent recipient failures.
    pub async fn record(
        &self,
        verdicts: &[(&EmailAddress, &VerifyResult)],
        memo: &Memo,
        version: u64,
    ) {
        self.patterns.note(rejections(verdicts));
        let entries: Vec<CachedVerification> = verdicts
            .iter()
            .map(|(address, result)| {
                count_verdict(result);
                let ttl = chrono::Duration::from_std(self.ttl.for_status(result.status))
                    .unwrap_or(chrono::Duration::zero());
                CachedVerification {
                    address_key: address.key(),
                    email: address.normalized(),
                    status: result.status,
                    reason: result.reason,
                    result: serde_json::to_value(result).unwrap_or_default(),
                    checked_at: result.checked_at,
                    expires_at: result.checked_at + ttl,
                }
            })
            .collect();
        match self.store.record_verifications(&entries).await {
            Ok(()) => {
                for ((_, result), entry) in verdicts.iter().zip(entries) {
                    // A suppressed address is answered from the list next
                    // time.
                    if SuppressionReason::from_verdict(result.reason).is_none() {
                        let kept = VerifyResult {
                            cached: true,
                            ..(*result).clone()
                        };
                        memo.put(entry.address_key, kept, entry.expires_at, version);
                    }
                }
            }
            Err(err) => warn_store("caching verdicts", &err),
        }
        self.suppress_permanent(verdicts).await;
    }

    /// Suppresses the permanent recipient failures among `verdicts`, in
    /// one write.
    async fn suppress_permanent(&self, verdicts: &[(&EmailAddress, &VerifyResult)]) {
        let found: Vec<(&EmailAddress, SuppressionReason, Evidence)> = verdicts
            .iter()
            .filter_map(|&(address, result)| {
                let reason = SuppressionReason::from_verdict(result.reason)?;
                // A permanent failure is a reply to RCPT TO, or else a DNS
                // answer.
                let evidence = match &result.smtp {
                    Some(reply) => Evidence::smtp_reply(reply, result.checked_at),
                    None => {
                        Evidence::dns(address.domain(), result.message.clone(), result.checked_at)
                    }
                };
                Some((address, reason, evidence))
            })
            .collect();
        if found.is_empty() {
            return;
        }
        if !self.watch.trusted().await {
            // The mail hosts themselves came from a resolver that fails its
            // canary checks: nothing it led to is evidence enough.
            tracing::info!("not suppressing while the DNS resolver fails its canary checks");
            return;
        }
        if let Err(err) = self.suppressions.add_undeliverables(found).await {
            warn_store("suppressing undeliverable addresses", &err);
        }
    }
}

/// The replies that refused recipients (4xx and 5xx), as pattern
/// sightings of the mail host's provider.
fn rejections(verdicts: &[(&EmailAddress, &VerifyResult)]) -> Vec<crate::store::Sighting> {
    verdicts
        .iter()
        .filter_map(|(address, result)| {
            let reply = result.smtp.as_ref().filter(|reply| reply.code >= 400)?;
            let pattern = Pattern::of(reply.code, reply.enhanced_code.as_deref(), &reply.message);
            Some(patterns::sighting(
                patterns::provider_of(&reply.host),
                pattern,
                patterns::is_sender_side(result.reason),
                &address.key(),
                result.checked_at,
            ))
        })
        .collect()
}

pub(super) fn count_verdict(result: &VerifyResult) {
    result.verdict_counter().increment(1);
}
