//! Bulk jobs on SQLite, for a single mailvet process. Write transactions
//! hold SQLite's single write lock, so claims never overlap.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqliteConnection};
use uuid::Uuid;

use super::{SqliteStore, millis};
use crate::store::StoreResult;
use crate::store::jobs::{
    ChunkLimit, ClaimedChunk, ClaimedItem, ItemOutcome, Job, JobResultRow, JobStore, NewJobItem,
    StatusCounts,
};
use crate::store::shared::jobs::{
    Domains, JobStatements, Retried, Verified, int_param, large_domains_text, limit_param,
};
use crate::store::shared::rows::{
    ClaimedItemRow, JobRow, ResultRow, claimed_item_columns, job_columns,
};
use crate::store::shared::{self, Commit, SqlBackend};
use crate::vocab::Status;

/// Rows per multi-row insert: 5 parameters each, well under SQLite's limit.
const INSERT_ROWS: usize = 500;

#[async_trait]
impl JobStatements for SqliteConnection {
    async fn claim_items(
        &mut self,
        id: Uuid,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        from: Domains<'_>,
    ) -> StoreResult<Vec<ClaimedItem>> {
        // Both statements read `job_items_todo` in its order. Of the
        // addresses picked for the first domains, those past the `?6`th
        // domain are left as they were.
        let statement = match from {
            Domains::One(_) => concat!(
                "update job_items set state = 'claimed', available_at = ?4, claimed_by = ?5 \
                 where job_id = ?1 and seq in ( \
                     select seq from job_items \
                     where job_id = ?1 and state <> 'done' and available_at <= ?2 \
                     and domain = ?6 order by seq limit ?3) \
                 returning ",
                claimed_item_columns!()
            ),
            Domains::First(_) => concat!(
                "with picked as ( \
                     select seq, domain from job_items \
                     where job_id = ?1 and state <> 'done' and available_at <= ?2 \
                     order by domain, seq limit ?3) \
                 update job_items set state = 'claimed', available_at = ?4, claimed_by = ?5 \
                 where job_id = ?1 and seq in ( \
                     select seq from picked where domain in ( \
                         select distinct domain from picked order by domain limit ?6)) \
                 returning ",
                claimed_item_columns!()
            ),
        };
        let query = sqlx::query_as::<_, ClaimedItemRow<Sqlite>>(statement)
            .bind(id.to_string())
            .bind(millis(now))
            .bind(limit_param(limit))
            .bind(millis(lease_until))
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
            "update jobs set status = 'running', started_at = coalesce(started_at, ?2), \
                 updated_at = ?2 where id = ?1 and status = 'queued'",
        )
        .bind(id.to_string())
        .bind(millis(now))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn set_large_domains(&mut self, id: Uuid, domains: &[String]) -> StoreResult<()> {
        sqlx::query("update jobs set large_domains = ?2 where id = ?1")
            .bind(id.to_string())
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
        // A statement an address: SQLite has no arrays to bind.
        let id = id.to_string();
        let mut recorded = Vec::with_capacity(verified.len());
        for item in verified {
            let updated = sqlx::query(
                "update job_items set state = 'done', status = ?3, result = ?4, \
                     claimed_by = null \
                 where job_id = ?1 and seq = ?2 and state = 'claimed' and claimed_by = ?5",
            )
            .bind(id.as_str())
            .bind(int_param(item.seq))
            .bind(item.status.as_str())
            .bind(item.result)
            .bind(worker)
            .execute(&mut *self)
            .await?;
            if updated.rows_affected() == 1 {
                recorded.push(item.status);
            }
        }
        Ok(recorded)
    }

