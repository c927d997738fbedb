//! Bounce patterns: many recipients at one provider refused with the same
//! reply. When the reply is about the sender (a blocklist listing, failed
//! authentication, policy, a rate limit), the problem is the sender, not
//! the addresses, and the operator should hear of it.
//!
//! Every rejection — a bounce (`POST /bounces`, ESP webhooks) or a 4xx/5xx
//! reply to a verification probe — is a [`Sighting`]: the receiving
//! provider, the reply normalised ([`Pattern`]), whether it is about the
//! sender, and a digest of the recipient. The store keeps a row per
//! pattern, hour and recipient, so recipients are counted once however
//! often they bounce, and the counts hold across replicas.
//!
//! Probe rejections are buffered and written in batches (at most
//! [`FLUSH_INTERVAL`] later, or at [`FLUSH_AT`] sightings): the probe path
//! never waits for a write. Bounces are written with their report.
//!
//! A pattern **stands out** when at least [`MIN_RECIPIENTS`] distinct
//! recipients met it within [`WINDOW`]. When a sender-side pattern first
//! stands out, one warning is logged: the store marks the pattern as
//! announced, so another replica, or this one after a restart, does not
//! warn again until it has been quiet for a window.

mod normalise;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use normalise::{Pattern, normalise_text};

use crate::store::{PatternGroup, Sighting, Store, StoreResult};
use crate::vocab::Reason;

/// The window a pattern is counted over.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Distinct recipients within the window for a pattern to stand out.
pub const MIN_RECIPIENTS: u64 = 3;
/// Patterns listed by `GET /stats`, sender-side first.
pub const STATS_PATTERNS: u32 = 50;
/// Sightings older than this are deleted.
pub const RETENTION: Duration = Duration::from_secs(48 * 3600);
/// Buffered probe rejections are written at most this much later.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered probe rejections are written at once when this many wait.
pub const FLUSH_AT: usize = 500;
/// The most probe rejections kept waiting for a write (while the database
/// does not answer); more are dropped.
const MAX_PENDING: usize = 20 * FLUSH_AT;
/// How often old sightings are purged (by whichever write comes next).
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long this process remembers announcing a pattern, sparing the
/// store the question.
const REMEMBER_ANNOUNCED: Duration = Duration::from_secs(600);

/// Whether a verdict's reason puts the blame on the sender: the
/// classifier's `blocked` (blocklists, reputation, SPF/DKIM/DMARC, reverse
/// DNS, policy, a refused sender) and `rate_limited`.
pub fn is_sender_side(reason: Reason) -> bool {
    matches!(reason, Reason::Blocked | Reason::RateLimited)
}

/// The provider a mail host belongs to: its registrable domain, or the
/// host itself when it is an IP address or has none.
pub fn provider_of(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return bare.to_owned();
    }
    match psl::domain_str(&host) {
        Some(domain) => domain.to_owned(),
        None => host,
    }
}

/// The provider that refused a bounced message: the remote MTA's
/// registrable domain when the report names it by host name; else (no
/// host, or only an IP address, which says less than the domain) the
/// recipient domain's.
pub fn bounce_provider(remote_mta: Option<&str>, recipient_domain: &str) -> String {
    // A report may add the address to the name (`mx.example.com
    // [192.0.2.1]`): the name is the first word.
    match remote_mta.and_then(|host| host.split_whitespace().next()) {
        Some(host) if host.trim_matches(['[', ']']).parse::<IpAddr>().is_err() => provider_of(host),
        _ => provider_of(recipient_domain),
    }
}

/// Where a rejection was met, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Verify,
    Bounce,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Verify => "verify",
            Source::Bounce => "bounce",
        }
    }
}

