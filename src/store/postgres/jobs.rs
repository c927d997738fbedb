//! Bulk jobs on Postgres. Any number of replicas share a job's work:
//! chunks are claimed with `FOR UPDATE SKIP LOCKED` and leased.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgConnection, PgPool};
use uuid::Uuid;

use super::PgStore;
use crate::store::jobs::{
    ChunkLimit, ClaimedChunk, ClaimedItem, ItemOutcome, Job, JobResultRow, JobStore, NewJobItem,
    StatusCounts,
};
use crate::store::shared;
use crate::store::shared::jobs::{
    Domains, JobStatements, Retried, Verified, int_param, large_domains_text, limit_param,
};
use crate::store::shared::rows::{
    ClaimedItemRow, JobRow, ResultRow, claimed_item_columns, job_columns, parse_stored,
};
use crate::store::{StoreError, StoreResult};
use crate::vocab::Status;

/// Uploads of at least this many addresses are followed by an `analyze`
/// of the job items.
const ANALYZE_UPLOADS_OF: u64 = 10_000;

#[async_trait]
impl JobStatements for PgConnection {
    async fn claim_items(
        &mut self,
        id: Uuid,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        from: Domains<'_>,
    ) -> StoreResult<Vec<ClaimedItem>> {
        // Items locked by another replica's claim are skipped, not waited
        // for. Both statements read `job_items_todo` in its order. The
        // claimed `seq`s are collected first and the update finds them by
        // primary key, whatever the table's statistics say (see
        // `record_results`). Of the addresses picked for the first
        // domains, those past the `$6`th domain are left as they were
        // (their locks end with the transaction).
        let statement = match from {
            Domains::One(_) => concat!(
                "update job_items set state = 'claimed', available_at = $4, claimed_by = $5 \
                 where job_id = $1 and seq = any(array( \
                     select seq from job_items \
                     where job_id = $1 and state <> 'done' and available_at <= $2 \
                     and domain = $6 order by seq limit $3 for update skip locked)) \
                 returning ",
                claimed_item_columns!()
            ),
            Domains::First(_) => concat!(
                "with picked as ( \
                     select seq, domain from job_items \
                     where job_id = $1 and state <> 'done' and available_at <= $2 \
                     order by domain, seq limit $3 for update skip locked) \
                 update job_items set state = 'claimed', available_at = $4, claimed_by = $5 \
                 where job_id = $1 and seq = any(array( \
                     select seq from picked where domain in ( \
                         select distinct domain from picked order by domain limit $6))) \
                 returning ",
                claimed_item_columns!()
            ),
        };
        let query = sqlx::query_as::<_, ClaimedItemRow<Postgres>>(statement)
            .bind(id)
            .bind(now)
            .bind(limit_param(limit))
            .bind(lease_until)
            .bind(worker);
        let rows = match from {
            Domains::One(domain) => query.bind(domain),
            Domains::First(domains) => query.bind(limit_param(domains)),
        }
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(ClaimedItem::from).collect())
    }

    async fn mark_running(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "update jobs set status = 'running', started_at = coalesce(started_at, $2), \
                 updated_at = $2 where id = $1 and status = 'queued'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn set_large_domains(&mut self, id: Uuid, domains: &[String]) -> StoreResult<()> {
        sqlx::query("update jobs set large_domains = $2 where id = $1")
            .bind(id)
            .bind(large_domains_text(domains))
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn record_results(
        &mut self,
        id: Uuid,
        worker: &str,
        verified: &[Verified<'_>],
    ) -> StoreResult<Vec<Status>> {
        // One statement for the whole chunk, its columns as arrays. Each
        // row takes its values by its place in `$2`, with no join to plan:
        // a freshly uploaded job's statistics (taken while every item was
        // pending) say no item is claimed, and joined to `unnest(…)` the
        // planner nested the loop the wrong way round and read the whole
        // array once per row (a second per statement on a 48,000-address
        // job, with every replica's workers waiting on it).
        let seqs: Vec<i64> = verified.iter().map(|item| int_param(item.seq)).collect();
        let statuses: Vec<&str> = verified.iter().map(|item| item.status.as_str()).collect();
        let results: Vec<&str> = verified.iter().map(|item| item.result).collect();
        let recorded: Vec<String> = sqlx::query_scalar(
            "update job_items as i set state = 'done', \
                 status = ($3::text[])[array_position($2::bigint[], i.seq)], \
                 result = ($4::text[])[array_position($2::bigint[], i.seq)], \
                 claimed_by = null \
             where i.job_id = $1 and i.seq = any($2) \
                 and i.state = 'claimed' and i.claimed_by = $5 \
             returning i.status",
        )
        .bind(id)
        .bind(&seqs)
        .bind(&statuses)
        .bind(&results)
        .bind(worker)
        .fetch_all(&mut *self)
        .await?;
        recorded
            .iter()
            .map(|status| parse_stored("status", status))
            .collect()
    }

    async fn put_back(&mut self, id: Uuid, worker: &str, retried: &[Retried]) -> StoreResult<()> {
        let seqs: Vec<i64> = retried.iter().map(|item| int_param(item.seq)).collect();
        let times: Vec<DateTime<Utc>> = retried.iter().map(|item| item.at).collect();
        let attempts: Vec<i32> = retried
            .iter()
            .map(|item| i32::from(item.counts_as_attempt))
            .collect();
        // By place in `$2`, as `record_results` does.
        sqlx::query(
            "update job_items as i set state = 'pending', \
                 available_at = ($3::timestamptz[])[array_position($2::bigint[], i.seq)], \
                 attempts = i.attempts + ($4::int[])[array_position($2::bigint[], i.seq)], \
                 claimed_by = null \
             where i.job_id = $1 and i.seq = any($2) \
                 and i.state = 'claimed' and i.claimed_by = $5",
        )
        .bind(id)
        .bind(&seqs)
        .bind(&times)
        .bind(&attempts)
        .bind(worker)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn add_to_counters(
        &mut self,
        id: Uuid,
        counts: &StatusCounts,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "update jobs set processed = processed + $2, deliverable = deliverable + $3, \
                 undeliverable = undeliverable + $4, risky = risky + $5, unknown = unknown + $6, \
                 updated_at = $7 where id = $1",
        )
        .bind(id)
        .bind(int_param(counts.total()))
        .bind(int_param(counts.deliverable))
        .bind(int_param(counts.undeliverable))
        .bind(int_param(counts.risky))
        .bind(int_param(counts.unknown))
        .bind(now)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn complete_if_done(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "update jobs set status = 'completed', completed_at = $2, \
                 webhook_due_at = case when webhook_url is not null then $2 end \
             where id = $1 and status in ('queued', 'running') and processed >= total \
             returning ",
            job_columns!()
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *self)
        .await?
        .map(Job::try_from)
        .transpose()
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn create_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query(
            "insert into jobs (id, status, created_at, updated_at) values ($1, 'uploading', $2, $2)",
        )
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn add_job_items(
        &self,
        id: Uuid,
        first_seq: u64,
        items: &[NewJobItem],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let rows = copy_rows(id, first_seq, items, now)?;
        // On a task of its own, so that a caller that goes away (a client
        // that disconnects) cannot stop the COPY halfway through its
        // exchange and hand a confused connection back to the pool.
        let pool = self.pool().clone();
        tokio::spawn(async move { copy_in(&pool, id, &rows).await })
            .await
            .map_err(|join| StoreError::Database(sqlx::Error::Io(std::io::Error::other(join))))?
    }

    async fn seal_job(
        &self,
        id: Uuid,
        total: u64,
        webhook_url: Option<&str>,
        large_domains: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        // An empty job is complete at once.
        let job: Job = sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "update jobs set total = $2, webhook_url = $3, updated_at = $4, \
                 large_domains = $5, \
                 status = case when $2 = 0 then 'completed' else 'queued' end, \
                 completed_at = case when $2 = 0 then $4 end, \
                 webhook_due_at = case when $2 = 0 and $3::text is not null then $4 end \
             where id = $1 and status = 'uploading' returning ",
            job_columns!()
        ))
        .bind(id)
        .bind(int_param(total))
        .bind(webhook_url)
        .bind(now)
        .bind(large_domains_text(large_domains))
        .fetch_one(self.pool())
        .await?
        .try_into()?;
        // A large upload's items are analyzed at once. Autovacuum analyzes
        // the table later, and until then its statistics, taken before the
        // job or while the table was small, say the job holds a few items:
        // the planner then reads all of the job's items to record each
        // group's results (a bitmap scan on `job_id` alone, up to 30 ms a
        // group on a 48,000-address job). `analyze` samples a bounded
        // number of rows, so its cost does not grow with the table.
        if total >= ANALYZE_UPLOADS_OF
            && let Err(err) = sqlx::query("analyze job_items").execute(self.pool()).await
        {
            tracing::warn!(error = %err, "analyzing the job items after an upload failed");
        }
        Ok(job)
    }

    async fn discard_job(&self, id: Uuid) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar("select id from jobs where id = $1 for update")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        delete_locked(tx, &ids).await?;
        Ok(())
    }

    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = $1 and status <> 'uploading'"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn recent_jobs(&self, limit: u32) -> StoreResult<Vec<Job>> {
        sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "select ",
            job_columns!(),
            " from jobs where status <> 'uploading' order by created_at desc, id limit $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(Job::try_from)
        .collect()
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        let cancelled = sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "update jobs set status = 'cancelled', completed_at = $2, updated_at = $2, \
                 webhook_due_at = case when webhook_url is not null then $2 end \
             where id = $1 and status in ('queued', 'running') returning ",
            job_columns!()
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        match cancelled {
            Some(row) => row.try_into().map(Some),
            // Finished already, or unknown: the job as it is.
            None => self.job(id).await,
        }
    }

    async fn claim_job_items(
        &self,
        worker: &str,
        limit: ChunkLimit,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<ClaimedChunk>> {
        shared::jobs::claim_job_items(self, worker, limit, now, lease_until).await
    }

    async fn finish_job_items(
        &self,
        worker: &str,
        id: Uuid,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Job>> {
        shared::jobs::finish_job_items(self, worker, id, outcomes, now).await
    }

    async fn renew_job_claims(&self, worker: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        let renewed = sqlx::query(
            "update job_items set available_at = $2 \
             where state = 'claimed' and claimed_by = $1",
        )
        .bind(worker)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(renewed.rows_affected())
    }

    async fn release_job_items(&self, worker: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let released = sqlx::query(
            "update job_items set state = 'pending', available_at = $2, claimed_by = null \
             where state = 'claimed' and claimed_by = $1",
        )
        .bind(worker)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(released.rows_affected())
    }

    async fn job_results(
        &self,
        id: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<JobResultRow>> {
        let rows: Vec<ResultRow> = sqlx::query_as(
            "select seq, result from job_items \
             where job_id = $1 and seq > $2 and state = 'done' order by seq limit $3",
        )
        .bind(id)
        .bind(after.map_or(-1, int_param))
        .bind(limit_param(limit))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(JobResultRow::from).collect())
    }

    async fn claim_due_webhook(
        &self,
        now: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow<Postgres>>(concat!(
            "update jobs set webhook_due_at = $2 where id = ( \
                 select id from jobs where webhook_due_at <= $1 \
                 order by webhook_due_at limit 1 for update skip locked) \
             returning ",
            job_columns!()
        ))
        .bind(now)
        .bind(retry_at)
        .fetch_optional(self.pool())
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn webhook_attempted(&self, id: Uuid, next: Option<DateTime<Utc>>) -> StoreResult<()> {
        sqlx::query(
            "update jobs set webhook_attempts = webhook_attempts + 1, webhook_due_at = $2 \
             where id = $1",
        )
        .bind(id)
        .bind(next)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn purge_jobs(
        &self,
        before: DateTime<Utc>,
        stale_upload: DateTime<Utc>,
    ) -> StoreResult<u64> {
        // Locked in `id` order, so that two replicas purging at once
        // cannot deadlock.
        let mut tx = self.pool().begin().await?;
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "select id from jobs where (completed_at < $1 and webhook_due_at is null) \
                 or (status = 'uploading' and created_at < $2) \
             order by id for update",
        )
        .bind(before)
        .bind(stale_upload)
        .fetch_all(&mut *tx)
        .await?;
        delete_locked(tx, &ids).await
    }
}

/// Deletes the jobs `ids`, locked (`for update`) in `tx`, with their
/// items, and commits. Items have no foreign key (see the migration
/// `job_items_unchecked_job`): the lock waits for an upload still writing
/// to one of the jobs, and the items are deleted by a later statement,
/// which sees whatever that upload wrote.
async fn delete_locked(mut tx: sqlx::Transaction<'_, Postgres>, ids: &[Uuid]) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    sqlx::query("delete from job_items where job_id = any($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("delete from jobs where id = any($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected())
}

/// The statement that takes uploaded addresses in, in one transaction.
const COPY_ITEMS: &str = "copy job_items (job_id, seq, email, domain, available_at) \
                          from stdin (format binary)";

/// Sends `rows` (COPY binary data) to [`COPY_ITEMS`] for the job `id`:
/// every row is written, or none. The job is locked first, and only while
/// it is still uploading, so that it cannot be deleted while its items go
/// in (they have no foreign key, see [`delete_locked`]).
async fn copy_in(pool: &PgPool, id: Uuid, rows: &[u8]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    let uploading: Option<i32> = sqlx::query_scalar(
        "select 1 from jobs where id = $1 and status = 'uploading' for key share",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if uploading.is_none() {
        return Err(StoreError::Database(sqlx::Error::RowNotFound));
    }
    let mut copy = tx.copy_in_raw(COPY_ITEMS).await?;
    if let Err(err) = copy.send(rows).await {
        // Best effort: the connection is likely gone already.
        let _ = copy.abort("sending the rows failed").await;
        return Err(err.into());
    }
    copy.finish().await?;
    tx.commit().await?;
    Ok(())
}

/// Microseconds from the Unix epoch to Postgres's (2000-01-01 UTC).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// `job_items` rows numbered from `first_seq`, in COPY's binary format:
/// a header, then per row the field count and each field as its length
/// and its bytes (`uuid` 16 bytes, `bigint` and `timestamptz` 8 bytes big
/// endian, the latter in microseconds since 2000, text as UTF-8), then a
/// trailer. Nothing is escaped: an address arrives byte for byte, whatever
/// it holds.
fn copy_rows(
    id: Uuid,
    first_seq: u64,
    items: &[NewJobItem],
    now: DateTime<Utc>,
) -> StoreResult<Vec<u8>> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    const FIELDS: i16 = 5;
    let available_at = now.timestamp_micros() - POSTGRES_EPOCH_MICROS;
    let text_bytes: usize = items
        .iter()
        .map(|item| item.email.len() + item.domain.len())
        .sum();
    // Per row: the field count, five lengths, 16 + 8 + 8 fixed bytes.
    let mut rows = Vec::with_capacity(SIGNATURE.len() + 10 + items.len() * 54 + text_bytes);
    rows.extend_from_slice(SIGNATURE);
    rows.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    rows.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    for (offset, item) in (0u64..).zip(items) {
        rows.extend_from_slice(&FIELDS.to_be_bytes());
        field(&mut rows, id.as_bytes())?;
        field(&mut rows, &int_param(first_seq + offset).to_be_bytes())?;
        field(&mut rows, item.email.as_bytes())?;
        field(&mut rows, item.domain.as_bytes())?;
        field(&mut rows, &available_at.to_be_bytes())?;
    }
    rows.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(rows)
}

/// One field of a binary COPY row: its length, then its bytes.
fn field(rows: &mut Vec<u8>, bytes: &[u8]) -> StoreResult<()> {
    let len = i32::try_from(bytes.len()).map_err(|_| {
        StoreError::Database(sqlx::Error::Encode(
            "an uploaded address is too long to store".into(),
        ))
    })?;
    rows.extend_from_slice(&len.to_be_bytes());
    rows.extend_from_slice(bytes);
    Ok(())
}