    async fn put_back(&mut self, id: Uuid, worker: &str, retried: &[Retried]) -> StoreResult<()> {
        let id = id.to_string();
        for item in retried {
            sqlx::query(
                "update job_items set state = 'pending', available_at = ?3, \
                     attempts = attempts + ?4, claimed_by = null \
                 where job_id = ?1 and seq = ?2 and state = 'claimed' and claimed_by = ?5",
            )
            .bind(id.as_str())
            .bind(int_param(item.seq))
            .bind(millis(item.at))
            .bind(i64::from(item.counts_as_attempt))
            .bind(worker)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    async fn add_to_counters(
        &mut self,
        id: Uuid,
        counts: &StatusCounts,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "update jobs set processed = processed + ?2, deliverable = deliverable + ?3, \
                 undeliverable = undeliverable + ?4, risky = risky + ?5, unknown = unknown + ?6, \
                 updated_at = ?7 where id = ?1",
        )
        .bind(id.to_string())
        .bind(int_param(counts.total()))
        .bind(int_param(counts.deliverable))
        .bind(int_param(counts.undeliverable))
        .bind(int_param(counts.risky))
        .bind(int_param(counts.unknown))
        .bind(millis(now))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn complete_if_done(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "update jobs set status = 'completed', completed_at = ?2, \
                 webhook_due_at = case when webhook_url is not null then ?2 end \
             where id = ?1 and status in ('queued', 'running') and processed >= total \
             returning ",
            job_columns!()
        ))
        .bind(id.to_string())
        .bind(millis(now))
        .fetch_optional(&mut *self)
        .await?
        .map(Job::try_from)
        .transpose()
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "insert into jobs (id, status, created_at, updated_at) values (?1, 'uploading', ?2, ?2)",
        )
        .bind(id.to_string())
        .bind(millis(now))
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
        // Multi-row inserts: SQLite has no arrays to bind.
        let id = id.to_string();
        let mut tx = self.begin_write().await?;
        for (chunk_index, chunk) in items.chunks(INSERT_ROWS).enumerate() {
            let first = first_seq + (chunk_index * INSERT_ROWS) as u64;
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "insert into job_items (job_id, seq, email, domain, available_at) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut row, (offset, item)| {
                row.push_bind(id.as_str())
                    .push_bind(int_param(first + offset as u64))
                    .push_bind(item.email.as_str())
                    .push_bind(item.domain.as_str())
                    .push_bind(millis(now));
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    async fn seal_job(
        &self,
        id: Uuid,
        total: u64,
        webhook_url: Option<&str>,
        large_domains: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let _turn = self.write_turn().await;
        // An empty job is complete at once.
        sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "update jobs set total = ?2, webhook_url = ?3, updated_at = ?4, \
                 large_domains = ?5, \
                 status = case when ?2 = 0 then 'completed' else 'queued' end, \
                 completed_at = case when ?2 = 0 then ?4 end, \
                 webhook_due_at = case when ?2 = 0 and ?3 is not null then ?4 end \
             where id = ?1 and status = 'uploading' returning ",
            job_columns!()
        ))
        .bind(id.to_string())
        .bind(int_param(total))
        .bind(webhook_url)
        .bind(millis(now))
        .bind(large_domains_text(large_domains))
        .fetch_one(self.pool())
        .await?
        .try_into()
    }

    async fn discard_job(&self, id: Uuid) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query("delete from jobs where id = ?1")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = ?1 and status <> 'uploading'"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn recent_jobs(&self, limit: u32) -> StoreResult<Vec<Job>> {
        sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "select ",
            job_columns!(),
            " from jobs where status <> 'uploading' order by created_at desc, id limit ?1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(Job::try_from)
        .collect()
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        let _turn = self.write_turn().await;
        let cancelled = sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "update jobs set status = 'cancelled', completed_at = ?2, updated_at = ?2, \
                 webhook_due_at = case when webhook_url is not null then ?2 end \
             where id = ?1 and status in ('queued', 'running') returning ",
            job_columns!()
        ))
        .bind(id.to_string())
        .bind(millis(now))
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
        let _turn = self.write_turn().await;
        let renewed = sqlx::query(
            "update job_items set available_at = ?2 \
             where state = 'claimed' and claimed_by = ?1",
        )
        .bind(worker)
        .bind(millis(until))
        .execute(self.pool())
        .await?;
        Ok(renewed.rows_affected())
    }

    async fn release_job_items(&self, worker: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let released = sqlx::query(
            "update job_items set state = 'pending', available_at = ?2, claimed_by = null \
             where state = 'claimed' and claimed_by = ?1",
        )
        .bind(worker)
        .bind(millis(now))
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
             where job_id = ?1 and seq > ?2 and state = 'done' order by seq limit ?3",
        )
        .bind(id.to_string())
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
        let _turn = self.write_turn().await;
        sqlx::query_as::<_, JobRow<Sqlite>>(concat!(
            "update jobs set webhook_due_at = ?2 where id = ( \
                 select id from jobs where webhook_due_at <= ?1 \
                 order by webhook_due_at limit 1) \
             returning ",
            job_columns!()
        ))
        .bind(millis(now))
        .bind(millis(retry_at))
        .fetch_optional(self.pool())
        .await?
        .map(Job::try_from)
        .transpose()
    }

    async fn webhook_attempted(&self, id: Uuid, next: Option<DateTime<Utc>>) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "update jobs set webhook_attempts = webhook_attempts + 1, webhook_due_at = ?2 \
             where id = ?1",
        )
        .bind(id.to_string())
        .bind(next.map(millis))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn purge_jobs(
        &self,
        before: DateTime<Utc>,
        stale_upload: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let _turn = self.write_turn().await;
        let purged = sqlx::query(
            "delete from jobs where (completed_at < ?1 and webhook_due_at is null) \
                 or (status = 'uploading' and created_at < ?2)",
        )
        .bind(millis(before))
        .bind(millis(stale_upload))
        .execute(self.pool())
        .await?;
        Ok(purged.rows_affected())
    }
}