/// A sighting of `pattern` from `provider` for the address `address_key`.
pub fn sighting(
    provider: String,
    pattern: Pattern,
    sender_side: bool,
    address_key: &str,
    seen_at: DateTime<Utc>,
) -> Sighting {
    let recipient = normalise::hex(&Sha256::digest(address_key.as_bytes())[..8]);
    Sighting {
        provider: bounded(provider),
        pattern_key: pattern.key(),
        code: pattern.code,
        enhanced_code: pattern.enhanced_code,
        text: pattern.text,
        sender_side,
        recipient,
        seen_at,
    }
}

/// Records rejections, and reports the patterns that stand out.
#[derive(Debug)]
pub struct BouncePatterns {
    store: Arc<dyn Store>,
    pending: Mutex<Vec<Sighting>>,
    /// Whether a delayed flush is on its way.
    flush_due: AtomicBool,
    /// Whether an immediate flush (of a full buffer) is on its way.
    flush_now_due: AtomicBool,
    /// One flush at a time, so that batches are written in order.
    flushing: tokio::sync::Mutex<()>,
    /// Patterns this process announced lately, by provider and key.
    announced: Mutex<HashMap<(String, String), Instant>>,
    last_purge: Mutex<Option<Instant>>,
}

impl BouncePatterns {
    pub fn new(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(BouncePatterns {
            store,
            pending: Mutex::new(Vec::new()),
            flush_due: AtomicBool::new(false),
            flush_now_due: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
            announced: Mutex::new(HashMap::new()),
            last_purge: Mutex::new(None),
        })
    }

    /// Takes probe rejections, to be written within [`FLUSH_INTERVAL`].
    pub fn note(self: &Arc<Self>, sightings: Vec<Sighting>) {
        if sightings.is_empty() {
            return;
        }
        count(Source::Verify, &sightings);
        let full = {
            let mut pending = self.pending.lock().expect("pending sightings");
            // While the database does not answer, the buffer is bounded:
            // what does not fit is dropped.
            let room = MAX_PENDING.saturating_sub(pending.len());
            pending.extend(sightings.into_iter().take(room));
            pending.len() >= FLUSH_AT
        };
        if full && !self.flush_now_due.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                this.flush_now_due.store(false, Ordering::Release);
                this.flush().await;
            });
        } else if !self.flush_due.swap(true, Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                this.flush_due.store(false, Ordering::Release);
                this.flush().await;
            });
        }
    }

    /// Writes bounce rejections now.
    pub async fn record(&self, sightings: Vec<Sighting>) -> StoreResult<()> {
        if sightings.is_empty() {
            return Ok(());
        }
        count(Source::Bounce, &sightings);
        let _turn = self.flushing.lock().await;
        self.write(sightings).await
    }

    /// Writes the buffered probe rejections. A failed write is logged and
    /// dropped: patterns are a signal, not a record anyone relies on.
    pub async fn flush(&self) {
        let _turn = self.flushing.lock().await;
        let sightings = std::mem::take(&mut *self.pending.lock().expect("pending sightings"));
        if sightings.is_empty() {
            return;
        }
        if let Err(err) = self.write(sightings).await {
            tracing::warn!(error = %crate::error::error_chain(&err), "recording bounce patterns failed");
        }
    }

    /// The patterns that stand out now, sender-side first (this process's
    /// buffered rejections written first).
    pub async fn standing_out(&self) -> StoreResult<Vec<PatternGroup>> {
        self.flush().await;
        self.store
            .standing_out_patterns(window_start(Utc::now()), MIN_RECIPIENTS, STATS_PATTERNS)
            .await
    }

    async fn write(&self, sightings: Vec<Sighting>) -> StoreResult<()> {
        self.store.record_sightings(&sightings).await?;
        self.announce(&sightings).await;
        self.purge_now_and_then().await;
        Ok(())
    }

    /// Warns of each sender-side pattern among `sightings` that now stands
    /// out for the first time.
    async fn announce(&self, sightings: &[Sighting]) {
        let now = Utc::now();
        let mut candidates: Vec<(&str, &str)> = sightings
            .iter()
            .filter(|sighting| sighting.sender_side)
            .map(|sighting| (sighting.provider.as_str(), sighting.pattern_key.as_str()))
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for (provider, key) in candidates {
            let id = (provider.to_owned(), key.to_owned());
            if self
                .announced
                .lock()
                .expect("announced patterns")
                .get(&id)
                .is_some_and(|at| at.elapsed() < REMEMBER_ANNOUNCED)
            {
                continue;
            }
            match self
                .store
                .announce_pattern(provider, key, window_start(now), MIN_RECIPIENTS, now)
                .await
            {
                Ok(Some(group)) => {
                    self.remember(id);
                    tracing::warn!(
                        provider = %group.provider,
                        code = group.code,
                        enhanced_code = group.enhanced_code.as_deref().unwrap_or(""),
                        pattern = %group.text,
                        recipients = group.recipients,
                        "{} recipients at {} were refused with the same reply about the sender: \
                         look at the sending IP's and domain's reputation and authentication",
                        group.recipients,
                        group.provider,
                    );
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %crate::error::error_chain(&err), "checking a bounce pattern failed");
                    return;
                }
            }
        }
    }

    fn remember(&self, id: (String, String)) {
        let mut announced = self.announced.lock().expect("announced patterns");
        announced.retain(|_, at| at.elapsed() < REMEMBER_ANNOUNCED);
        announced.insert(id, Instant::now());
    }

    async fn purge_now_and_then(&self) {
        {
            let mut last = self.last_purge.lock().expect("last purge");
            if last.is_some_and(|at| at.elapsed() < PURGE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let before = Utc::now() - chrono::Duration::from_std(RETENTION).unwrap_or_default();
        match self.store.purge_patterns(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged old bounce pattern sightings"),
            Err(err) => {
                tracing::warn!(error = %crate::error::error_chain(&err), "purging bounce patterns failed");
            }
        }
    }
}

/// A provider name as kept: a report's host field may be anything, but no
/// host name is longer than 253 characters.
fn bounded(mut provider: String) -> String {
    const MAX: usize = 253;
    if provider.len() > MAX {
        let mut end = MAX;
        while !provider.is_char_boundary(end) {
            end -= 1;
        }
        provider.truncate(end);
    }
    provider
}

fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - chrono::Duration::from_std(WINDOW).unwrap_or_default()
}

