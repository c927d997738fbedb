//! The Postgres store: the shared state of any number of mailvet replicas.

mod jobs;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::model::hour_of;
use super::{
    Backend, BounceEvent, BouncePlan, BounceRules, CachedVerification, ChangeFilter, NewBounce,
    NewBounceEvent, NewSuppression, Store, StoreResult, StoreSettings, Suppression,
    SuppressionWrites, Upserted, WindowStats, counts_map, parse_stored, stored_smtp_code,
};
use crate::secret::ExposeSecret;
use crate::vocab::{BounceKind, Diagnosis};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The columns of `suppressions`, in the order `suppression_from_row` reads.
macro_rules! suppression_columns {
    () => {
        "address_key, email, reason, source, smtp_code, enhanced_code, \
         diagnostic, mx_host, deleted, seq, created_at, updated_at"
    };
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Opens a pool on the database. Connections are made lazily, so a
    /// database that is down at start-up is reported by the first query.
    pub fn connect(settings: &StoreSettings) -> StoreResult<Self> {
        let options: PgConnectOptions = settings.url.expose_secret().parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        Ok(PgStore { pool })
    }

    /// The pool, for tests and tools that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn locked_suppression(
        tx: &mut Transaction<'static, Postgres>,
        address_key: &str,
    ) -> StoreResult<Option<Suppression>> {
        // The caller holds the sequence lock, so no other writer can change
        // this row until we commit.
        let row = sqlx::query(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = $1"
        ))
        .bind(address_key)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(suppression_from_row).transpose()
    }
}

/// Takes the next change sequence. The `update` locks the single counter
/// row until the transaction ends, which serialises suppression writers and
/// makes sequences commit in the order they were taken.
async fn next_seq(tx: &mut Transaction<'static, Postgres>) -> StoreResult<i64> {
    let seq: i64 =
        sqlx::query_scalar("update suppression_seq set last_seq = last_seq + 1 returning last_seq")
            .fetch_one(&mut **tx)
            .await?;
    Ok(seq)
}

