//! The Postgres store: the shared state of any number of mailvet replicas.
//!
//! Here is the Postgres SQL; the steps around it and the reading of rows
//! are in `store::shared`.

mod cluster;
mod confirmations;
mod jobs;
mod patterns;

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::shared::jobs::ActiveJob;
use super::shared::rows::{
    BounceRow, SuppressionRow, VerificationRow, bounce_columns, evidence_json, stored_count,
    suppression_columns, verification_columns,
};
use super::shared::{self, Commit, DailyQueries, SqlBackend, StatsQueries, StoreStatements};
use super::{
    Backend, BounceEvent, CachedVerification, ChangeFilter, DayStats, NewBounceEvent,
    NewSuppression, RemovalFilter, Store, StoreGauges, StoreResult, StoreSettings, Suppression,
    WindowStats,
};
use crate::secret::ExposeSecret;
use crate::vocab::BounceKind;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    coordination: std::sync::Arc<cluster::PgCoordination>,
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
        Ok(PgStore {
            coordination: std::sync::Arc::new(cluster::PgCoordination::new(pool.clone())),
            pool,
        })
    }

    /// The pool, for tests and tools that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

type PgTx = Transaction<'static, Postgres>;

#[async_trait]
impl SqlBackend for PgStore {
    type Conn = PgConnection;
    type Tx = PgTx;

    const STATS: StatsQueries = StatsQueries {
        verifications_by_status: "select status, sum(count)::bigint from verification_counts
                                   where hour >= $1 group by status",
        suppressions_by_reason: "select reason, count(*) from suppressions
                                  where not deleted and created_at >= $1 group by reason",
        suppressions_by_source: "select source, count(*) from suppressions
                                  where not deleted and created_at >= $1 group by source",
        bounces_by_kind: "select kind, count(*) from bounce_events
                           where received_at >= $1 group by kind",
    };

    const DAILY: DailyQueries = DailyQueries {
        verifications_by_status: "select floor(extract(epoch from hour) / 86400)::bigint, status,
                                         sum(count)::bigint
                                    from verification_counts
                                   where hour >= $1 group by 1, 2",
        bounces_by_kind: "select floor(extract(epoch from received_at) / 86400)::bigint, kind,
                                 count(*)
                            from bounce_events
                           where received_at >= $1 group by 1, 2",
        // Additions by creation day (removed entries included), removals
        // by the day of the tombstone.
        suppressions_changed: "select floor(extract(epoch from created_at) / 86400)::bigint,
                                      'added'::text, count(*)
                                 from suppressions
                                where created_at >= $1 group by 1
                               union all
                               select floor(extract(epoch from updated_at) / 86400)::bigint,
                                      'removed'::text, count(*)
                                 from suppressions
                                where deleted and updated_at >= $1 group by 1",
    };

    async fn begin_write(&self) -> StoreResult<PgTx> {
        Ok(self.pool.begin().await?)
    }

    async fn count_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(sql)
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn count_daily_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        Ok(sqlx::query_as(sql)
            .bind(since)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn active_jobs(&self) -> StoreResult<Vec<ActiveJob>> {
        let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
            "select id, large_domains from jobs where status in ('queued', 'running') \
             order by created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, large)| ActiveJob::new(id, large))
            .collect())
    }
}

#[async_trait]
impl Commit for PgTx {
    async fn commit(self) -> StoreResult<()> {
        Ok(Transaction::commit(self).await?)
    }

    async fn rollback(self) -> StoreResult<()> {
        Ok(Transaction::rollback(self).await?)
    }
}

