//! Politeness across replicas: the engine's side of the shared state in
//! the database (`store::cluster`). Present only when the database is
//! shared (Postgres); on SQLite every limit is the process's own.
//!
//! - **Session slots**: after a probe has this process's own permits for
//!   a host and an address, it claims a slot in each scope in the
//!   database, with the probe's budget if it is the probe's first session
//!   — one round trip. A claim that finds the scope full waits for a
//!   release notification (or a short timer) and tries again. Slots are
//!   released in batches by a writer task; a lease keeper renews the
//!   leases in use here, so a dead replica's (and a lost release's) lapse.
//! - **Catch-all answers** found here are written in batches, and every
//!   claim brings back the domain's answer.
//! - **Verifications in progress**: a single-address verification claims
//!   its address; another replica asked for it waits for the verdict.
//! - **Notifications** (`LISTEN`): suppression changes move the list's
//!   version at once; releases and finished verifications wake waiters.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::store::StoreError;
use crate::store::cluster::{BudgetBucket, ClusterEvent, Coordination, SessionAsk};
use crate::suppress::SuppressionList;

/// How long a lease or claim lasts unless renewed.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often this process renews its leases.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often lapsed rows are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How long a domain's catch-all answer is reused, here and by other
/// replicas.
pub const CATCH_ALL_TTL: Duration = Duration::from_secs(3600);
/// A full scope is tried again after this long at first without a release
/// notification (doubling up to [`RETRY_MAX`]): a lapsed lease of a dead
/// replica sends none.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Writes queued before the writer sends them.
const WRITE_BATCH: usize = 1_000;
/// How long a replica waits for another's verification of an address
/// before verifying it itself (the other's claim lapses after [`LEASE`]).
pub const WAIT_FOR_OTHER: Duration = Duration::from_secs(45);

/// A write the writer task batches.
#[derive(Debug)]
enum Write {
    Release(i64),
    CatchAll(String, bool),
    Finished(String),
}

/// The shared state, as the prober and the engine use it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    coordination: Arc<dyn Coordination>,
    next_lease: AtomicI64,
    writes: mpsc::UnboundedSender<Write>,
    /// Waiters for a slot, by scope.
    slots: Mutex<HashMap<String, Arc<Notify>>>,
    /// Finished verifications, by address key ("" after a lost
    /// connection: anything may have finished).
    finished: broadcast::Sender<Arc<str>>,
    /// Whether the notifications are heard now.
    listening: AtomicBool,
    /// Whether the last claim failed for want of the database.
    unavailable: AtomicBool,
    /// Leases and address claims in use here: the ones the keeper renews.
    live_leases: Mutex<HashSet<i64>>,
    live_claims: Mutex<HashSet<String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.lock().expect("cluster tasks").drain(..) {
            task.abort();
        }
    }
}

/// A slot held in the database, renewed while it lives; released (in the
/// writer's next batch) when dropped.
#[derive(Debug)]
pub struct Lease {
    id: i64,
    inner: Arc<Inner>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner
            .live_leases
            .lock()
            .expect("live leases")
            .remove(&self.id);
        let _ = self.inner.writes.send(Write::Release(self.id));
    }
}

/// How a claim ended.
#[derive(Debug)]
pub enum Claimed {
    Slot(Lease),
    /// The budget alone was asked for, and taken.
    Budget,
    /// The budget refused: the bucket (its index in the ask) that asks for
    /// the longest wait, and how long.
    OverBudget(usize, Duration),
    /// The database cannot be reached: the caller keeps to its own limits.
    Unavailable(StoreError),
}

/// The catch-all answer a claim brought back, with what it claimed.
#[derive(Debug)]
pub struct Claim {
    pub claimed: Claimed,
    pub catch_all: Option<bool>,
}

