//! The embedded SQLite store: the default, for a single mailvet process.
//!
//! Timestamps are stored as milliseconds since the Unix epoch. The database
//! runs in WAL mode with `synchronous = full`, so a write acknowledged to a
//! client survives a crash of the process or of the machine.
//!
//! Here is the SQLite SQL; the steps around it and the reading of rows are
//! in `store::shared`.

mod confirmations;
mod jobs;
mod patterns;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use super::shared::jobs::ActiveJob;
use super::shared::rows::{
    BounceRow, ColumnTypes, SuppressionRow, VerificationRow, bounce_columns, evidence_json,
    stored_count, suppression_columns, verification_columns,
};
use super::shared::{self, Commit, DailyQueries, SqlBackend, StatsQueries, StoreStatements};
use super::{
    Backend, BounceEvent, CachedVerification, ChangeFilter, DayStats, NewBounceEvent,
    NewSuppression, RemovalFilter, Store, StoreGauges, StoreResult, StoreSettings, Suppression,
    WindowStats,
};
use crate::secret::ExposeSecret;
use crate::vocab::BounceKind;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for SQLite's write lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Writers queue here, holding no
    /// pooled connection while they wait, so that a burst of writes (a bulk
    /// job) cannot take every connection and starve the readers.
    writes: Arc<Semaphore>,
}

/// A write transaction and its turn at the write lock.
pub(super) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedSemaphorePermit,
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (and creates, if missing) the database file.
    pub async fn connect(settings: &StoreSettings) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(settings.url.expose_secret())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            pool,
            writes: Arc::new(Semaphore::new(1)),
        })
    }

    /// The pool, for tests and tools that need raw access.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for this process's turn to write (see `writes`).
    async fn write_turn(&self) -> OwnedSemaphorePermit {
        self.writes
            .clone()
            .acquire_owned()
            .await
            .expect("the write semaphore is never closed")
    }
}

/// A time as SQLite stores it.
fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

#[async_trait]
impl SqlBackend for SqliteStore {
    type Conn = SqliteConnection;
    type Tx = WriteTx;

    const STATS: StatsQueries = StatsQueries {
        verifications_by_status: "select status, sum(count) from verification_counts
                                   where hour >= ?1 group by status",
        suppressions_by_reason: "select reason, count(*) from suppressions
                                  where deleted = 0 and created_at >= ?1 group by reason",
        suppressions_by_source: "select source, count(*) from suppressions
                                  where deleted = 0 and created_at >= ?1 group by source",
        bounces_by_kind: "select kind, count(*) from bounce_events
                           where received_at >= ?1 group by kind",
    };

    const DAILY: DailyQueries = DailyQueries {
        verifications_by_status: "select hour / 86400000, status, sum(count)
                                    from verification_counts
                                   where hour >= ?1 group by 1, 2",
        bounces_by_kind: "select received_at / 86400000, kind, count(*)
                            from bounce_events
                           where received_at >= ?1 group by 1, 2",
        // Additions by creation day (removed entries included), removals
        // by the day of the tombstone.
        suppressions_changed: "select created_at / 86400000, 'added', count(*)
                                 from suppressions
                                where created_at >= ?1 group by 1
                               union all
                               select updated_at / 86400000, 'removed', count(*)
                                 from suppressions
                                where deleted = 1 and updated_at >= ?1 group by 1",
    };

    /// Begins a write transaction that holds SQLite's write lock from its
    /// first statement, so that it never has to upgrade a read lock (which
    /// fails at once under contention instead of waiting).
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let turn = self.write_turn().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("begin immediate").await?,
            _turn: turn,
        })
    }

    async fn count_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(sql)
            .bind(millis(since))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn count_daily_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        Ok(sqlx::query_as(sql)
            .bind(millis(since))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn active_jobs(&self) -> StoreResult<Vec<ActiveJob>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "select id, large_domains from jobs where status in ('queued', 'running') \
             order by created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, large)| Ok(ActiveJob::new(Sqlite::uuid("id", id)?, large)))
            .collect()
    }
}

#[async_trait]
impl Commit for WriteTx {
    async fn commit(self) -> StoreResult<()> {
        Ok(self.tx.commit().await?)
    }

    async fn rollback(self) -> StoreResult<()> {
        Ok(self.tx.rollback().await?)
    }
}

#[async_trait]
impl StoreStatements for SqliteConnection {
    async fn lock_seq(&mut self) -> StoreResult<()> {
        // The transaction holds SQLite's write lock from its start: no other
        // writer can take a sequence until it ends.
        Ok(())
    }

