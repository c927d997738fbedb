//! Bulk jobs on SQLite, for a single mailvet process. Write transactions
//! hold SQLite's single write lock, so claims never overlap.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{SqliteStore, from_millis, millis};
use crate::store::jobs::{
    ClaimedChunk, ClaimedItem, ItemOutcome, Job, JobResultRow, JobStore, NewJobItem, StatusCounts,
};
use crate::store::{StoreError, StoreResult, parse_stored};

/// The columns of `jobs`, as `job_from_row` reads them.
macro_rules! job_columns {
    () => {
        "id, status, total, processed, deliverable, undeliverable, risky, unknown, \
         webhook_url, webhook_attempts, created_at, updated_at, started_at, completed_at"
    };
}

/// Rows per multi-row insert: 4 parameters each, well under SQLite's limit.
const INSERT_ROWS: usize = 500;

fn job_from_row(row: &SqliteRow) -> StoreResult<Job> {
    let count =
        |column: &str| -> StoreResult<u64> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
    let time =
        |column: &str| -> StoreResult<DateTime<Utc>> { from_millis(column, row.try_get(column)?) };
    let maybe_time = |column: &str| -> StoreResult<Option<DateTime<Utc>>> {
        row.try_get::<Option<i64>, _>(column)?
            .map(|value| from_millis(column, value))
            .transpose()
    };
    let id: String = row.try_get("id")?;
    Ok(Job {
        id: Uuid::parse_str(&id).map_err(|err| StoreError::Corrupt(format!("id: {err}")))?,
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
        webhook_attempts: row.try_get::<i64, _>("webhook_attempts")?.max(0) as u32,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        started_at: maybe_time("started_at")?,
        completed_at: maybe_time("completed_at")?,
    })
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
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
        let id = id.to_string();
        let mut tx = self.begin_write().await?;
        for (chunk_index, chunk) in items.chunks(INSERT_ROWS).enumerate() {
            let first = first_seq + (chunk_index * INSERT_ROWS) as u64;
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "insert into job_items (job_id, seq, email, domain, available_at) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut row, (offset, item)| {
                row.push_bind(id.as_str())
                    .push_bind(seq_param(first + offset as u64))
                    .push_bind(item.email.as_str())
                    .push_bind(item.domain.as_str())
                    .push_bind(millis(now));
            });
            insert.build().execute(&mut **tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn seal_job(
        &self,
        id: Uuid,
        total: u64,
        webhook_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Job> {
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "update jobs set total = ?2, webhook_url = ?3, updated_at = ?4, \
                 status = case when ?2 = 0 then 'completed' else 'queued' end, \
                 completed_at = case when ?2 = 0 then ?4 end, \
                 webhook_due_at = case when ?2 = 0 and ?3 is not null then ?4 end \
             where id = ?1 and status = 'uploading' returning ",
            job_columns!(),
            ""
        ))
        .bind(id.to_string())
        .bind(seq_param(total))
        .bind(webhook_url)
        .bind(millis(now))
        .fetch_one(self.pool())
        .await?;
        job_from_row(&row)
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
        let row = sqlx::query(concat!(
            "select ",
            job_columns!(),
            " from jobs where id = ?1 and status <> 'uploading'"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>> {
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "update jobs set status = 'cancelled', completed_at = ?2, updated_at = ?2, \
                 webhook_due_at = case when webhook_url is not null then ?2 end \
             where id = ?1 and status in ('queued', 'running') returning ",
            job_columns!(),
            ""
        ))
        .bind(id.to_string())
        .bind(millis(now))
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
        let active: Vec<String> = sqlx::query_scalar(
            "select id from jobs where status in ('queued', 'running') order by created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        for id in active {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(
                "update job_items set state = 'claimed', available_at = ?4, claimed_by = ?5 \
                 where job_id = ?1 and seq in ( \
                     select seq from job_items \
                     where job_id = ?1 and state <> 'done' and available_at <= ?2 \
                     order by domain, seq limit ?3) \
                 returning seq, email, domain, attempts",
            )
            .bind(id.as_str())
            .bind(millis(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(millis(lease_until))
            .bind(worker)
            .fetch_all(&mut **tx)
            .await?;
            if rows.is_empty() {
                tx.rollback().await?;
                continue;
            }
            sqlx::query(
                "update jobs set status = 'running', started_at = coalesce(started_at, ?2), \
                     updated_at = ?2 where id = ?1 and status = 'queued'",
            )
            .bind(id.as_str())
            .bind(millis(now))
            .execute(&mut **tx)
            .await?;
            tx.commit().await?;
            let mut items = rows
                .iter()
                .map(|row| {
                    Ok(ClaimedItem {
                        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
                        email: row.try_get("email")?,
                        domain: row.try_get("domain")?,
                        attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            items.sort_by_key(|item| item.seq);
            let job_id =
                Uuid::parse_str(&id).map_err(|err| StoreError::Corrupt(format!("id: {err}")))?;
            return Ok(Some(ClaimedChunk { job_id, items }));
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
        let id = id.to_string();
        let mut tx = self.begin_write().await?;
        let mut counts = StatusCounts::default();
        for outcome in outcomes {
            match outcome {
                ItemOutcome::Done {
                    seq,
                    status,
                    result,
                } => {
                    let updated = sqlx::query(
                        "update job_items set state = 'done', status = ?3, result = ?4, \
                             claimed_by = null \
                         where job_id = ?1 and seq = ?2 and state = 'claimed' and claimed_by = ?5",
                    )
                    .bind(id.as_str())
                    .bind(seq_param(*seq))
                    .bind(status.as_str())
                    .bind(result.as_str())
                    .bind(worker)
                    .execute(&mut **tx)
                    .await?;
                    if updated.rows_affected() == 1 {
                        counts.add(*status);
                    }
                }
                ItemOutcome::Retry {
                    seq,
                    at,
                    counts_as_attempt,
                } => {
                    sqlx::query(
                        "update job_items set state = 'pending', available_at = ?3, \
                             attempts = attempts + ?4, claimed_by = null \
                         where job_id = ?1 and seq = ?2 and state = 'claimed' and claimed_by = ?5",
                    )
                    .bind(id.as_str())
                    .bind(seq_param(*seq))
                    .bind(millis(*at))
                    .bind(i64::from(*counts_as_attempt))
                    .bind(worker)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        let as_param = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
        sqlx::query(
            "update jobs set processed = processed + ?2, deliverable = deliverable + ?3, \
                 undeliverable = undeliverable + ?4, risky = risky + ?5, unknown = unknown + ?6, \
                 updated_at = ?7 where id = ?1",
        )
        .bind(id.as_str())
        .bind(as_param(counts.total()))
        .bind(as_param(counts.deliverable))
        .bind(as_param(counts.undeliverable))
        .bind(as_param(counts.risky))
        .bind(as_param(counts.unknown))
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
        let completed = sqlx::query(concat!(
            "update jobs set status = 'completed', completed_at = ?2, \
                 webhook_due_at = case when webhook_url is not null then ?2 end \
             where id = ?1 and status in ('queued', 'running') and processed >= total \
             returning ",
            job_columns!(),
            ""
        ))
        .bind(id.as_str())
        .bind(millis(now))
        .fetch_optional(&mut **tx)
        .await?;
        tx.commit().await?;
        completed.as_ref().map(job_from_row).transpose()
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
        let rows = sqlx::query(
            "select seq, result from job_items \
             where job_id = ?1 and seq > ?2 and state = 'done' order by seq limit ?3",
        )
        .bind(id.to_string())
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
        let _turn = self.write_turn().await;
        let row = sqlx::query(concat!(
            "update jobs set webhook_due_at = ?2 where id = ( \
                 select id from jobs where webhook_due_at <= ?1 \
                 order by webhook_due_at limit 1) \
             returning ",
            job_columns!(),
            ""
        ))
        .bind(millis(now))
        .bind(millis(retry_at))
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
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
