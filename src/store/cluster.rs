//! What replicas on one database share so that politeness holds across
//! them: SMTP session slots as leases, the per-domain probe budget as one
//! bucket, catch-all answers, single-address verifications in progress,
//! and notifications of changes. Only a database that several processes
//! share has it (Postgres); on SQLite, one process holds everything in
//! memory and [`crate::store::Store::coordination`] gives `None`.
//!
//! Every time is the database's clock, never a replica's: lease ends and
//! budgets mean the same to every replica whatever their clocks say.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::StoreResult;

/// A session slot wanted: one in each scope (a mail host's, an address's),
/// at most `cap` holders per scope, and, for a probe's first session, one
/// probe from each budget bucket.
#[derive(Debug, Clone)]
pub struct SessionAsk<'a> {
    /// The replica's own number for this session; releases name it.
    pub lease_id: i64,
    /// Scopes in a fixed order (host, then address), so that two claims
    /// never wait on each other in a circle.
    pub scopes: &'a [String],
    pub cap: u32,
    pub lease: Duration,
    /// Budget buckets and the time one probe costs in each; empty when the
    /// budget was taken already (a probe's later sessions).
    pub budget: &'a [BudgetBucket],
    /// The domain whose catch-all answer the claim brings back.
    pub domain: &'a str,
}

/// One budget bucket: its key and the interval one probe costs in it
/// (a minute over the probes allowed a minute).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetBucket {
    pub key: String,
    pub emission: Duration,
}

/// What a claim got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionGrant {
    /// A slot in every scope was taken (and the budget, if asked).
    pub granted: bool,
    /// The budget refused: nothing was taken; the bucket (its index in
    /// the ask) that asks for the longest wait, and how long.
    pub budget_refused: Option<(usize, Duration)>,
    /// The domain's catch-all answer, if a replica found one lately.
    pub catch_all: Option<bool>,
}

/// A change another replica (or this one) made, heard from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The suppression list's change sequence moved to this value.
    Suppressions(i64),
    /// Session slots were released in these scopes.
    SlotsReleased(String),
    /// A verification of this address key finished (its verdict, if it
    /// could be cached, is in the verdict cache).
    VerificationDone(String),
    /// The listening connection is up; notifications before it were not
    /// heard.
    Listening,
    /// Notifications may have been missed (the listening connection was
    /// lost and made again, or is down): anything may have changed.
    Lost,
}

/// The shared state's statements. Writes that may wait (releases, what a
/// catch-all check found) are batched by the caller.
#[async_trait]
pub trait Coordination: Send + Sync + fmt::Debug {
    /// Claims a session slot in each of `ask.scopes` and takes the budget,
    /// all or nothing, in one round trip.
    async fn claim_session(&self, ask: &SessionAsk<'_>) -> StoreResult<SessionGrant>;

    /// Releases the sessions numbered `lease_ids`, and tells the replicas
    /// waiting for a slot in their scopes.
    async fn release_sessions(&self, lease_ids: &[i64]) -> StoreResult<()>;

    /// Extends this replica's leases numbered `lease_ids` and its claims on
    /// `address_keys` by `lease` from now — the ones still in use, so that
    /// one whose release was lost lapses; returns how many were extended.
    async fn renew(
        &self,
        lease: Duration,
        lease_ids: &[i64],
        address_keys: &[String],
    ) -> StoreResult<u64>;

    /// Keeps what catch-all checks found, per domain, for `ttl`.
    async fn remember_catch_all(
        &self,
        answers: &[(String, bool)],
        ttl: Duration,
    ) -> StoreResult<()>;

    /// Claims the verification of an address for this replica, for `lease`
    /// (renewed with the sessions). `false`: another replica is verifying
    /// it now.
    async fn claim_verification(&self, address_key: &str, lease: Duration) -> StoreResult<bool>;

    /// Ends this replica's claims on these addresses and tells the replicas
    /// waiting for them.
    async fn finish_verifications(&self, address_keys: &[String]) -> StoreResult<()>;

    /// Deletes lapsed leases, claims, answers and budgets nobody needs.
    async fn purge(&self) -> StoreResult<u64>;

    /// Listens for changes until `events` is closed: every notification
    /// becomes an event, and a lost connection [`ClusterEvent::Lost`]
    /// (then it listens again). Runs as a task of its own.
    async fn listen(&self, events: mpsc::Sender<ClusterEvent>);
}
