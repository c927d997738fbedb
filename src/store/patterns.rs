//! What the store keeps of bounce patterns: recent rejections, each a
//! sighting of a normalised reply from a provider for one recipient, and
//! the groups that stand out in a window. Written by
//! `patterns::BouncePatterns` in batches; read by `GET /stats` and the
//! dashboard.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// One rejection of one recipient by one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The receiving provider (a registrable domain, or an IP address).
    pub provider: String,
    /// A digest of the normalised reply: code, enhanced code, text.
    pub pattern_key: String,
    pub code: u16,
    pub enhanced_code: Option<String>,
    /// The reply's text with addresses, ids, numbers and hosts replaced.
    pub text: String,
    /// Whether the reply is about the sender (blocklist, policy,
    /// authentication, rate limit) rather than the recipient.
    pub sender_side: bool,
    /// A digest of the recipient's address (never the address).
    pub recipient: String,
    pub seen_at: DateTime<Utc>,
}

/// A pattern and the recipients it was seen for within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternGroup {
    pub provider: String,
    pub code: u16,
    pub enhanced_code: Option<String>,
    pub text: String,
    pub sender_side: bool,
    /// Distinct recipients within the window.
    pub recipients: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[async_trait]
pub trait PatternStore: Send + Sync {
    /// Records sightings, in one transaction: a pattern's first sighting
    /// keeps its text; a recipient seen again within the hour is one row.
    async fn record_sightings(&self, sightings: &[Sighting]) -> StoreResult<()>;

    /// The patterns seen for at least `min_recipients` distinct recipients
    /// at or after `since`: sender-side ones first, then by recipients,
    /// at most `limit`.
    async fn standing_out_patterns(
        &self,
        since: DateTime<Utc>,
        min_recipients: u64,
        limit: u32,
    ) -> StoreResult<Vec<PatternGroup>>;

    /// Marks a pattern as announced at `now` when it has at least
    /// `min_recipients` recipients since `since` and was not announced
    /// since then. Returns its group when it was marked now: the caller
    /// is the one (replica) to warn.
    async fn announce_pattern(
        &self,
        provider: &str,
        pattern_key: &str,
        since: DateTime<Utc>,
        min_recipients: u64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PatternGroup>>;

    /// Deletes sightings last seen before `before`, and the patterns left
    /// without any; returns how many sightings.
    async fn purge_patterns(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
