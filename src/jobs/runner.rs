//! The job workers of one process: each claims a chunk of addresses,
//! verifies it with the engine (one SMTP session per domain), records the
//! results, and goes again. Greylisted addresses wait and are tried again;
//! the completion webhook is sent once a job finishes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{JobSettings, JobView};
use crate::error::error_chain;
use crate::outbound::Outbound;
use crate::secret::ExposeSecret;
use crate::store::{ChunkLimit, ClaimedChunk, ClaimedItem, ItemOutcome, Job, Store};
use crate::verify::{Verifier, VerifyResult};
use crate::vocab::Reason;

/// How often an idle worker looks for work (a new job also wakes it).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Recipients one SMTP session carries at most by default: what a group
/// in hand is counted at when bounding the addresses a process holds.
const GROUP_SESSION_WORTH: usize = 100;
/// The wait after the database failed.
const ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// The wait before an address refused by mailvet's own probe budget is
/// tried again.
const BUDGET_RETRY: Duration = Duration::from_secs(30);
/// Tries of a completion webhook before giving up.
const WEBHOOK_ATTEMPTS: u32 = 6;
/// How long a replica holds a webhook it is sending.
const WEBHOOK_CLAIM: Duration = Duration::from_secs(60);

/// Works the jobs in the store. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct JobRunner {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    settings: JobSettings,
    /// This process's name on its claims.
    worker: String,
    webhook_due: Notify,
    outbound: Outbound,
    /// When this process first found each job address over the probe
    /// budget.
    first_limited: moka::sync::Cache<(uuid::Uuid, u64), std::time::Instant>,
}

impl JobRunner {
    pub fn new(
        store: Arc<dyn Store>,
        verifier: Arc<Verifier>,
        settings: JobSettings,
        outbound: Outbound,
    ) -> Self {
        // An address not seen for this long has been answered, or its job
        // has ended.
        let forget_after = settings.rate_limit_deadline + BUDGET_RETRY * 4;
        JobRunner {
            store,
            verifier,
            settings,
            worker: uuid::Uuid::new_v4().to_string(),
            webhook_due: Notify::new(),
            outbound,
            first_limited: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(forget_after)
                .build(),
        }
    }

