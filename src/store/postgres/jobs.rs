//! Bulk jobs on Postgres. Any number of replicas share a job's work:
//! chunks are claimed with `FOR UPDATE SKIP LOCKED` and leased.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::PgStore;
use crate::store::jobs::{
    ClaimedChunk, ClaimedItem, ItemOutcome, Job, JobResultRow, JobStore, NewJobItem, StatusCounts,
};
use crate::store::{StoreResult, parse_stored};
use crate::vocab::Status;

/// The columns of `jobs`, as `job_from_row` reads them.
macro_rules! job_columns {
    () => {
        "id, status, total, processed, deliverable, undeliverable, risky, unknown, \
         webhook_url, webhook_attempts, created_at, updated_at, started_at, completed_at"
    };
}

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let count =
        |column: &str| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
    Ok(Job {
        id: row.try_get("id")?,
        status: parse_stored("status", row.try_get("status")?)?,
        total: count("total")?,
        processed: count("processed")?,
        counts: StatusCounts {
            deliverable: count("deliverable")?,
            undeliverable: count("undeliverable")?,
            risky: count("risky")?,
            unknown: count("unknown")?,
        },
        webhook_url: row.try_get("webhook_url")?,
        webhook_attempts: row.try_get::<i32, _>("webhook_attempts")?.max(0) as u32,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
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
        let seqs: Vec<i64> = (0..items.len() as u64)
            .map(|offset| seq_param(first_seq + offset))
            .collect();
        let emails: Vec<&str> = items.iter().map(|item| item.email.as_str()).collect();
        let domains: Vec<&str> = items.iter().map(|item| item.domain.as_str()).collect();
        sqlx::query(
            "insert into job_items (job_id, seq, email, domain, available_at) \
             select $1, seq, email, domain, $5 \
             from unnest($2::bigint[], $3::text[], $4::text[]) as u(seq, email, domain)",
        )
        .bind(id)
        .bind(&seqs)
        .bind(&emails)
        .bind(&domains)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn seal_job(
        &self,
        id: Uuid,
        total: u64,
        webhook_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        // An empty job is complete at once.
        let row = sqlx::query(concat!(
            "update jobs set total = $2, webhook_url = $3, updated_at = $4, \
                 status = case when $2 = 0 then 'completed' else 'queued' end, \
                 completed_at = case when $2 = 0 then $4 end, \
                 webhook_due_at = case when $2 = 0 and $3::text is not null then $4 end \
             where id = $1 and status = 'uploading' returning ",
            job_columns!(),
            ""
        ))
        .bind(id)
        .bind(seq_param(total))
        .bind(webhook_url)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        job_from_row(&row)
    }

    async fn discard_job(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("delete from jobs where id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = $1 and status <> 'uploading'"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "update jobs set status = 'cancelled', completed_at = $2, updated_at = $2, \
                 webhook_due_at = case when webhook_url is not null then $2 end \
             where id = $1 and status in ('queued', 'running') returning ",
            job_columns!(),
            ""
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => job_from_row(&row).map(Some),
            None => self.job(id).await,
        }
    }

    async fn claim_job_items(
        &self,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<ClaimedChunk>> {
        let active: Vec<Uuid> = sqlx::query_scalar(
            "select id from jobs where status in ('queued', 'running') order by created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        for id in active {
            let mut tx = self.pool().begin().await?;
            let rows = sqlx::query(
                "update job_items set state = 'claimed', available_at = $4, claimed_by = $5 \
                 where job_id = $1 and seq in ( \
                     select seq from job_items \
                     where job_id = $1 and state <> 'done' and available_at <= $2 \
                     order by domain, seq limit $3 for update skip locked) \
                 returning seq, email, domain, attempts",
            )
            .bind(id)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(lease_until)
            .bind(worker)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                tx.rollback().await?;
                continue;
            }
            sqlx::query(
                "update jobs set status = 'running', started_at = coalesce(started_at, $2), \
                     updated_at = $2 where id = $1 and status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut items = rows
                .iter()
                .map(|row| {
                    Ok(ClaimedItem {
                        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
                        email: row.try_get("email")?,
                        domain: row.try_get("domain")?,
                        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            items.sort_by_key(|item| item.seq);
            return Ok(Some(ClaimedChunk { job_id: id, items }));
        }
        Ok(None)
    }

    async fn finish_job_items(
        &self,
        worker: &str,
        id: Uuid,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Job>> {
        let mut done_seqs = Vec::new();
        let mut done_statuses = Vec::new();
        let mut done_results = Vec::new();
        let mut retry_seqs = Vec::new();
        let mut retry_at = Vec::new();
        let mut retry_counts = Vec::new();
        for outcome in outcomes {
            match outcome {
                ItemOutcome::Done {
                    seq,
                    status,
                    result,
                } => {
                    done_seqs.push(seq_param(*seq));
                    done_statuses.push(status.as_str());
                    done_results.push(result.as_str());
                }
                ItemOutcome::Retry {
                    seq,
                    at,
                    counts_as_attempt,
                } => {
                    retry_seqs.push(seq_param(*seq));
                    retry_at.push(*at);
                    retry_counts.push(i32::from(*counts_as_attempt));
                }
            }
        }
        let mut tx = self.pool().begin().await?;
        let finished: Vec<String> = sqlx::query_scalar(
            "update job_items as i set state = 'done', status = u.status, result = u.result, \
                 claimed_by = null \
             from unnest($2::bigint[], $3::text[], $4::text[]) as u(seq, status, result) \
             where i.job_id = $1 and i.seq = u.seq and i.state = 'claimed' and i.claimed_by = $5 \
             returning u.status",
        )
        .bind(id)
        .bind(&done_seqs)
        .bind(&done_statuses)
        .bind(&done_results)
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "update job_items as i set state = 'pending', available_at = u.at, \
                 attempts = i.attempts + u.counts, claimed_by = null \
             from unnest($2::bigint[], $3::timestamptz[], $4::int[]) as u(seq, at, counts) \
             where i.job_id = $1 and i.seq = u.seq and i.state = 'claimed' and i.claimed_by = $5",
        )
        .bind(id)
        .bind(&retry_seqs)
        .bind(&retry_at)
        .bind(&retry_counts)
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        let mut counts = StatusCounts::default();
        for status in &finished {
            counts.add(parse_stored::<Status>("status", status)?);
        }
        let as_param = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        sqlx::query(
            "update jobs set processed = processed + $2, deliverable = deliverable + $3, \
                 undeliverable = undeliverable + $4, risky = risky + $5, unknown = unknown + $6, \
                 updated_at = $7 where id = $1",
        )
        .bind(id)
        .bind(as_param(counts.total()))
        .bind(as_param(counts.deliverable))
        .bind(as_param(counts.undeliverable))
        .bind(as_param(counts.risky))
        .bind(as_param(counts.unknown))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let completed = sqlx::query(concat!(
            "update jobs set status = 'completed', completed_at = $2, \
                 webhook_due_at = case when webhook_url is not null then $2 end \
             where id = $1 and status in ('queued', 'running') and processed >= total \
             returning ",
            job_columns!(),
            ""
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        completed.as_ref().map(job_from_row).transpose()
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
        let rows = sqlx::query(
            "select seq, result from job_items \
             where job_id = $1 and seq > $2 and state = 'done' order by seq limit $3",
        )
        .bind(id)
        .bind(after.map_or(-1, seq_param))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobResultRow {
                    seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
                    result: row
                        .try_get::<Option<String>, _>("result")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn claim_due_webhook(
        &self,
        now: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "update jobs set webhook_due_at = $2 where id = ( \
                 select id from jobs where webhook_due_at <= $1 \
                 order by webhook_due_at limit 1 for update skip locked) \
             returning ",
            job_columns!(),
            ""
        ))
        .bind(now)
        .bind(retry_at)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
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
        let purged = sqlx::query(
            "delete from jobs where (completed_at < $1 and webhook_due_at is null) \
                 or (status = 'uploading' and created_at < $2)",
        )
        .bind(before)
        .bind(stale_upload)
        .execute(self.pool())
        .await?;
        Ok(purged.rows_affected())
    }
}
