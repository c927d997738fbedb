//! The steps of claiming and finishing a job's addresses, around the
//! statements each backend writes in its own SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Commit, SqlBackend};
use crate::store::StoreResult;
use crate::store::jobs::{ChunkLimit, ClaimedChunk, ClaimedItem, ItemOutcome, Job, StatusCounts};
use crate::vocab::Status;

/// A verified address, to be recorded.
#[derive(Debug)]
pub(in crate::store) struct Verified<'a> {
    pub seq: u64,
    pub status: Status,
    pub result: &'a str,
}

/// The domains a claim takes addresses from.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum Domains<'a> {
    /// This one.
    One(&'a str),
    /// The first `n` in name order that have addresses to claim.
    First(usize),
}

/// An address to be tried again at `at`.
#[derive(Debug)]
pub(in crate::store) struct Retried {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub counts_as_attempt: bool,
}

/// The statements of the job steps.
#[async_trait]
pub(in crate::store) trait JobStatements: Send {
    /// Claims up to `limit` addresses of job `id` whose time has come at
    /// `now` (pending ones, and claimed ones whose lease ran out), by
    /// domain, for `worker` until `lease_until`, from the domains `from`
    /// names.
    async fn claim_items(
        &mut self,
        id: Uuid,
        worker: &str,
        limit: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        from: Domains<'_>,
    ) -> StoreResult<Vec<ClaimedItem>>;

    /// Marks a queued job running.
    async fn mark_running(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    /// Replaces the job's large domains (those with nothing left to claim
    /// dropped).
    async fn set_large_domains(&mut self, id: Uuid, domains: &[String]) -> StoreResult<()>;

    /// Records the results of addresses `worker` still holds; returns the
    /// statuses of those it recorded.
    async fn record_results(
        &mut self,
        id: Uuid,
        worker: &str,
        verified: &[Verified<'_>],
    ) -> StoreResult<Vec<Status>>;

    /// Puts addresses `worker` still holds back in the queue.
    async fn put_back(&mut self, id: Uuid, worker: &str, retried: &[Retried]) -> StoreResult<()>;

    /// Adds recorded results to the job's counters.
    async fn add_to_counters(
        &mut self,
        id: Uuid,
        counts: &StatusCounts,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Completes a queued or running job whose addresses are all done.
    async fn complete_if_done(&mut self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Option<Job>>;
}

/// A number as a query parameter (one beyond `i64::MAX` becomes `i64::MAX`).
pub(in crate::store) fn int_param(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit as a query parameter.
pub(in crate::store) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Claims a chunk of the oldest active job that has work available: each
/// job in its own transaction, the next one tried when it has none. The
/// job's large domains come first, largest first; then the rest, by domain.
pub(in crate::store) async fn claim_job_items(
    store: &impl SqlBackend,
    worker: &str,
    limit: ChunkLimit,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Option<ClaimedChunk>> {
    if limit.addresses == 0 || limit.domains == 0 {
        return Ok(None);
    }
    for job in store.active_jobs().await? {
        let id = job.id;
        let mut tx = store.begin_write().await?;
        let mut items = Vec::new();
        let mut domains = 0;
        // A large domain that gives fewer addresses than asked has none
        // left to claim now: it is dropped from the list, so that later
        // claims do not ask again (an address of it that comes back, a
        // retry or a lapsed lease, is claimed with the rest).
        let mut exhausted = 0;
        for domain in &job.large_domains {
            if domains == limit.domains {
                break;
            }
            let left = limit.addresses - items.len();
            let claimed = tx
                .claim_items(id, worker, left, now, lease_until, Domains::One(domain))
                .await?;
            let full = claimed.len() == left;
            domains += usize::from(!claimed.is_empty());
            items.extend(claimed);
            if full {
                break;
            }
            exhausted += 1;
        }
        if exhausted > 0 {
            tx.set_large_domains(id, &job.large_domains[exhausted..])
                .await?;
        }
        if items.len() < limit.addresses && domains < limit.domains {
            let left = limit.addresses - items.len();
            let from = Domains::First(limit.domains - domains);
            items.extend(
                tx.claim_items(id, worker, left, now, lease_until, from)
                    .await?,
            );
        }
        if items.is_empty() {
            tx.rollback().await?;
            continue;
        }
        tx.mark_running(id, now).await?;
        tx.commit().await?;
        items.sort_by_key(|item| item.seq);
        return Ok(Some(ClaimedChunk { job_id: id, items }));
    }
    Ok(None)
}

/// Records what became of claimed addresses and, when that was the last,
/// completes the job; all in one transaction. Only addresses still claimed
/// by `worker` are written and counted, so a chunk whose lease ran out and
/// was verified again elsewhere is counted once.
pub(in crate::store) async fn finish_job_items(
    store: &impl SqlBackend,
    worker: &str,
    id: Uuid,
    outcomes: &[ItemOutcome],
    now: DateTime<Utc>,
) -> StoreResult<Option<Job>> {
    let mut verified = Vec::new();
    let mut retried = Vec::new();
    for outcome in outcomes {
        match outcome {
            ItemOutcome::Done {
                seq,
                status,
                result,
            } => verified.push(Verified {
                seq: *seq,
                status: *status,
                result,
            }),
            ItemOutcome::Retry {
                seq,
                at,
                counts_as_attempt,
            } => retried.push(Retried {
                seq: *seq,
                at: *at,
                counts_as_attempt: *counts_as_attempt,
            }),
        }
    }
    let mut tx = store.begin_write().await?;
    let mut counts = StatusCounts::default();
    for status in tx.record_results(id, worker, &verified).await? {
        counts.add(status);
    }
    tx.put_back(id, worker, &retried).await?;
    tx.add_to_counters(id, &counts, now).await?;
    let completed = tx.complete_if_done(id, now).await?;
    tx.commit().await?;
    Ok(completed)
}

/// A job with work to do, as claims read it.
pub(in crate::store) struct ActiveJob {
    pub id: Uuid,
    /// Claimed before the others, in this order.
    pub large_domains: Vec<String>,
}

impl ActiveJob {
    /// From the `jobs.large_domains` column.
    pub fn new(id: Uuid, large_domains: Option<String>) -> Self {
        let large_domains = large_domains
            .unwrap_or_default()
            .lines()
            .filter(|domain| !domain.is_empty())
            .map(str::to_owned)
            .collect();
        Self { id, large_domains }
    }
}

/// The `jobs.large_domains` column: one domain a line, null when none.
pub(in crate::store) fn large_domains_text(domains: &[String]) -> Option<String> {
    (!domains.is_empty()).then(|| domains.join("\n"))
}