#[async_trait]
impl StoreStatements for PgConnection {
    async fn lock_seq(&mut self) -> StoreResult<()> {
        sqlx::query("select last_seq from suppression_seq for update")
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn next_seq(&mut self) -> StoreResult<i64> {
        // The `update` locks the single counter row until the transaction
        // ends, which serialises suppression writers and makes sequences
        // commit in the order they were taken.
        Ok(sqlx::query_scalar(
            "update suppression_seq set last_seq = last_seq + 1 returning last_seq",
        )
        .fetch_one(&mut *self)
        .await?)
    }

    async fn next_seqs(&mut self, count: i64) -> StoreResult<i64> {
        let last: i64 = sqlx::query_scalar(
            "update suppression_seq set last_seq = last_seq + $1 returning last_seq",
        )
        .bind(count)
        .fetch_one(&mut *self)
        .await?;
        Ok(last - count + 1)
    }

    async fn live_keys_among(&mut self, keys: &[String]) -> StoreResult<HashSet<String>> {
        let live: Vec<String> = sqlx::query_scalar(
            "select address_key from suppressions
              where address_key = any($1) and not deleted",
        )
        // Planned with its keys (see `suppressions_among`).
        .persistent(false)
        .bind(keys)
        .fetch_all(&mut *self)
        .await?;
        Ok(live.into_iter().collect())
    }

    async fn live_keys_matching(&mut self, filter: &RemovalFilter) -> StoreResult<Vec<String>> {
        // Live entries from one source, put on the list within the span.
        Ok(sqlx::query_scalar(
            "select address_key from suppressions
              where not deleted
                and source = $1
                and created_at >= $2
                and ($3::timestamptz is null or created_at < $3)
                and ($4::text is null or reason = $4)
              order by address_key",
        )
        .bind(filter.source.as_str())
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.reason.map(|reason| reason.as_str()))
        .fetch_all(&mut *self)
        .await?)
    }

