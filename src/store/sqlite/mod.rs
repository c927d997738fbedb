//! The embedded SQLite store: the default, for a single mailvet process.
//!
//! Timestamps are stored as milliseconds since the Unix epoch. The database
//! runs in WAL mode with `synchronous = full`, so a write acknowledged to a
//! client survives a crash of the process or of the machine.

mod jobs;

use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use super::model::hour_of;
use super::{
    Backend, BounceEvent, BouncePlan, BounceRules, CachedVerification, ChangeFilter, NewBounce,
    NewBounceEvent, NewSuppression, Store, StoreError, StoreResult, StoreSettings, Suppression,
    SuppressionWrites, Upserted, WindowStats, counts_map, parse_stored, stored_smtp_code,
};
use crate::secret::ExposeSecret;
use crate::vocab::{BounceKind, Diagnosis};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The columns of `suppressions`, in the order `suppression_from_row` reads.
macro_rules! suppression_columns {
    () => {
        "address_key, email, reason, source, smtp_code, enhanced_code, \
         diagnostic, mx_host, deleted, seq, created_at, updated_at"
    };
}

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
    type Target = Transaction<'static, Sqlite>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx {
    pub(super) async fn commit(self) -> StoreResult<()> {
        Ok(self.tx.commit().await?)
    }

    pub(super) async fn rollback(self) -> StoreResult<()> {
        Ok(self.tx.rollback().await?)
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

    /// Begins a write transaction that holds SQLite's write lock from its
    /// first statement, so that it never has to upgrade a read lock (which
    /// fails at once under contention instead of waiting).
    pub(super) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let turn = self.write_turn().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("begin immediate").await?,
            _turn: turn,
        })
    }

    /// Waits for this process's turn to write (see `writes`).
    pub(super) async fn write_turn(&self) -> OwnedSemaphorePermit {
        self.writes
            .clone()
            .acquire_owned()
            .await
            .expect("the write semaphore is never closed")
    }
}

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(super) fn from_millis(column: &str, value: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(value)
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: {value} is not a time")))
}

async fn next_seq(tx: &mut Transaction<'static, Sqlite>) -> StoreResult<i64> {
    let seq: i64 =
        sqlx::query_scalar("update suppression_seq set last_seq = last_seq + 1 returning last_seq")
            .fetch_one(&mut **tx)
            .await?;
    Ok(seq)
}

/// The entry for an address, live or tombstone.
async fn read_suppression(
    tx: &mut Transaction<'static, Sqlite>,
    address_key: &str,
) -> StoreResult<Option<Suppression>> {
    let row = sqlx::query(concat!(
        "select ",
        suppression_columns!(),
        " from suppressions where address_key = ?1"
    ))
    .bind(address_key)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(suppression_from_row).transpose()
}