    /// Starts the scheduler and the webhook sender; they stop when `stop`
    /// is cancelled, the scheduler after the groups in hand.
    pub fn spawn(self: &Arc<Self>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().schedule(stop.clone())),
            tokio::spawn(self.clone().send_webhooks(stop.clone())),
            tokio::spawn(self.clone().keep_leases(stop.clone())),
        ]
    }

    /// Hands back the addresses this process still holds, so that another
    /// replica (or this one, restarted) takes them at once instead of
    /// waiting for the lease to run out.
    pub async fn release(&self) {
        match self.store.release_job_items(&self.worker, Utc::now()).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "handed back unfinished job addresses"),
            Err(err) => tracing::warn!(
                error = %error_chain(&err),
                "handing back job addresses failed; they are taken again when their lease ends"
            ),
        }
    }

    /// Renews the lease on everything this process holds every third of
    /// the lease, so that a slow mail server never makes a live replica's
    /// addresses look abandoned; a dead replica's leases run out.
    async fn keep_leases(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.settings.lease / 3).max(Duration::from_millis(100));
        let lease =
            chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::minutes(5));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(err) = self
                .store
                .renew_job_claims(&self.worker, Utc::now() + lease)
                .await
            {
                tracing::warn!(error = %error_chain(&err), "renewing job leases failed");
            }
        }
    }

    /// Keeps up to `--job-workers` domain groups verifying at once: claims
    /// a chunk whenever there is room, splits it by domain, and starts each
    /// group on its own, so that a slow domain holds up no other. Each group
    /// records its results when it finishes.
    async fn schedule(self: Arc<Self>, stop: CancellationToken) {
        // Spawned, not merely polled from here: a group must make progress
        // (and release the store's write turn) while this loop awaits a claim.
        let mut running = tokio::task::JoinSet::new();
        // Claimed groups waiting for a free worker, and how many to keep.
        let mut waiting = std::collections::VecDeque::new();
        // (None at all for a replica with no workers: it takes no job work.)
        let ahead = match self.settings.workers {
            0 => 0,
            workers => (workers / 2).max(1),
        };
        // Claimed addresses not yet recorded: bounded so that claims do not
        // outrun the mail servers, yet enough for every worker and every
        // group kept ahead to hold a session's worth of recipients — else
        // a few large domains' groups leave workers idle.
        let max_items = self
            .settings
            .chunk_size
            .saturating_mul(4)
            .max((self.settings.workers + ahead).saturating_mul(GROUP_SESSION_WORTH));
        let mut items = 0usize;
        // A claim that found nothing (or failed) is not tried again before
        // its pause is over or new work is announced: else every group
        // that finished would ask again, and at the end of a job, every
        // replica's did, each claim a scan past the addresses in hand.
        let mut quiet_until: Option<Instant> = None;
        while !stop.is_cancelled() {
            loop {
                while running.len() < self.settings.workers {
                    let Some((job_id, group)) = waiting.pop_front() else {
                        break;
                    };
                    running.spawn(self.clone().run_group(job_id, group));
                }
                // Keep groups claimed ahead, so that a finished group's
                // worker starts the next at once instead of waiting for a
                // claim (which queues behind the groups' own writes). They
                // are claimed once half of them have started, as many
                // domains as there is room for: a claim of many small
                // domains would leave one replica with more groups than its
                // workers start in a round while the others' stand idle.
                let room =
                    (self.settings.workers + ahead).saturating_sub(running.len() + waiting.len());
                if waiting.len() > ahead / 2
                    || room == 0
                    || items >= max_items
                    || quiet_until.is_some_and(|until| Instant::now() < until)
                {
                    break;
                }
                match self.claim(room).await {
                    Ok(Some(chunk)) => {
                        for group in by_domain(chunk) {
                            items += group.1.len();
                            waiting.push_back(group);
                        }
                    }
                    Ok(None) => {
                        quiet_until = Some(Instant::now() + IDLE_POLL);
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %error_chain(&err), "claiming job addresses failed");
                        quiet_until = Some(Instant::now() + ERROR_BACKOFF);
                        break;
                    }
                }
            }
            let quiet = quiet_until.filter(|until| Instant::now() < *until);
            if running.is_empty() {
                let until = quiet.unwrap_or_else(|| Instant::now() + IDLE_POLL);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = self.settings.wake.notified() => quiet_until = None,
                    () = tokio::time::sleep_until(until) => {}
                }
                continue;
            }
            // Wait for a group to finish; while claims pause, also for the
            // pause to end or new work to appear.
            tokio::select! {
                Some(done) = running.join_next() => {
                    items = items.saturating_sub(done.unwrap_or_default());
                }
                () = stop.cancelled() => break,
                () = self.settings.wake.notified(), if quiet.is_some() => quiet_until = None,
                () = tokio::time::sleep_until(quiet.unwrap_or_else(Instant::now)), if quiet.is_some() => {}
            }
        }
        // The groups in hand finish (the shutdown grace bounds this); the
        // claimed groups not started are handed back by `release`.
        while running.join_next().await.is_some() {}
    }

    /// Claims a chunk of at most `domains` domains.
    async fn claim(&self, domains: usize) -> crate::store::StoreResult<Option<ClaimedChunk>> {
        let now = Utc::now();
        let lease =
            chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::minutes(5));
        let limit = ChunkLimit {
            addresses: self.settings.chunk_size,
            domains,
        };
        self.store
            .claim_job_items(&self.worker, limit, now, now + lease)
            .await
    }

    /// Verifies one domain's claimed addresses (one SMTP session) and
    /// records the results; returns how many addresses it held.
    async fn run_group(self: Arc<Self>, job_id: uuid::Uuid, items: Vec<ClaimedItem>) -> usize {
        let count = items.len();
        // Retries skip the cache: it holds the greylisting answer.
        let (retries, first_tries): (Vec<ClaimedItem>, Vec<ClaimedItem>) =
            items.into_iter().partition(|item| item.attempts > 0);
        let mut outcomes = Vec::with_capacity(count);
        for (group, fresh) in [(first_tries, false), (retries, true)] {
            if group.is_empty() {
                continue;
            }
            let emails: Vec<String> = group.iter().map(|item| item.email.clone()).collect();
            let deadline = self.settings.group_deadline;
            let results = match tokio::time::timeout(
                deadline,
                self.verifier.verify_batch(&emails, fresh),
            )
            .await
            {
                Ok(answer) => answer.value,
                Err(_) => {
                    tracing::warn!(job = %job_id, domain = %group[0].domain, ?deadline, "a domain's addresses took longer than the group deadline");
                    emails
                            .iter()
                            .map(|email| {
                                VerifyResult::new(email, None, Reason::Timeout).with_message(format!(
                                    "verifying this domain's addresses took longer than the job's group deadline ({})",
                                    humantime::format_duration(deadline)
                                ))
                            })
                            .collect()
                }
            };
            outcomes.extend(
                group
                    .iter()
                    .zip(results)
                    .map(|(item, result)| self.outcome(job_id, item, &result)),
            );
        }
        self.record(job_id, &outcomes).await;
        count
    }

    async fn record(&self, job_id: uuid::Uuid, outcomes: &[ItemOutcome]) {
        let mut tries = 0;
        loop {
            match self
                .store
                .finish_job_items(&self.worker, job_id, outcomes, Utc::now())
                .await
            {
                Ok(Some(job)) => {
                    tracing::info!(job = %job.id, total = job.total, "job completed");
                    self.webhook_due.notify_one();
                    return;
                }
                Ok(None) => return,
                Err(err) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %error_chain(&err), tries, "recording job results failed; trying again");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
                Err(err) => {
                    tracing::error!(
                        error = %error_chain(&err),
                        job = %job_id,
                        "recording job results failed; the addresses are verified again when their lease ends"
                    );
                    return;
                }
            }
        }
    }

    /// A verdict, or a retry for an answer that says "later". An address
    /// refused by the probe budget is tried again until
    /// `--job-rate-limit-deadline` after its first refusal (counted by this
    /// process), then answered `unknown / rate_limited`.
    fn outcome(
        &self,
        job_id: uuid::Uuid,
        item: &ClaimedItem,
        result: &VerifyResult,
    ) -> ItemOutcome {
        let now = Utc::now();
        let later = |wait: Duration| now + chrono::Duration::from_std(wait).unwrap_or_default();
        match result.reason {
            Reason::Greylisted if item.attempts + 1 < self.settings.greylist_attempts => {
                ItemOutcome::Retry {
                    seq: item.seq,
                    at: later(self.settings.greylist_delay),
                    counts_as_attempt: true,
                }
            }
            Reason::RateLimited
                if self
                    .first_limited
                    .get_with((job_id, item.seq), std::time::Instant::now)
                    .elapsed()
                    < self.settings.rate_limit_deadline =>
            {
                ItemOutcome::Retry {
                    seq: item.seq,
                    at: later(BUDGET_RETRY.min(self.settings.rate_limit_deadline)),
                    counts_as_attempt: false,
                }
            }
            _ => ItemOutcome::Done {
                seq: item.seq,
                status: result.status,
                result: serde_json::to_string(result).unwrap_or_default(),
            },
        }
    }

    async fn send_webhooks(self: Arc<Self>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let now = Utc::now();
            let hold = chrono::Duration::from_std(WEBHOOK_CLAIM).unwrap_or_default();
            let pause = match self.store.claim_due_webhook(now, now + hold).await {
                Ok(Some(job)) => {
                    self.send_webhook(&job).await;
                    continue;
                }
                Ok(None) => Duration::from_secs(5),
                Err(err) => {
                    tracing::warn!(error = %error_chain(&err), "looking for due job webhooks failed");
                    ERROR_BACKOFF
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.webhook_due.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// POSTs the finished job to its webhook URL; a failure is tried again
    /// later with a growing wait (30 s, 1 min, 2 min…), up to six tries.
    async fn send_webhook(&self, job: &Job) {
        let Some(url) = job.webhook_url.as_deref() else {
            return;
        };
        let now = Utc::now();
        let view = JobView::new(job, now);
        let body = serde_json::to_vec(&view).unwrap_or_default();
        let sent = match self.outbound.request(reqwest::Method::POST, url) {
            Ok(mut request) => {
                request = request
                    .header("x-mailvet-job", job.id.to_string())
                    .header(reqwest::header::CONTENT_TYPE, "application/json");
                if let Some(secret) = &self.settings.webhook_secret {
                    let timestamp = now.timestamp().to_string();
                    request = request.header("x-mailvet-timestamp", &timestamp).header(
                        "x-mailvet-signature",
                        webhook_signature(secret.expose_secret(), &timestamp, &body),
                    );
                }
                self.outbound.send(request.body(body)).await
            }
            Err(refused) => Err(refused),
        };
        let failure = match sent {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("answered {}", response.status())),
            Err(err) => Some(err.to_string()),
        };
        let attempt = job.webhook_attempts + 1;
        let next = match &failure {
            None => {
                tracing::info!(job = %job.id, "job webhook delivered");
                None
            }
            Some(why) if attempt >= WEBHOOK_ATTEMPTS => {
                tracing::warn!(job = %job.id, %why, attempt, "job webhook failed; giving up");
                None
            }
            Some(why) => {
                let wait = chrono::Duration::seconds(30 << (attempt - 1).min(8));
                tracing::warn!(job = %job.id, %why, attempt, "job webhook failed; will try again");
                Some(Utc::now() + wait)
            }
        };
        if let Err(err) = self.store.webhook_attempted(job.id, next).await {
            tracing::warn!(error = %error_chain(&err), "recording a webhook attempt failed");
        }
    }
}

/// A chunk's addresses grouped by domain, in input order within each group.
fn by_domain(chunk: ClaimedChunk) -> Vec<(uuid::Uuid, Vec<ClaimedItem>)> {
    let mut groups: Vec<(String, Vec<ClaimedItem>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in chunk.items {
        let at = *index.entry(item.domain.clone()).or_insert_with(|| {
            groups.push((item.domain.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(item);
    }
    groups
        .into_iter()
        .map(|(_, items)| (chunk.job_id, items))
        .collect()
}

/// The `X-Mailvet-Signature` of a webhook body: `v1=` and the hex
/// HMAC-SHA256, keyed with the webhook secret, of the timestamp (Unix
/// seconds, as sent in `X-Mailvet-Timestamp`), a dot, and the body. A
/// receiver recomputes it, compares in constant time, and refuses a
/// timestamp more than a few minutes old, so that a captured call cannot be
/// replayed.
pub fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}