fn count(source: Source, sightings: &[Sighting]) {
    for sighting in sightings {
        let sender_side = if sighting.sender_side {
            "true"
        } else {
            "false"
        };
        metrics::counter!(
            "mailvet_bounce_pattern_events_total",
            "source" => source.as_str(),
            "sender_side" => sender_side
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_registrable_domains_of_the_refusing_host_or_the_recipient_domain() {
        assert_eq!(provider_of("gmail-smtp-in.l.google.com."), "google.com");
        assert_eq!(provider_of("[192.0.2.1]"), "192.0.2.1");
        assert_eq!(
            bounce_provider(Some("mx1.mail.example.co.uk"), "shop.test"),
            "example.co.uk"
        );
        assert_eq!(
            bounce_provider(Some("127.0.2.0"), "mail.example.org"),
            "example.org"
        );
        assert_eq!(bounce_provider(None, "mail.example.org"), "example.org");
        assert_eq!(
            bounce_provider(Some("mx2.example.net [192.0.2.7]"), "example.org"),
            "example.net"
        );
        let long = sighting(
            "x".repeat(1000),
            Pattern::of(550, None, "no"),
            false,
            "a@b",
            Utc::now(),
        );
        assert_eq!(long.provider.len(), 253);
    }

    #[test]
    fn only_blocks_and_rate_limits_are_about_the_sender() {
        assert!(is_sender_side(Reason::Blocked));
        assert!(is_sender_side(Reason::RateLimited));
        for reason in [
            Reason::MailboxNotFound,
            Reason::MailboxFull,
            Reason::Greylisted,
            Reason::SmtpError,
        ] {
            assert!(!is_sender_side(reason), "{reason:?}");
        }
    }

    /// The log lines written while `run` runs on a runtime of its own.
    fn logged(run: impl Future<Output = ()>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        crate::test_log::logged(|| runtime.block_on(run))
    }

    /// A migrated SQLite store at `url`.
    async fn scratch_store(url: &str) -> Arc<dyn Store> {
        let settings = crate::store::StoreSettings {
            url: crate::secret::SecretString::from(url.to_owned()),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
        };
        let store: Arc<dyn Store> = Arc::new(
            crate::store::SqliteStore::connect(&settings)
                .await
                .expect("a store"),
        );
        store.migrate().await.expect("migrated");
        store
    }

    #[test]
    fn a_sender_side_pattern_is_warned_about_once_across_processes_and_without_addresses() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("patterns.db").display());
        let log = logged(async move {
            let store = scratch_store(&url).await;
            let blocked = Pattern::of(
                554,
                Some("5.7.1"),
                "Client host [203.0.113.5] blocked using zen.spamhaus.org",
            );
            let unknown = Pattern::of(550, Some("5.1.1"), "User unknown");
            let seen = |pattern: &Pattern, sender_side: bool, user: &str| {
                sighting(
                    "example.org".into(),
                    pattern.clone(),
                    sender_side,
                    &format!("{user}@example.org"),
                    Utc::now(),
                )
            };
            let first = BouncePatterns::new(store.clone());
            for user in ["ann", "bob"] {
                first
                    .record(vec![
                        seen(&blocked, true, user),
                        seen(&unknown, false, user),
                    ])
                    .await
                    .expect("recorded");
            }
            first
                .record(vec![
                    seen(&blocked, true, "cat"),
                    seen(&unknown, false, "cat"),
                ])
                .await
                .expect("recorded");
            first
                .record(vec![seen(&blocked, true, "dan")])
                .await
                .expect("recorded");
            // Another replica, or this one restarted: no second warning.
            let second = BouncePatterns::new(store);
            second
                .record(vec![seen(&blocked, true, "eve")])
                .await
                .expect("recorded");
        });
        assert_eq!(log.matches("WARN").count(), 1, "{log}");
        assert!(
            log.contains(
                "3 recipients at example.org were refused with the same reply about the sender"
            ),
            "{log}"
        );
        assert!(log.contains("zen.spamhaus.org"), "{log}");
        assert!(!log.contains("@example.org"), "no addresses: {log}");
        assert!(!log.contains("User unknown"), "only sender-side: {log}");
    }

    #[test]
    fn probe_rejections_wait_in_a_bounded_buffer_and_are_written_in_one_flush() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("patterns.db").display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let store = scratch_store(&url).await;
            let patterns = BouncePatterns::new(store.clone());
            let pattern = Pattern::of(550, Some("5.1.1"), "User unknown");
            let many: Vec<Sighting> = (0..MAX_PENDING + 100)
                .map(|n| {
                    let address = format!("user{n}@example.org");
                    sighting(
                        "example.org".into(),
                        pattern.clone(),
                        false,
                        &address,
                        Utc::now(),
                    )
                })
                .collect();
            patterns.note(many);
            // Held back (no flush ran yet on this thread), within bounds.
            assert_eq!(patterns.pending.lock().expect("pending").len(), MAX_PENDING);
            let found = patterns.standing_out().await.expect("read");
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].recipients, MAX_PENDING as u64);
            assert!(patterns.pending.lock().expect("pending").is_empty());
        });
    }

    #[test]
    fn a_recipient_is_kept_as_a_digest() {
        let pattern = Pattern::of(550, Some("5.1.1"), "no such user");
        let seen = sighting(
            "example.org".into(),
            pattern,
            false,
            "bob@example.org",
            Utc::now(),
        );
        assert_eq!(seen.recipient.len(), 16);
        assert!(!seen.recipient.contains("bob"));
    }
}