/// Writes a live entry for the address with a new change sequence, inside a
/// write transaction.
async fn write_suppression(
    tx: &mut Transaction<'static, Sqlite>,
    entry: &NewSuppression,
    now: DateTime<Utc>,
) -> StoreResult<Suppression> {
    let seq = next_seq(tx).await?;
    // A re-added tombstone starts a new entry: its creation time is now.
    let row = sqlx::query(concat!(
        "insert into suppressions
                (address_key, email, reason, source, smtp_code, enhanced_code,
                 diagnostic, mx_host, deleted, seq, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?10)
         on conflict (address_key) do update
            set email = excluded.email, reason = excluded.reason,
                source = excluded.source, smtp_code = excluded.smtp_code,
                enhanced_code = excluded.enhanced_code,
                diagnostic = excluded.diagnostic, mx_host = excluded.mx_host,
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
    .bind(entry.evidence.smtp_code.map(i64::from))
    .bind(&entry.evidence.enhanced_code)
    .bind(&entry.evidence.diagnostic)
    .bind(&entry.evidence.mx_host)
    .bind(seq)
    .bind(millis(now))
    .fetch_one(&mut **tx)
    .await?;
    suppression_from_row(&row)
}

async fn insert_bounce(
    conn: &mut SqliteConnection,
    event: &NewBounceEvent,
) -> StoreResult<BounceEvent> {
    let row = sqlx::query(
        "insert into bounce_events
                (address_key, email, kind, origin, smtp_code, enhanced_code,
                 diagnostic, mx_host, received_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         returning id, address_key, email, kind, origin, smtp_code, enhanced_code,
                   diagnostic, mx_host, received_at",
    )
    .bind(&event.address_key)
    .bind(&event.email)
    .bind(event.kind.as_str())
    .bind(event.origin.as_str())
    .bind(event.evidence.smtp_code.map(i64::from))
    .bind(&event.evidence.enhanced_code)
    .bind(&event.evidence.diagnostic)
    .bind(&event.evidence.mx_host)
    .bind(millis(event.received_at))
    .fetch_one(&mut *conn)
    .await?;
    bounce_from_row(&row)
}

async fn count_bounces_in(
    conn: &mut SqliteConnection,
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
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn suppression_from_row(row: &SqliteRow) -> StoreResult<Suppression> {
    Ok(Suppression {
        address_key: row.try_get("address_key")?,
        email: row.try_get("email")?,
        reason: parse_stored("reason", row.try_get("reason")?)?,
        source: parse_stored("source", row.try_get("source")?)?,
        evidence: evidence_from_row(row)?,
        deleted: row.try_get("deleted")?,
        seq: row.try_get("seq")?,
        created_at: from_millis("created_at", row.try_get("created_at")?)?,
        updated_at: from_millis("updated_at", row.try_get("updated_at")?)?,
    })
}

fn evidence_from_row(row: &SqliteRow) -> StoreResult<Diagnosis> {
    Ok(Diagnosis {
        smtp_code: stored_smtp_code(row.try_get("smtp_code")?)?,
        enhanced_code: row.try_get("enhanced_code")?,
        diagnostic: row.try_get("diagnostic")?,
        mx_host: row.try_get("mx_host")?,
    })
}

fn bounce_from_row(row: &SqliteRow) -> StoreResult<BounceEvent> {
    Ok(BounceEvent {
        id: row.try_get("id")?,
        address_key: row.try_get("address_key")?,
        email: row.try_get("email")?,
        kind: parse_stored("kind", row.try_get("kind")?)?,
        origin: parse_stored("origin", row.try_get("origin")?)?,
        evidence: evidence_from_row(row)?,
        received_at: from_millis("received_at", row.try_get("received_at")?)?,
    })
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
        let row = sqlx::query(
            "select address_key, email, status, reason, result, checked_at, expires_at
               from verifications
              where address_key = ?1 and expires_at > ?2",
        )
        .bind(address_key)
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let result: String = row.try_get("result")?;
        Ok(Some(CachedVerification {
            address_key: row.try_get("address_key")?,
            email: row.try_get("email")?,
            status: parse_stored("status", row.try_get("status")?)?,
            reason: parse_stored("reason", row.try_get("reason")?)?,
            result: serde_json::from_str(&result)
                .map_err(|err| StoreError::Corrupt(format!("result: {err}")))?,
            checked_at: from_millis("checked_at", row.try_get("checked_at")?)?,
            expires_at: from_millis("expires_at", row.try_get("expires_at")?)?,
        }))
    }

    async fn record_verifications(&self, entries: &[CachedVerification]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<(DateTime<Utc>, &'static str), i64> =
            std::collections::BTreeMap::new();
        let mut tx = self.begin_write().await?;
        // One lock order for every writer: no deadlocks between batches.
        let mut ordered: Vec<&CachedVerification> = entries.iter().collect();
        ordered.sort_by(|a, b| a.address_key.cmp(&b.address_key));
        for entry in ordered {
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
            .execute(&mut **tx)
            .await?;
            *counts
                .entry((hour_of(entry.checked_at), entry.status.as_str()))
                .or_default() += 1;
        }
        for ((hour, status), count) in counts {
            sqlx::query(
                "insert into verification_counts (hour, status, count) values (?1, ?2, ?3)
                 on conflict (hour, status) do update set count = verification_counts.count + excluded.count",
            )
            .bind(millis(hour))
            .bind(status)
            .bind(count)
            .execute(&mut **tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<WindowStats> {
        // Hourly buckets: the window starts at the hour `since` falls in.
        let verifications: Vec<(String, i64)> = sqlx::query_as(
            "select status, sum(count) from verification_counts where hour >= ?1 group by status",
        )
        .bind(millis(hour_of(since)))
        .fetch_all(&self.pool)
        .await?;
        let by_reason: Vec<(String, i64)> = sqlx::query_as(
            "select reason, count(*) from suppressions where deleted = 0 and created_at >= ?1 group by reason",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        let by_source: Vec<(String, i64)> = sqlx::query_as(
            "select source, count(*) from suppressions where deleted = 0 and created_at >= ?1 group by source",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        let bounces: Vec<(String, i64)> = sqlx::query_as(
            "select kind, count(*) from bounce_events where received_at >= ?1 group by kind",
        )
        .bind(millis(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(WindowStats {
            verifications_by_status: counts_map(verifications),
            suppressions_by_reason: counts_map(by_reason),
            suppressions_by_source: counts_map(by_source),
            bounces_by_kind: counts_map(bounces),
        })
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
        let row = sqlx::query(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = ?1 and deleted = 0"
        ))
        .bind(address_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(suppression_from_row).transpose()
    }

    async fn suppression_changes(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &ChangeFilter,
    ) -> StoreResult<Vec<Suppression>> {
        let rows = sqlx::query(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions
              where seq > ?1
                and (?3 is null or reason = ?3)
                and (?4 is null or source = ?4)
              order by seq
              limit ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(filter.reason.map(|reason| reason.as_str()))
        .bind(filter.source.map(|source| source.as_str()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(suppression_from_row).collect()
    }

    async fn record_bounce(&self, event: &NewBounceEvent) -> StoreResult<BounceEvent> {
        let mut conn = self.pool.acquire().await?;
        insert_bounce(&mut conn, event).await
    }

    async fn count_bounces(
        &self,
        address_key: &str,
        kind: BounceKind,
        since: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut conn = self.pool.acquire().await?;
        count_bounces_in(&mut conn, address_key, kind, since).await
    }
}

#[async_trait]
impl SuppressionWrites for SqliteStore {
    async fn upsert_suppression(
        &self,
        entry: &NewSuppression,
        now: DateTime<Utc>,
    ) -> StoreResult<(Suppression, Upserted)> {
        let mut tx = self.begin_write().await?;
        let existing = read_suppression(&mut tx, &entry.address_key).await?;
        let outcome = Upserted::plan(existing.as_ref(), entry);
        if let (Upserted::Unchanged, Some(existing)) = (outcome, existing) {
            tx.rollback().await?;
            return Ok((existing, outcome));
        }
        let stored = write_suppression(&mut tx, entry, now).await?;
        tx.commit().await?;
        Ok((stored, outcome))
    }

    async fn remove_suppression(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Suppression>> {
        let mut tx = self.begin_write().await?;
        let seq = next_seq(&mut tx).await?;
        let row = sqlx::query(concat!(
            "update suppressions
                set deleted = 1, seq = ?2, updated_at = ?3
              where address_key = ?1 and deleted = 0
          returning ",
            suppression_columns!()
        ))
        .bind(address_key)
        .bind(seq)
        .bind(millis(now))
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(row) => {
                let tombstone = suppression_from_row(&row)?;
                tx.commit().await?;
                Ok(Some(tombstone))
            }
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    async fn record_bounces(
        &self,
        bounces: &[NewBounce],
        rules: &dyn BounceRules,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let mut suppressed = Vec::with_capacity(bounces.len());
        for bounce in bounces {
            insert_bounce(&mut tx, &bounce.event).await?;
            let key = &bounce.event.address_key;
            let live = read_suppression(&mut tx, key)
                .await?
                .filter(|entry| !entry.deleted);
            let soft_in_window = if bounce.event.kind == BounceKind::Soft {
                count_bounces_in(&mut tx, key, BounceKind::Soft, now - rules.soft_window()).await?
            } else {
                0
            };
            let plan = rules.plan(bounce, live.as_ref(), soft_in_window);
            if let BouncePlan::Suppress(entry) = &plan {
                write_suppression(&mut tx, entry, now).await?;
            }
            suppressed.push(plan.suppressed());
        }
        tx.commit().await?;
        Ok(suppressed)
    }
}