    async fn forget_verification(&mut self, address_key: &str) -> StoreResult<()> {
        sqlx::query("delete from verifications where address_key = $1")
            .bind(address_key)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn suppression_entry(&mut self, address_key: &str) -> StoreResult<Option<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = $1"
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
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "insert into suppressions
                    (address_key, email, reason, source, smtp_code, enhanced_code,
                     diagnostic, mx_host, evidence, deleted, seq, created_at, updated_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $11::jsonb, false, $9, $10, $10)
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
                    deleted = false
             returning ",
            suppression_columns!()
        ))
        .bind(&entry.address_key)
        .bind(&entry.email)
        .bind(entry.reason.as_str())
        .bind(entry.source.as_str())
        .bind(diagnosis.smtp_code.map(i32::from))
        .bind(&diagnosis.enhanced_code)
        .bind(&diagnosis.diagnostic)
        .bind(&diagnosis.mx_host)
        .bind(seq)
        .bind(now)
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
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "update suppressions
                set deleted = true, seq = $2, updated_at = $3
              where address_key = $1 and not deleted
          returning ",
            suppression_columns!()
        ))
        .bind(address_key)
        .bind(seq)
        .bind(now)
        .fetch_optional(&mut *self)
        .await?
        .map(Suppression::try_from)
        .transpose()
    }

    async fn insert_bounce(&mut self, event: &NewBounceEvent) -> StoreResult<BounceEvent> {
        sqlx::query_as::<_, BounceRow<Postgres>>(concat!(
            "insert into bounce_events
                    (address_key, email, kind, origin, smtp_code, enhanced_code,
                     diagnostic, mx_host, received_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             returning ",
            bounce_columns!()
        ))
        .bind(&event.address_key)
        .bind(&event.email)
        .bind(event.kind.as_str())
        .bind(event.origin.as_str())
        .bind(event.evidence.smtp_code.map(i32::from))
        .bind(&event.evidence.enhanced_code)
        .bind(&event.evidence.diagnostic)
        .bind(&event.evidence.mx_host)
        .bind(event.received_at)
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
              where address_key = $1 and kind = $2 and received_at >= $3",
        )
        .bind(address_key)
        .bind(kind.as_str())
        .bind(since)
        .fetch_one(&mut *self)
        .await?;
        Ok(stored_count(count))
    }

    async fn put_verifications(&mut self, entries: &[&CachedVerification]) -> StoreResult<()> {
        // One statement for the lot. The rows are written, and so locked,
        // in key order: the caller passes them so, and `order by 1` makes
        // the statement keep to it.
        sqlx::query(
            "insert into verifications
                    (address_key, email, status, reason, result, checked_at, expires_at)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                  $5::jsonb[], $6::timestamptz[], $7::timestamptz[])
             order by 1
             on conflict (address_key) do update
                set email = excluded.email, status = excluded.status,
                    reason = excluded.reason, result = excluded.result,
                    checked_at = excluded.checked_at, expires_at = excluded.expires_at",
        )
        .bind(column(entries, |entry| entry.address_key.as_str()))
        .bind(column(entries, |entry| entry.email.as_str()))
        .bind(column(entries, |entry| entry.status.as_str()))
        .bind(column(entries, |entry| entry.reason.as_str()))
        .bind(column(entries, |entry| &entry.result))
        .bind(column(entries, |entry| entry.checked_at))
        .bind(column(entries, |entry| entry.expires_at))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn add_verification_count(
        &mut self,
        hour: DateTime<Utc>,
        status: &str,
        count: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "insert into verification_counts (hour, status, count) values ($1, $2, $3)
             on conflict (hour, status) do update
                set count = verification_counts.count + excluded.count",
        )
        .bind(hour)
        .bind(status)
        .bind(count)
        .execute(&mut *self)
        .await?;
        Ok(())
    }
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

    fn coordination(&self) -> Option<std::sync::Arc<dyn super::cluster::Coordination>> {
        Some(self.coordination.clone())
    }

    async fn cached_verification(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<CachedVerification>> {
        sqlx::query_as::<_, VerificationRow<Postgres>>(concat!(
            "select ",
            verification_columns!(),
            " from verifications where address_key = $1 and expires_at > $2"
        ))
        .bind(address_key)
        .bind(now)
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
        sqlx::query_as::<_, VerificationRow<Postgres>>(concat!(
            "select ",
            verification_columns!(),
            " from verifications where address_key = any($1) and expires_at > $2"
        ))
        // Planned with its keys (see `suppressions_among`).
        .persistent(false)
        .bind(address_keys)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(CachedVerification::try_from)
        .collect()
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
            sqlx::query_scalar("select count(*) from suppressions where not deleted")
                .fetch_one(&self.pool)
                .await?;
        // Active jobs are few; `jobs_active` finds them.
        let jobs: Vec<(String, i64, i64)> = sqlx::query_as(
            "select status, count(*), coalesce(sum(total - processed), 0)::bigint
               from jobs
              where status in ('queued', 'running')
              group by status",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(StoreGauges::from_counts(suppressions, jobs))
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
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = $1 and not deleted"
        ))
        .bind(address_key)
        .fetch_optional(&self.pool)
        .await?
        .map(Suppression::try_from)
        .transpose()
    }

    async fn suppressions_among(&self, address_keys: &[String]) -> StoreResult<Vec<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions where address_key = any($1) and not deleted"
        ))
        // Planned with its keys, each time: a prepared statement's generic
        // plan, made while the table was small, reads the whole table once
        // it has grown (the suppression list read in full for every domain
        // group of a job, a third of Postgres's CPU time in the scale
        // benchmark, until `analyze` ran).
        .persistent(false)
        .bind(address_keys)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Suppression::try_from)
        .collect()
    }

    async fn suppression_changes(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &ChangeFilter,
    ) -> StoreResult<Vec<Suppression>> {
        sqlx::query_as::<_, SuppressionRow<Postgres>>(concat!(
            "select ",
            suppression_columns!(),
            " from suppressions
              where seq > $1
                and ($3::text is null or reason = $3)
                and ($4::text is null or source = $4)
                and ($5::timestamptz is null or updated_at >= $5)
                and ($6::timestamptz is null or updated_at < $6)
              order by seq
              limit $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .bind(filter.reason.map(|reason| reason.as_str()))
        .bind(filter.source.map(|source| source.as_str()))
        .bind(filter.since)
        .bind(filter.until)
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

/// One field of each verdict, as an array parameter.
fn column<'a, T>(
    entries: &[&'a CachedVerification],
    field: impl Fn(&'a CachedVerification) -> T,
) -> Vec<T> {
    entries.iter().map(|entry| field(entry)).collect()
}