impl Cluster {
    /// Starts the writer, the lease keeper and the listener. Suppression
    /// changes heard move `suppressions`' version.
    pub fn start(coordination: Arc<dyn Coordination>, suppressions: Arc<SuppressionList>) -> Self {
        let (writes, queued) = mpsc::unbounded_channel();
        let (finished, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            coordination: coordination.clone(),
            next_lease: AtomicI64::new(1),
            writes,
            slots: Mutex::default(),
            finished,
            listening: AtomicBool::new(false),
            unavailable: AtomicBool::new(false),
            live_leases: Mutex::default(),
            live_claims: Mutex::default(),
            tasks: Mutex::default(),
        });
        let weak = Arc::downgrade(&inner);
        let (events, heard) = mpsc::channel(1024);
        let listener = {
            let coordination = coordination.clone();
            tokio::spawn(async move { coordination.listen(events).await })
        };
        let tasks = vec![
            tokio::spawn(write_batches(coordination.clone(), queued)),
            tokio::spawn(keep_leases(coordination, weak.clone())),
            listener,
            tokio::spawn(dispatch(weak, heard, suppressions)),
        ];
        *inner.tasks.lock().expect("cluster tasks") = tasks;
        Cluster { inner }
    }

    /// Whether changes are heard as they happen (else only by polling).
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Claims a session slot at the mail host `host` and the address `ip`
    /// (at most `cap` sessions in each, over every replica), taking the
    /// probe's `budget` with it when it is not empty; waits while the
    /// scopes are full.
    pub async fn claim(
        &self,
        host: &str,
        ip: IpAddr,
        cap: usize,
        budget: &[BudgetBucket],
        domain: &str,
    ) -> Claim {
        let scopes = [format!("host:{host}"), format!("ip:{ip}")];
        self.claim_scopes(&scopes, cap, budget, domain).await
    }

    /// Takes the probe's budget alone (a probe that took over a session
    /// another handed off claims no slot).
    pub async fn take_budget(&self, budget: &[BudgetBucket], domain: &str) -> Claim {
        self.claim_scopes(&[], 1, budget, domain).await
    }

    async fn claim_scopes(
        &self,
        scopes: &[String],
        cap: usize,
        budget: &[BudgetBucket],
        domain: &str,
    ) -> Claim {
        let lease_id = self.inner.next_lease.fetch_add(1, Ordering::Relaxed);
        let ask = SessionAsk {
            lease_id,
            scopes,
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            lease: LEASE,
            budget,
            domain,
        };
        let waker = scopes.first().map(|scope| self.waker(scope));
        let mut retry = RETRY_FIRST;
        loop {
            let released = waker.as_ref().map(|waker| waker.notify.clone());
            let notified = released.as_ref().map(|notify| notify.notified());
            let mut notified = std::pin::pin!(notified);
            if let Some(notified) = notified.as_mut().as_pin_mut() {
                notified.enable();
            }
            let grant = match self.inner.coordination.claim_session(&ask).await {
                Ok(grant) => {
                    self.note_available();
                    grant
                }
                Err(err) => {
                    self.note_unavailable(&err);
                    return Claim {
                        claimed: Claimed::Unavailable(err),
                        catch_all: None,
                    };
                }
            };
            if let Some((bucket, wait)) = grant.budget_refused {
                return Claim {
                    claimed: Claimed::OverBudget(bucket, wait),
                    catch_all: grant.catch_all,
                };
            }
            if grant.granted && scopes.is_empty() {
                return Claim {
                    claimed: Claimed::Budget,
                    catch_all: grant.catch_all,
                };
            }
            if grant.granted {
                self.inner
                    .live_leases
                    .lock()
                    .expect("live leases")
                    .insert(lease_id);
                return Claim {
                    claimed: Claimed::Slot(Lease {
                        id: lease_id,
                        inner: self.inner.clone(),
                    }),
                    catch_all: grant.catch_all,
                };
            }
            metrics::counter!("mailvet_cluster_slot_waits_total").increment(1);
            match notified.as_mut().as_pin_mut() {
                Some(notified) => {
                    let _ = tokio::time::timeout(retry, notified).await;
                }
                None => tokio::time::sleep(retry).await,
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    fn note_available(&self) {
        if self.inner.unavailable.swap(false, Ordering::AcqRel) {
            tracing::info!(
                "the shared database answers again: session caps and budgets hold for every replica"
            );
        }
    }

    fn note_unavailable(&self, err: &StoreError) {
        if !self.inner.unavailable.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = %crate::error::error_chain(err),
                "the shared database cannot be reached: this replica probes within its own session caps and budget until it can"
            );
        }
    }

    /// The waker of one scope's waiters, registered while it lives.
    fn waker(&self, scope: &str) -> ScopeWaker {
        let notify = self
            .inner
            .slots
            .lock()
            .expect("slot waiters")
            .entry(scope.to_owned())
            .or_default()
            .clone();
        ScopeWaker {
            scope: scope.to_owned(),
            notify,
            inner: self.inner.clone(),
        }
    }

    /// Shares what a catch-all check found.
    pub fn remember_catch_all(&self, domain: &str, catch_all: bool) {
        let _ = self
            .inner
            .writes
            .send(Write::CatchAll(domain.to_owned(), catch_all));
    }

    /// Claims the verification of an address for this replica. `Ok(false)`:
    /// another replica is verifying it.
    pub async fn claim_verification(&self, address_key: &str) -> Result<bool, StoreError> {
        let claimed = self
            .inner
            .coordination
            .claim_verification(address_key, LEASE)
            .await?;
        if claimed {
            self.inner
                .live_claims
                .lock()
                .expect("live claims")
                .insert(address_key.to_owned());
        }
        Ok(claimed)
    }

    /// Ends this replica's claim on an address (in the writer's next batch,
    /// after the verdict it made was recorded) and wakes those waiting.
    pub fn finish_verification(&self, address_key: &str) {
        self.inner
            .live_claims
            .lock()
            .expect("live claims")
            .remove(address_key);
        let _ = self
            .inner
            .writes
            .send(Write::Finished(address_key.to_owned()));
    }

    /// Notifications of finished verifications: the address key, or ""
    /// when notifications may have been missed.
    pub fn finished_verifications(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.finished.subscribe()
    }
}

