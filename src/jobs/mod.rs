//! Bulk verification jobs: uploads streamed into the store, verified in
//! chunks by workers on every replica, results read back in input order.

pub mod input;
mod runner;
pub mod tally;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

pub use runner::JobRunner;

use crate::store::{Job, JobStatus, StatusCounts};

/// How jobs are taken in and worked.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub workers: usize,
    pub chunk_size: usize,
    pub lease: Duration,
    pub greylist_delay: Duration,
    pub greylist_attempts: u32,
    pub max_addresses: u64,
    pub max_upload_bytes: usize,
    /// How long an address refused by the probe budget is tried again
    /// before it is answered `unknown / rate_limited`.
    pub rate_limit_deadline: Duration,
    /// The longest one domain group of a chunk may take.
    pub group_deadline: Duration,
    /// Whether a completion webhook may reach a private address.
    pub allow_private_webhooks: bool,
    /// What completion webhooks are signed with, if anything.
    pub webhook_secret: Option<crate::secret::SecretString>,
    /// Rung when a job is queued, so that idle workers start at once.
    pub wake: Arc<Notify>,
}

/// A job as the API shows it (`GET /jobs/{id}` and the completion webhook).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub id: uuid::Uuid,
    pub status: JobStatus,
    pub total: u64,
    pub processed: u64,
    pub counts: StatusCounts,
    pub progress: f64,
    pub eta_seconds: Option<f64>,
    pub webhook_url: Option<String>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "optional_rfc3339")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl JobView {
    /// The job's view at `now`: the ETA extrapolates the rate since the job
    /// started.
    pub fn new(job: &Job, now: DateTime<Utc>) -> Self {
        let progress = if job.total == 0 {
            1.0
        } else {
            (job.processed as f64 / job.total as f64).min(1.0)
        };
        let eta_seconds = match (job.status, job.started_at) {
            (JobStatus::Running, Some(started)) if job.processed > 0 => {
                let elapsed = (now - started).num_milliseconds().max(1) as f64 / 1000.0;
                let rate = job.processed as f64 / elapsed;
                let left = job.total.saturating_sub(job.processed) as f64;
                Some((left / rate * 10.0).round() / 10.0)
            }
            _ => None,
        };
        JobView {
            id: job.id,
            status: job.status,
            total: job.total,
            processed: job.processed,
            counts: job.counts,
            progress,
            eta_seconds,
            webhook_url: job.webhook_url.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            completed_at: job.completed_at,
        }
    }
}

fn optional_rfc3339<S: serde::Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(at) => crate::rfc3339::serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus, total: u64, processed: u64) -> Job {
        let created = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        Job {
            id: uuid::Uuid::nil(),
            status,
            total,
            processed,
            counts: StatusCounts::default(),
            webhook_url: None,
            webhook_attempts: 0,
            created_at: created,
            updated_at: created,
            started_at: Some(created),
            completed_at: None,
        }
    }

    #[test]
    fn the_eta_extrapolates_the_rate_so_far() {
        let running = job(JobStatus::Running, 1000, 250);
        let now = running.created_at + chrono::Duration::seconds(10);
        let view = JobView::new(&running, now);
        assert_eq!(view.progress, 0.25);
        assert_eq!(view.eta_seconds, Some(30.0));
    }

    #[test]
    fn queued_and_finished_jobs_have_no_eta() {
        let now = Utc::now();
        assert_eq!(
            JobView::new(&job(JobStatus::Queued, 10, 0), now).eta_seconds,
            None
        );
        let done = JobView::new(&job(JobStatus::Completed, 10, 10), now);
        assert_eq!((done.eta_seconds, done.progress), (None, 1.0));
        assert_eq!(
            JobView::new(&job(JobStatus::Completed, 0, 0), now).progress,
            1.0
        );
    }
}