/// Takes the sequence lock without taking a number: for writes that may
/// turn out to change nothing.
async fn lock_seq(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
    sqlx::query("select last_seq from suppression_seq for update")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a live entry for the address with a new change sequence. The
/// transaction must hold the sequence lock.
async fn write_suppression(
    tx: &mut Transaction<'static, Postgres>,
    entry: &NewSuppression,
    now: DateTime<Utc>,
) -> StoreResult<Suppression> {
    let seq = next_seq(tx).await?;
    // A re-added tombstone starts a new entry: its creation time is now.
    let row = sqlx::query(concat!(
        "insert into suppressions
                (address_key, email, reason, source, smtp_code, enhanced_code,
                 diagnostic, mx_host, deleted, seq, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $10, $10)
         on conflict (address_key) do update
            set email = excluded.email, reason = excluded.reason,
                source = excluded.source, smtp_code = excluded.smtp_code,
                enhanced_code = excluded.enhanced_code,
                diagnostic = excluded.diagnostic, mx_host = excluded.mx_host,
                seq = excluded.seq, updated_at = excluded.updated_at,
                created_at = case when suppressions.deleted
                                  then excluded.created_at
                                  else suppressions.created_at end,
                deleted = false
         returning ",
        suppression_columns!()
    ))
    .bind(&entry.address_key)
    .bind(&entry.email)
    .bind(entry.reason.as_str())
    .bind(entry.source.as_str())
    .bind(entry.evidence.smtp_code.map(i32::from))
    .bind(&entry.evidence.enhanced_code)
    .bind(&entry.evidence.diagnostic)
    .bind(&entry.evidence.mx_host)
    .bind(seq)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    suppression_from_row(&row)
}

async fn insert_bounce(
    conn: &mut PgConnection,
    event: &NewBounceEvent,
) -> StoreResult<BounceEvent> {
    let row = sqlx::query(
        "insert into bounce_events
                (address_key, email, kind, origin, smtp_code, enhanced_code,
                 diagnostic, mx_host, received_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         returning id, address_key, email, kind, origin, smtp_code, enhanced_code,
                   diagnostic, mx_host, received_at",
    )
    .bind(&event.address_key)
    .bind(&event.email)
    .bind(event.kind.as_str())
    .bind(event.origin.as_str())
    .bind(event.evidence.smtp_code.map(i32::from))
    .bind(&event.evidence.enhanced_code)
    .bind(&event.evidence.diagnostic)
    .bind(&event.evidence.mx_host)
    .bind(event.received_at)
    .fetch_one(&mut *conn)
    .await?;
    bounce_from_row(&row)
}

async fn count_bounces_in(
    conn: &mut PgConnection,
    address_key: &str,
    kind: BounceKind,
    since: DateTime<Utc>,
) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "select count(*) from bounce_events
          where address_key = $1 and kind = $2 and received_at >= $3",
    )
    .bind(address_key)
    .bind(kind.as_str())
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn suppression_from_row(row: &PgRow) -> StoreResult<Suppression> {
    Ok(Suppression {
        address_key: row.try_get("address_key")?,
        email: row.try_get("email")?,
        reason: parse_stored("reason", row.try_get("reason")?)?,
        source: parse_stored("source", row.try_get("source")?)?,
        evidence: evidence_from_row(row)?,
        deleted: row.try_get("deleted")?,
        seq: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn evidence_from_row(row: &PgRow) -> StoreResult<Diagnosis> {
    Ok(Diagnosis {
        smtp_code: stored_smtp_code(row.try_get::<Option<i32>, _>("smtp_code")?.map(i64::from))?,
        enhanced_code: row.try_get("enhanced_code")?,
        diagnostic: row.try_get("diagnostic")?,
        mx_host: row.try_get("mx_host")?,
    })
}

fn bounce_from_row(row: &PgRow) -> StoreResult<BounceEvent> {
    Ok(BounceEvent {
        id: row.try_get("id")?,
        address_key: row.try_get("address_key")?,
        email: row.try_get("email")?,
        kind: parse_stored("kind", row.try_get("kind")?)?,
        origin: parse_stored("origin", row.try_get("origin")?)?,
        evidence: evidence_from_row(row)?,
        received_at: row.try_get("received_at")?,
    })
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> StoreResult<()> {
        // The migrator takes an advisory lock, so replicas starting together
        // apply each migration once.
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
              where address_key = $1 and expires_at > $2",
        )
        .bind(address_key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(CachedVerification {
            address_key: row.try_get("address_key")?,
            email: row.try_get("email")?,
            status: parse_stored("status", row.try_get("status")?)?,
            reason: parse_stored("reason", row.try_get("reason")?)?,
            result: row.try_get("result")?,
            checked_at: row.try_get("checked_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    async fn record_verifications(&self, entries: &[CachedVerification]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<(DateTime<Utc>, &'static str), i64> =
            std::collections::BTreeMap::new();
        let mut tx = self.pool.begin().await?;
        // One lock order for every writer: no deadlocks between batches.
        let mut ordered: Vec<&CachedVerification> = entries.iter().collect();
        ordered.sort_by(|a, b| a.address_key.cmp(&b.address_key));
        for entry in ordered {
            sqlx::query(
                "insert into verifications
                        (address_key, email, status, reason, result, checked_at, expires_at)
                 values ($1, $2, $3, $4, $5, $6, $7)
                 on conflict (address_key) do update
                    set email = excluded.email, status = excluded.status,
                        reason = excluded.reason, result = excluded.result,
                        checked_at = excluded.checked_at, expires_at = excluded.expires_at",
            )
            .bind(&entry.address_key)
            .bind(&entry.email)
            .bind(entry.status.as_str())
            .bind(entry.reason.as_str())
            .bind(&entry.result)
            .bind(entry.checked_at)
            .bind(entry.expires_at)
            .execute(&mut *tx)
            .await?;
            *counts
                .entry((hour_of(entry.checked_at), entry.status.as_str()))
                .or_default() += 1;
        }
        for ((hour, status), count) in counts {
            sqlx::query(
                "insert into verification_counts (hour, status, count) values ($1, $2, $3)
                 on conflict (hour, status) do update set count = verification_counts.count + excluded.count",
            )
            .bind(hour)
            .bind(status)
            .bind(count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stats(&self, since: DateTime<Utc>) -> StoreResult<WindowStats> {
        // Hourly buckets: the window starts at the hour `since` falls in.
        let verifications: Vec<(String, i64)> = sqlx::query_as(
            "select status, sum(count)::bigint from verification_counts where hour >= $1 group by status",
        )
        .bind(hour_of(since))
        .fetch_all(&self.pool)
        .await?;
        let by_reason: Vec<(String, i64)> = sqlx::query_as(
            "select reason, count(*) from suppressions where not deleted and created_at >= $1 group by reason",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let by_source: Vec<(String, i64)> = sqlx::query_as(
            "select source, count(*) from suppressions where not deleted and created_at >= $1 group by source",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let bounces: Vec<(String, i64)> = sqlx::query_as(
            "select kind, count(*) from bounce_events where received_at >= $1 group by kind",
        )
        .bind(since)
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
        let done = sqlx::query("delete from verifications where expires_at <= $1")
            .bind(now)
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
            " from suppressions where address_key = $1 and not deleted"
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
              where seq > $1
                and ($3::text is null or reason = $3)
                and ($4::text is null or source = $4)
              order by seq
              limit $2"
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
impl SuppressionWrites for PgStore {
    async fn upsert_suppression(
        &self,
        entry: &NewSuppression,
        now: DateTime<Utc>,
    ) -> StoreResult<(Suppression, Upserted)> {
        let mut tx = self.pool.begin().await?;
        lock_seq(&mut tx).await?;
        let existing = Self::locked_suppression(&mut tx, &entry.address_key).await?;
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
        let mut tx = self.pool.begin().await?;
        let seq = next_seq(&mut tx).await?;
        let row = sqlx::query(concat!(
            "update suppressions
                set deleted = true, seq = $2, updated_at = $3
              where address_key = $1 and not deleted
          returning ",
            suppression_columns!()
        ))
        .bind(address_key)
        .bind(seq)
        .bind(now)
        .fetch_optional(&mut *tx)
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
        let mut tx = self.pool.begin().await?;
        lock_seq(&mut tx).await?;
        let mut suppressed = Vec::with_capacity(bounces.len());
        for bounce in bounces {
            insert_bounce(&mut tx, &bounce.event).await?;
            let key = &bounce.event.address_key;
            let live = Self::locked_suppression(&mut tx, key)
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