    async fn next_seq(&mut self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "update suppression_seq set last_seq = last_seq + 1 returning last_seq",
        )
        .fetch_one(&mut *self)
        .await?)
    }

    async fn next_seqs(&mut self, count: i64) -> StoreResult<i64> {
        let last: i64 = sqlx::query_scalar(
            "update suppression_seq set last_seq = last_seq + ?1 returning last_seq",
        )
        .bind(count)
        .fetch_one(&mut *self)
        .await?;
        Ok(last - count + 1)
    }

    async fn live_keys_among(&mut self, keys: &[String]) -> StoreResult<HashSet<String>> {
        let mut live = HashSet::new();
        // The keys go in as one JSON array a chunk, read by `json_each`.
        for chunk in keys.chunks(1000) {
            let found: Vec<String> = sqlx::query_scalar(
                "select address_key from suppressions
                  where address_key in (select value from json_each(?1)) and deleted = 0",
            )
            .bind(keys_json(chunk))
            .fetch_all(&mut *self)
            .await?;
            live.extend(found);
        }
        Ok(live)
    }

    async fn live_keys_matching(&mut self, filter: &RemovalFilter) -> StoreResult<Vec<String>> {
        // Live entries from one source, put on the list within the span.
        Ok(sqlx::query_scalar(
            "select address_key from suppressions
              where deleted = 0
                and source = ?1
                and created_at >= ?2
                and (?3 is null or created_at < ?3)
                and (?4 is null or reason = ?4)
              order by address_key",
        )
        .bind(filter.source.as_str())
        .bind(millis(filter.since))
        .bind(filter.until.map(millis))
        .bind(filter.reason.map(|reason| reason.as_str()))
        .fetch_all(&mut *self)
        .await?)
    }

    async fn forget_verification(&mut self, address_key: &str) -> StoreResult<()> {
        sqlx::query("delete from verifications where address_key = ?1")
            .bind(address_key)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn suppression_entry(&mut self, address_key: &str) -> StoreResult<Option<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = ?1"
        ))
        .bind(address_key)
        .fetch_optional(&mut *self)
        .await?
        .map(Suppression::try_from)
        .transpose()
    }

    async fn write_suppression(
        &mut self,
        entry: &NewSuppression,
        seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Suppression> {
        // The flat columns hold the evidence's reply or report fields.
        let diagnosis = entry.evidence.diagnosis();
        sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
            "insert into suppressions
                    (address_key, email, reason, source, smtp_code, enhanced_code,
                     diagnostic, mx_host, evidence, deleted, seq, created_at, updated_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?11, 0, ?9, ?10, ?10)
             on conflict (address_key) do update
                set email = excluded.email, reason = excluded.reason,
                    source = excluded.source, smtp_code = excluded.smtp_code,
                    enhanced_code = excluded.enhanced_code,
                    diagnostic = excluded.diagnostic, mx_host = excluded.mx_host,
                    evidence = excluded.evidence,
                    seq = excluded.seq, updated_at = excluded.updated_at,
                    created_at = case when suppressions.deleted
                                      then excluded.created_at
                                      else suppressions.created_at end,
                    deleted = 0
             returning ",
            suppression_columns!()
        ))
        .bind(&entry.address_key)
        .bind(&entry.email)
        .bind(entry.reason.as_str())
        .bind(entry.source.as_str())
        .bind(diagnosis.smtp_code.map(i64::from))
        .bind(&diagnosis.enhanced_code)
        .bind(&diagnosis.diagnostic)
        .bind(&diagnosis.mx_host)
        .bind(seq)
        .bind(millis(now))
        .bind(evidence_json(&entry.evidence))
        .fetch_one(&mut *self)
        .await?
        .try_into()
    }

    async fn tombstone(
        &mut self,
        address_key: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
            "update suppressions
                set deleted = 1, seq = ?2, updated_at = ?3
              where address_key = ?1 and deleted = 0
          returning ",
            suppression_columns!()
        ))
        .bind(address_key)
        .bind(seq)
        .bind(millis(now))
        .fetch_optional(&mut *self)
        .await?
        .map(Suppression::try_from)
        .transpose()
    }

    async fn insert_bounce(&mut self, event: &NewBounceEvent) -> StoreResult<BounceEvent> {
        sqlx::query_as::<_, BounceRow<Sqlite>>(concat!(
            "insert into bounce_events
                    (address_key, email, kind, origin, smtp_code, enhanced_code,
                     diagnostic, mx_host, received_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             returning ",
            bounce_columns!()
        ))
        .bind(&event.address_key)
        .bind(&event.email)
        .bind(event.kind.as_str())
        .bind(event.origin.as_str())
        .bind(event.evidence.smtp_code.map(i64::from))
        .bind(&event.evidence.enhanced_code)
        .bind(&event.evidence.diagnostic)
        .bind(&event.evidence.mx_host)
        .bind(millis(event.received_at))
        .fetch_one(&mut *self)
        .await?
        .try_into()
    }

    async fn count_bounces(
        &mut self,
        address_key: &str,
        kind: BounceKind,
        since: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar(
            "select count(*) from bounce_events
              where address_key = ?1 and kind = ?2 and received_at >= ?3",
        )
        .bind(address_key)
        .bind(kind.as_str())
        .bind(millis(since))
        .fetch_one(&mut *self)
        .await?;
        Ok(stored_count(count))
    }

    async fn put_verifications(&mut self, entries: &[&CachedVerification]) -> StoreResult<()> {
        // In-process statements cost little: one each.
        for entry in entries {
            sqlx::query(
                "insert into verifications
                        (address_key, email, status, reason, result, checked_at, expires_at)
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 on conflict (address_key) do update
                    set email = excluded.email, status = excluded.status,
                        reason = excluded.reason, result = excluded.result,
                        checked_at = excluded.checked_at, expires_at = excluded.expires_at",
            )
            .bind(&entry.address_key)
            .bind(&entry.email)
            .bind(entry.status.as_str())
            .bind(entry.reason.as_str())
            .bind(entry.result.to_string())
            .bind(millis(entry.checked_at))
            .bind(millis(entry.expires_at))
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    async fn add_verification_count(
        &mut self,
        hour: DateTime<Utc>,
        status: &str,
        count: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into verification_counts (hour, status, count) values (?1, ?2, ?3)
             on conflict (hour, status) do update
                set count = verification_counts.count + excluded.count",
        )
        .bind(millis(hour))
        .bind(status)
        .bind(count)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn cached_verification(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<CachedVerification>> {
        sqlx::query_as::<_, VerificationRow<Sqlite>>(concat!(
            "select ",
            verification_columns!(),
            " from verifications where address_key = ?1 and expires_at > ?2"
        ))
        .bind(address_key)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?
        .map(CachedVerification::try_from)
        .transpose()
    }

    async fn cached_verifications_among(
        &self,
        address_keys: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<CachedVerification>> {
        let mut found = Vec::new();
        // The keys go in as one JSON array a chunk, read by `json_each`.
        for chunk in address_keys.chunks(1000) {
            let rows = sqlx::query_as::<_, VerificationRow<Sqlite>>(concat!(
                "select ",
                verification_columns!(),
                " from verifications \
                  where address_key in (select value from json_each(?1)) and expires_at > ?2"
            ))
            .bind(keys_json(chunk))
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                found.push(CachedVerification::try_from(row)?);
            }
        }
        Ok(found)
    }

    async fn record_verifications(&self, entries: &[CachedVerification]) -> StoreResult<()> {
        shared::record_verifications(self, entries).await
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<WindowStats> {
        shared::stats(self, since).await
    }

    async fn daily_stats(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<std::collections::BTreeMap<chrono::NaiveDate, DayStats>> {
        shared::daily_stats(self, since).await
    }

    async fn gauges(&self) -> StoreResult<StoreGauges> {
        // An index-only count over the live entries' partial index.
        let suppressions: i64 =
            sqlx::query_scalar("select count(*) from suppressions where deleted = 0")
                .fetch_one(&self.pool)
                .await?;
        // Active jobs are few; `jobs_active` finds them.
        let jobs: Vec<(String, i64, i64)> = sqlx::query_as(
            "select status, count(*), coalesce(sum(total - processed), 0)
               from jobs
              where status in ('queued', 'running')
              group by status",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(StoreGauges::from_counts(suppressions, jobs))
    }

    async fn purge_expired_verifications(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("delete from verifications where expires_at <= ?1")
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn suppression_seq(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("select last_seq from suppression_seq")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn suppression(&self, address_key: &str) -> StoreResult<Option<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = ?1 and deleted = 0"
        ))
        .bind(address_key)
        .fetch_optional(&self.pool)
        .await?
        .map(Suppression::try_from)
        .transpose()
    }

    async fn suppressions_among(&self, address_keys: &[String]) -> StoreResult<Vec<Suppression>> {
        let mut found = Vec::new();
        for chunk in address_keys.chunks(1000) {
            let rows = sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
                "select ",
                suppression_columns!(),
                " from suppressions \
                  where address_key in (select value from json_each(?1)) and deleted = 0"
            ))
            .bind(keys_json(chunk))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                found.push(Suppression::try_from(row)?);
            }
        }
        Ok(found)
    }

    async fn suppression_changes(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &ChangeFilter,
    ) -> StoreResult<Vec<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Sqlite>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions
              where seq > ?1
                and (?3 is null or reason = ?3)
                and (?4 is null or source = ?4)
                and (?5 is null or updated_at >= ?5)
                and (?6 is null or updated_at < ?6)
              order by seq
              limit ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(filter.reason.map(|reason| reason.as_str()))
        .bind(filter.source.map(|source| source.as_str()))
        .bind(filter.since.map(millis))
        .bind(filter.until.map(millis))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Suppression::try_from)
        .collect()
    }

    async fn record_bounce(&self, event: &NewBounceEvent) -> StoreResult<BounceEvent> {
        let mut conn = self.pool.acquire().await?;
        conn.insert_bounce(event).await
    }

    async fn count_bounces(
        &self,
        address_key: &str,
        kind: BounceKind,
        since: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        conn.count_bounces(address_key, kind, since).await
    }
}

/// Keys as one JSON array, for `json_each`.
fn keys_json(keys: &[String]) -> String {
    serde_json::to_string(keys).expect("strings serialise")
}
