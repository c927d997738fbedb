//! What the store keeps for bulk jobs, and the operations on it.
//!
//! A job's life: `create_job` (status `uploading`, invisible to the API),
//! `add_job_items` as the upload streams in, then `seal_job` (`queued`) or
//! `discard_job`. Workers of any replica `claim_job_items` in chunks and
//! `finish_job_items`; the job completes when its last item is done.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::vocab::Status;

crate::vocab::snake_case_enum!(
    /// Where a job stands.
    JobStatus, "job status" {
        /// Its upload is still streaming in; not visible to the API.
        Uploading => "uploading",
        Queued => "queued",
        Running => "running",
        Completed => "completed",
        Cancelled => "cancelled",
        Failed => "failed",
    }
);

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Cancelled | JobStatus::Failed
        )
    }
}

/// Results so far, per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    pub deliverable: u64,
    pub undeliverable: u64,
    pub risky: u64,
    pub unknown: u64,
}

impl StatusCounts {
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Deliverable => self.deliverable += 1,
            Status::Undeliverable => self.undeliverable += 1,
            Status::Risky => self.risky += 1,
            Status::Unknown => self.unknown += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.deliverable + self.undeliverable + self.risky + self.unknown
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub status: JobStatus,
    pub total: u64,
    pub processed: u64,
    pub counts: StatusCounts,
    pub webhook_url: Option<String>,
    pub webhook_attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// One uploaded address: its place in the input and the domain it is
/// grouped by (empty when the address does not parse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJobItem {
    pub email: String,
    pub domain: String,
}

/// An address claimed for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    pub seq: u64,
    pub email: String,
    /// The domain the address is grouped by.
    pub domain: String,
    /// Earlier tries that ended in a retry (greylisting).
    pub attempts: u32,
}

/// How much one claim takes at most: addresses, and domains (each domain
/// is verified as one group, so the domains are the groups a worker
/// schedules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimit {
    pub addresses: usize,
    pub domains: usize,
}

/// A chunk of one job's addresses, claimed by one worker until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedChunk {
    pub job_id: Uuid,
    pub items: Vec<ClaimedItem>,
}

/// What became of a claimed address.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Verified: the status and the VerifyResult JSON.
    Done {
        seq: u64,
        status: Status,
        result: String,
    },
    /// To be tried again at `at`; `counts_as_attempt` is false when the
    /// delay was mailvet's own (the probe budget), not the server's.
    Retry {
        seq: u64,
        at: DateTime<Utc>,
        counts_as_attempt: bool,
    },
}

/// One stored result, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResultRow {
    pub seq: u64,
    pub result: String,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates a job in status `uploading`.
    async fn create_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    /// Appends uploaded addresses, numbered from `first_seq`: all of them
    /// or, on an error, none.
    async fn add_job_items(
        &self,
        id: Uuid,
        first_seq: u64,
        items: &[NewJobItem],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Ends the upload: the job is queued with `total` addresses (or
    /// completed at once when there are none). Its `large_domains`,
    /// largest first, are claimed before the others.
    async fn seal_job(
        &self,
        id: Uuid,
        total: u64,
        webhook_url: Option<&str>,
        large_domains: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Job>;

    /// Deletes a job and its addresses (an upload that failed).
    async fn discard_job(&self, id: Uuid) -> StoreResult<()>;

    /// A job, unless it is still uploading or does not exist.
    async fn job(&self, id: Uuid) -> StoreResult<Option<Job>>;

    /// The most recent jobs (not those still uploading), newest first, at
    /// most `limit` of them.
    async fn recent_jobs(&self, limit: u32) -> StoreResult<Vec<Job>>;

    /// Cancels a queued or running job. Returns the job as it is after the
    /// call (unchanged when it had already finished); `None` when unknown.
    async fn cancel_job(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>>;

    /// Claims up to `limit.addresses` addresses of at most `limit.domains`
    /// domains, of the oldest active job that has work available at `now`,
    /// grouped by domain, for `worker` until `lease_until`. Addresses
    /// claimed by a worker whose lease ran out are claimed again. Marks the
    /// job running.
    async fn claim_job_items(
        &self,
        worker: &str,
        limit: ChunkLimit,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Option<ClaimedChunk>>;

    /// Records what became of claimed addresses, in one transaction. An
    /// address no longer claimed by `worker` (its lease ran out and another
    /// worker took it) is left alone. Returns the job when this completed it.
    async fn finish_job_items(
        &self,
        worker: &str,
        id: Uuid,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Job>>;

    /// Extends the lease of every address `worker` holds to `until` (the
    /// worker is alive); returns how many.
    async fn renew_job_claims(&self, worker: &str, until: DateTime<Utc>) -> StoreResult<u64>;

    /// Hands back the addresses `worker` holds, for another worker to take
    /// at once (on shutdown).
    async fn release_job_items(&self, worker: &str, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Up to `limit` results with `seq > after`, in input order.
    async fn job_results(
        &self,
        id: Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<JobResultRow>>;

    /// Claims a finished job whose completion webhook is due, pushing its
    /// due time to `retry_at` so that no other replica sends it meanwhile.
    async fn claim_due_webhook(
        &self,
        now: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<Option<Job>>;

    /// Records a webhook attempt: delivered (or given up), or due again at
    /// `next`.
    async fn webhook_attempted(&self, id: Uuid, next: Option<DateTime<Utc>>) -> StoreResult<()>;

    /// Deletes jobs finished before `before`, and uploads abandoned
    /// (status `uploading`) since before `stale_upload`.
    async fn purge_jobs(
        &self,
        before: DateTime<Utc>,
        stale_upload: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
