//! Persistence: cached verdicts, the suppression list and its change feed,
//! bounce events, bulk jobs. One [`Store`] trait, one implementation per
//! backend (`postgres`, `sqlite`: each its own SQL); the database URL's
//! scheme picks the backend. What the backends share — reading rows into
//! records, the steps of writes that take several statements — is written
//! once, in `shared`.

pub mod cluster;
mod confirmations;
mod jobs;
mod model;
mod patterns;
mod postgres;
mod shared;
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use confirmations::{
    Confirmation, ConfirmationLimits, ConfirmationStore, Confirmed, NewConfirmation, Reserved,
};
pub use jobs::{
    ChunkLimit, ClaimedChunk, ClaimedItem, ItemOutcome, Job, JobResultRow, JobStatus, JobStore,
    NewJobItem, StatusCounts,
};
pub use model::{
    BounceEvent, BouncePlan, BounceRules, CachedVerification, ChangeFilter, DayStats, Evidence,
    EvidenceKind, NewBounce, NewBounceEvent, NewSuppression, RemovalFilter, StoreGauges,
    Suppression, Upserted, WindowStats,
};
pub use patterns::{PatternGroup, PatternStore, Sighting};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::secret::{ExposeSecret, SecretString};
use crate::vocab::BounceKind;

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out).
    /// Callers answer 503 and may retry.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migrating the database failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that the code cannot read back (an unknown enum name,
    /// an out-of-range number): a bug or a hand-edited row.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL `{0}`: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL selects, by its scheme.
    pub fn for_url(url: &str) -> StoreResult<Backend> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            Some("sqlite") => Ok(Backend::Sqlite),
            _ => Err(StoreError::UnsupportedUrl(crate::secret::redact_url(url))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a query waits for a pooled connection before the store
    /// reports itself unavailable.
    pub acquire_timeout: Duration,
}

/// Opens the database that `settings.url` names. Does not migrate.
pub async fn connect(settings: &StoreSettings) -> StoreResult<Arc<dyn Database>> {
    let url = settings.url.expose_secret();
    Ok(match Backend::for_url(url)? {
        Backend::Postgres => Arc::new(PgStore::connect(settings)?),
        Backend::Sqlite => Arc::new(SqliteStore::connect(settings).await?),
    })
}

/// Everything mailvet keeps, but for the writes that change the suppression
/// list, which are in [`SuppressionWrites`]. Implementations must make each
/// method atomic: a write either happens whole or not at all.
#[async_trait]
pub trait Store: JobStore + PatternStore + ConfirmationStore + Send + Sync + fmt::Debug {
    fn backend(&self) -> Backend;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    /// Applies the embedded migrations that are not applied yet.
    async fn migrate(&self) -> StoreResult<()>;

    /// Closes the connection pool, waiting for checked-out connections.
    async fn close(&self);

    /// What replicas sharing this database coordinate through; `None` when
    /// one process has the database to itself (SQLite).
    fn coordination(&self) -> Option<Arc<dyn cluster::Coordination>> {
        None
    }

    // ---- verification cache ------------------------------------------

    /// The cached verdict for an address, unless it has expired at `now`.
    async fn cached_verification(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<CachedVerification>>;

    /// The cached verdicts among `address_keys` that have not expired at
    /// `now`, in no particular order: a batch's in one query.
    async fn cached_verifications_among(
        &self,
        address_keys: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<CachedVerification>>;

    /// Stores fresh verdicts, each replacing any earlier one for its
    /// address, and counts them by status and hour for statistics; all in
    /// one transaction (a batch costs one commit).
    async fn record_verifications(&self, entries: &[CachedVerification]) -> StoreResult<()>;

    /// Verifications, suppressions and bounces since `since`.
    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<WindowStats>;

    /// Per UTC day from the day `since` falls in: verifications by status,
    /// bounces by kind, suppressions added and removed. Days without any
    /// of them are absent.
    async fn daily_stats(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<std::collections::BTreeMap<chrono::NaiveDate, DayStats>>;

    /// The size of the suppression list and of the bulk jobs' queue.
    async fn gauges(&self) -> StoreResult<StoreGauges>;

    /// Deletes verdicts that expired before `now`; returns how many.
    async fn purge_expired_verifications(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // ---- suppression list --------------------------------------------

    /// The live entry for an address (tombstones are not returned).
    async fn suppression(&self, address_key: &str) -> StoreResult<Option<Suppression>>;

    /// The live entries among `address_keys`, in no particular order: a
    /// batch's in one query.
    async fn suppressions_among(&self, address_keys: &[String]) -> StoreResult<Vec<Suppression>>;

    /// The suppression list's change sequence: it moves with every change,
    /// whichever replica made it.
    async fn suppression_seq(&self) -> StoreResult<i64>;

    /// Entries (live and tombstones) whose last change comes after
    /// `after_seq`, in change order, at most `limit` of them, optionally
    /// only those with a reason or source, or changed within a time span.
    async fn suppression_changes(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &ChangeFilter,
    ) -> StoreResult<Vec<Suppression>>;

    // ---- bounces -----------------------------------------------------

    async fn record_bounce(&self, event: &NewBounceEvent) -> StoreResult<BounceEvent>;

    /// How many bounces of `kind` were recorded for an address at or after
    /// `since`.
    async fn count_bounces(
        &self,
        address_key: &str,
        kind: BounceKind,
        since: DateTime<Utc>,
    ) -> StoreResult<u64>;
}

/// The writes that change the suppression list. Only its owner,
/// `suppress::SuppressionList`, holds a handle to them; everything else
/// reads the list through [`Store`].
#[async_trait]
pub trait SuppressionWrites: Send + Sync + fmt::Debug {
    /// Puts an address on the suppression list, or refreshes its entry.
    /// Re-adding an identical live entry changes nothing and takes no new
    /// change sequence; anything else takes one.
    async fn upsert_suppression(
        &self,
        entry: &NewSuppression,
        now: DateTime<Utc>,
    ) -> StoreResult<(Suppression, Upserted)>;

    /// `upsert_suppression` for each entry, in order, in one transaction:
    /// one turn at the change sequence for the lot, rather than one each.
    /// Returns, per entry, what it became; a later entry for an address
    /// sees what an earlier one wrote.
    async fn upsert_suppressions(
        &self,
        entries: &[NewSuppression],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Suppression, Upserted)>>;

    /// Removes an address from the list, leaving a tombstone in the change
    /// feed. Returns the tombstone, or `None` if the address was not on the
    /// list.
    async fn remove_suppression(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Suppression>>;

    /// Adds the addresses that are not on the list, in one transaction, and
    /// leaves those that are with their entries (as `upsert_suppression`
    /// with an unchanged entry would). Returns, per entry, whether it was
    /// added; a later entry for an address already added counts as
    /// present.
    async fn import_suppressions(
        &self,
        entries: &[NewSuppression],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>>;

    /// Removes every live entry that `filter` matches, each leaving a
    /// tombstone, in one transaction. When the entries came from
    /// verification, the cached verdicts of their addresses are forgotten
    /// too, so that the next verification looks again. Returns how many
    /// were removed.
    async fn remove_suppressions(
        &self,
        filter: &RemovalFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Records the bounces of one report and applies the suppressions the
    /// rules call for, all in one transaction. Returns, per bounce, whether
    /// the address is suppressed after it.
    async fn record_bounces(
        &self,
        bounces: &[NewBounce],
        rules: &dyn BounceRules,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>>;
}

/// A database: the store and the suppression list's writes.
pub trait Database: Store + SuppressionWrites {}

impl<T: Store + SuppressionWrites> Database for T {}