/// One scope's waiters; the entry goes when the last waiter does.
struct ScopeWaker {
    scope: String,
    notify: Arc<Notify>,
    inner: Arc<Inner>,
}

impl Drop for ScopeWaker {
    fn drop(&mut self) {
        let mut slots = self.inner.slots.lock().expect("slot waiters");
        // This waker's clone and the map's: no other waiter.
        if Arc::strong_count(&self.notify) <= 2 {
            slots.remove(&self.scope);
        }
    }
}

/// Sends queued writes in batches: whatever has queued while the last
/// batch was sent goes in the next, one statement per kind.
async fn write_batches(
    coordination: Arc<dyn Coordination>,
    mut queued: mpsc::UnboundedReceiver<Write>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queued.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut releases = Vec::new();
        let mut answers: Vec<(String, bool)> = Vec::new();
        let mut finished = Vec::new();
        for write in batch.drain(..) {
            match write {
                Write::Release(id) => releases.push(id),
                Write::CatchAll(domain, flag) => answers.push((domain, flag)),
                Write::Finished(key) => finished.push(key),
            }
        }
        if let Err(err) = coordination.release_sessions(&releases).await {
            // The leases lapse on their own.
            tracing::debug!(error = %err, "releasing session slots failed");
        }
        if let Err(err) = coordination
            .remember_catch_all(&answers, CATCH_ALL_TTL)
            .await
        {
            tracing::debug!(error = %err, "sharing catch-all answers failed");
        }
        if let Err(err) = coordination.finish_verifications(&finished).await {
            tracing::debug!(error = %err, "ending verification claims failed");
        }
    }
}

/// Renews the leases and claims in use here (one whose release was lost
/// is not renewed, and lapses), and purges lapsed rows now and then.
async fn keep_leases(coordination: Arc<dyn Coordination>, inner: std::sync::Weak<Inner>) {
    let mut every = tokio::time::interval(RENEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = tokio::time::Instant::now();
    loop {
        every.tick().await;
        let Some(live) = inner.upgrade() else {
            return;
        };
        let leases: Vec<i64> = live
            .live_leases
            .lock()
            .expect("live leases")
            .iter()
            .copied()
            .collect();
        let claims: Vec<String> = live
            .live_claims
            .lock()
            .expect("live claims")
            .iter()
            .cloned()
            .collect();
        drop(live);
        if let Err(err) = coordination.renew(LEASE, &leases, &claims).await {
            tracing::debug!(error = %err, "renewing session leases failed");
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = tokio::time::Instant::now();
            if let Err(err) = coordination.purge().await {
                tracing::debug!(error = %err, "purging lapsed leases failed");
            }
        }
    }
}

/// Turns what the listener hears into wake-ups and list versions.
async fn dispatch(
    inner: std::sync::Weak<Inner>,
    mut heard: mpsc::Receiver<ClusterEvent>,
    suppressions: Arc<SuppressionList>,
) {
    while let Some(event) = heard.recv().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            ClusterEvent::Suppressions(seq) => suppressions.observe_seq(seq),
            ClusterEvent::SlotsReleased(scope) => {
                let waiting = inner
                    .slots
                    .lock()
                    .expect("slot waiters")
                    .get(&scope)
                    .cloned();
                if let Some(notify) = waiting {
                    notify.notify_waiters();
                }
            }
            ClusterEvent::VerificationDone(key) => {
                let _ = inner.finished.send(Arc::from(key));
            }
            ClusterEvent::Listening | ClusterEvent::Lost => {
                inner
                    .listening
                    .store(event == ClusterEvent::Listening, Ordering::Release);
                // Whatever was missed: the list may have changed (read its
                // sequence; a failed read counts as a change), slots may be
                // free, verifications may have finished.
                let _ = suppressions.poll().await;
                let waiting: Vec<Arc<Notify>> = inner
                    .slots
                    .lock()
                    .expect("slot waiters")
                    .values()
                    .cloned()
                    .collect();
                for notify in waiting {
                    notify.notify_waiters();
                }
                let _ = inner.finished.send(Arc::from(""));
            }
        }
    }
}
