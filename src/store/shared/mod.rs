//! What the two backends share: the reading of rows into records
//! ([`rows`]), and the steps of every write that is more than one statement.
//!
//! Each backend keeps its own SQL. It implements [`SqlBackend`] and, on its
//! connection, [`StoreStatements`] and [`JobStatements`]: one method a
//! statement, its SQL beside its parameters. The steps here decide which
//! statements run, in what order, and whether the transaction commits — the
//! same on both backends. [`SuppressionWrites`] is nothing but such steps,
//! so it is implemented here, once, for both.

pub(super) mod confirmations;
pub(super) mod jobs;
pub(super) mod patterns;
pub(super) mod rows;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::DerefMut;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub(super) use confirmations::ConfirmationStatements;
pub(super) use jobs::JobStatements;
use rows::counts_map;

use super::model::hour_of;
use super::{
    BounceEvent, BouncePlan, BounceRules, CachedVerification, DayStats, NewBounce, NewBounceEvent,
    NewSuppression, RemovalFilter, StoreResult, Suppression, SuppressionWrites, Upserted,
    WindowStats,
};
use crate::vocab::{BounceKind, SuppressionSource};

/// A backend, as the shared steps use it.
#[async_trait]
pub(super) trait SqlBackend: Send + Sync + fmt::Debug {
    /// A connection, on which the statements run.
    type Conn: StoreStatements + JobStatements + ConfirmationStatements;
    /// A write transaction: a connection until it ends.
    type Tx: Commit + DerefMut<Target = Self::Conn>;

    /// The queries of `GET /stats`, in this backend's SQL.
    const STATS: StatsQueries;

    /// The queries of `GET /stats/daily`, in this backend's SQL.
    const DAILY: DailyQueries;

    /// Begins a write transaction.
    async fn begin_write(&self) -> StoreResult<Self::Tx>;

    /// Runs one of [`Self::STATS`]: `(key, count)` rows from `since` on.
    async fn count_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// Runs one of [`Self::DAILY`]: `(day number since the epoch, key,
    /// count)` rows from `since` on.
    async fn count_daily_rows(
        &self,
        sql: &'static str,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(i64, String, i64)>>;

    /// The queued and running jobs, oldest first.
    async fn active_jobs(&self) -> StoreResult<Vec<jobs::ActiveJob>>;
}

/// The end of a write transaction.
#[async_trait]
pub(super) trait Commit: Send + Sized {
    async fn commit(self) -> StoreResult<()>;
    async fn rollback(self) -> StoreResult<()>;
}

/// The statements of the store's writes (and the reads they need).
#[async_trait]
pub(super) trait StoreStatements: Send {
    /// Holds the suppression list's change sequence until the transaction
    /// ends, without taking a number: for writes that may change nothing.
    async fn lock_seq(&mut self) -> StoreResult<()>;

    /// Takes the next change sequence (and so holds it, see `lock_seq`).
    async fn next_seq(&mut self) -> StoreResult<i64>;

    /// Takes the next `count` change sequences at once; returns the first.
    async fn next_seqs(&mut self, count: i64) -> StoreResult<i64>;

    /// Which of these addresses have a live entry.
    async fn live_keys_among(&mut self, keys: &[String]) -> StoreResult<HashSet<String>>;

    /// The addresses of the live entries a bulk removal matches, in key
    /// order.
    async fn live_keys_matching(&mut self, filter: &RemovalFilter) -> StoreResult<Vec<String>>;

    /// Forgets the cached verdict of an address.
    async fn forget_verification(&mut self, address_key: &str) -> StoreResult<()>;

    /// The entry for an address, live or a tombstone.
    async fn suppression_entry(&mut self, address_key: &str) -> StoreResult<Option<Suppression>>;

    /// Writes a live entry for the address with change sequence `seq`; a
    /// re-added tombstone starts a new entry, created `now`.
    async fn write_suppression(
        &mut self,
        entry: &NewSuppression,
        seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Suppression>;

    /// Turns the address's live entry into a tombstone with change sequence
    /// `seq`; `None` when there is no live entry.
    async fn tombstone(
        &mut self,
        address_key: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Suppression>>;

    async fn insert_bounce(&mut self, event: &NewBounceEvent) -> StoreResult<BounceEvent>;

    async fn count_bounces(
        &mut self,
        address_key: &str,
        kind: BounceKind,
        since: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Stores verdicts, each replacing any earlier one for its address;
    /// `entries` come in key order, one per address.
    async fn put_verifications(&mut self, entries: &[&CachedVerification]) -> StoreResult<()>;

    /// Adds `count` fresh verdicts of `status` to the statistics of `hour`.
    async fn add_verification_count(
        &mut self,
        hour: DateTime<Utc>,
        status: &str,
        count: i64,
    ) -> StoreResult<()>;
}

/// The `(key, count)` queries of `GET /stats`, each with one parameter: the
/// time the window starts.
#[derive(Debug)]
pub(super) struct StatsQueries {
    /// Over `verification_counts`, whose rows are hourly.
    pub verifications_by_status: &'static str,
    pub suppressions_by_reason: &'static str,
    pub suppressions_by_source: &'static str,
    pub bounces_by_kind: &'static str,
}

pub(super) async fn stats<S: SqlBackend>(
    store: &S,
    since: DateTime<Utc>,
) -> StoreResult<WindowStats> {
    let queries = &S::STATS;
    // Hourly buckets: the window starts at the hour `since` falls in.
    let verifications = store
        .count_rows(queries.verifications_by_status, hour_of(since))
        .await?;
    let by_reason = store
        .count_rows(queries.suppressions_by_reason, since)
        .await?;
    let by_source = store
        .count_rows(queries.suppressions_by_source, since)
        .await?;
    let bounces = store.count_rows(queries.bounces_by_kind, since).await?;
    Ok(WindowStats {
        verifications_by_status: counts_map(verifications),
        suppressions_by_reason: counts_map(by_reason),
        suppressions_by_source: counts_map(by_source),
        bounces_by_kind: counts_map(bounces),
    })
}

/// The `(day, key, count)` queries of `GET /stats/daily`, each with one
/// parameter: the time the window starts. Days are numbered from the Unix
/// epoch, in UTC.
#[derive(Debug)]
pub(super) struct DailyQueries {
    pub verifications_by_status: &'static str,
    pub bounces_by_kind: &'static str,
    /// Keyed `added` (by `created_at`) and `removed` (tombstones, by
    /// `updated_at`).
    pub suppressions_changed: &'static str,
}

pub(super) async fn daily_stats<S: SqlBackend>(
    store: &S,
    since: DateTime<Utc>,
) -> StoreResult<BTreeMap<chrono::NaiveDate, DayStats>> {
    let queries = &S::DAILY;
    let start = since
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(since, |midnight| midnight.and_utc());
    let mut days: BTreeMap<chrono::NaiveDate, DayStats> = BTreeMap::new();
    let day_of = |number: i64| {
        DateTime::from_timestamp(number.saturating_mul(86_400), 0).map(|time| time.date_naive())
    };
    let count = |n: i64| n.max(0).unsigned_abs();
    for (number, status, n) in store
        .count_daily_rows(queries.verifications_by_status, start)
        .await?
    {
        if let Some(day) = day_of(number) {
            let entry = days.entry(day).or_default();
            *entry.verifications_by_status.entry(status).or_default() += count(n);
        }
    }
    for (number, kind, n) in store
        .count_daily_rows(queries.bounces_by_kind, start)
        .await?
    {
        if let Some(day) = day_of(number) {
            let entry = days.entry(day).or_default();
            *entry.bounces_by_kind.entry(kind).or_default() += count(n);
        }
    }
    for (number, change, n) in store
        .count_daily_rows(queries.suppressions_changed, start)
        .await?
    {
        if let Some(day) = day_of(number) {
            let entry = days.entry(day).or_default();
            match change.as_str() {
                "added" => entry.suppressions_added += count(n),
                _ => entry.suppressions_removed += count(n),
            }
        }
    }
    Ok(days)
}

pub(super) async fn record_verifications(
    store: &impl SqlBackend,
    entries: &[CachedVerification],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut counts: BTreeMap<(DateTime<Utc>, &'static str), i64> = BTreeMap::new();
    for entry in entries {
        *counts
            .entry((hour_of(entry.checked_at), entry.status.as_str()))
            .or_default() += 1;
    }
    // One lock order for every writer: no deadlocks between batches. Of
    // two verdicts for one address the later is kept, as writing them one
    // after the other would.
    let mut ordered: Vec<&CachedVerification> = entries.iter().rev().collect();
    ordered.sort_by(|a, b| a.address_key.cmp(&b.address_key));
    ordered.dedup_by(|later, kept| later.address_key == kept.address_key);
    let mut tx = store.begin_write().await?;
    tx.put_verifications(&ordered).await?;
    for ((hour, status), count) in counts {
        tx.add_verification_count(hour, status, count).await?;
    }
    tx.commit().await
}

/// Writes `entry` in a transaction that holds the change sequence's lock,
/// so that no other writer changes the entry meanwhile: nothing when an
/// identical live entry is there, else the entry with the next sequence.
async fn upsert_locked<C: StoreStatements + Send + ?Sized>(
    conn: &mut C,
    entry: &NewSuppression,
    now: DateTime<Utc>,
) -> StoreResult<(Suppression, Upserted)> {
    let existing = conn.suppression_entry(&entry.address_key).await?;
    let outcome = Upserted::plan(existing.as_ref(), entry);
    if let (Upserted::Unchanged, Some(existing)) = (outcome, existing) {
        return Ok((existing, outcome));
    }
    let seq = conn.next_seq().await?;
    Ok((conn.write_suppression(entry, seq, now).await?, outcome))
}

#[async_trait]
impl<S: SqlBackend> SuppressionWrites for S {
    async fn upsert_suppression(
        &self,
        entry: &NewSuppression,
        now: DateTime<Utc>,
    ) -> StoreResult<(Suppression, Upserted)> {
        let mut tx = self.begin_write().await?;
        tx.lock_seq().await?;
        let (stored, outcome) = upsert_locked(&mut *tx, entry, now).await?;
        if outcome == Upserted::Unchanged {
            // Nothing changed, and the sequence is given back.
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok((stored, outcome))
    }

    async fn upsert_suppressions(
        &self,
        entries: &[NewSuppression],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Suppression, Upserted)>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        tx.lock_seq().await?;
        let mut upserted = Vec::with_capacity(entries.len());
        for entry in entries {
            upserted.push(upsert_locked(&mut *tx, entry, now).await?);
        }
        if upserted
            .iter()
            .all(|(_, outcome)| *outcome == Upserted::Unchanged)
        {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(upserted)
    }

    async fn remove_suppression(
        &self,
        address_key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Suppression>> {
        let mut tx = self.begin_write().await?;
        let seq = tx.next_seq().await?;
        match tx.tombstone(address_key, seq, now).await? {
            Some(tombstone) => {
                tx.commit().await?;
                Ok(Some(tombstone))
            }
            None => {
                tx.rollback().await?;
                Ok(None)
            }
        }
    }

    async fn import_suppressions(
        &self,
        entries: &[NewSuppression],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        tx.lock_seq().await?;
        let keys: Vec<String> = entries
            .iter()
            .map(|entry| entry.address_key.clone())
            .collect();
        let mut present = tx.live_keys_among(&keys).await?;
        let added: Vec<bool> = entries
            .iter()
            .map(|entry| present.insert(entry.address_key.clone()))
            .collect();
        let count = added.iter().filter(|added| **added).count();
        if count == 0 {
            tx.rollback().await?;
            return Ok(added);
        }
        let first = tx.next_seqs(count as i64).await?;
        let new = entries.iter().zip(&added).filter(|(_, added)| **added);
        for (seq, (entry, _)) in (first..).zip(new) {
            tx.write_suppression(entry, seq, now).await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn remove_suppressions(
        &self,
        filter: &RemovalFilter,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        tx.lock_seq().await?;
        let keys = tx.live_keys_matching(filter).await?;
        if keys.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let first = tx.next_seqs(keys.len() as i64).await?;
        for (seq, key) in (first..).zip(&keys) {
            tx.tombstone(key, seq, now).await?;
            if filter.source == SuppressionSource::Verify {
                // The verdict behind the entry is what is being undone.
                tx.forget_verification(key).await?;
            }
        }
        tx.commit().await?;
        Ok(keys.len() as u64)
    }

    async fn record_bounces(
        &self,
        bounces: &[NewBounce],
        rules: &dyn BounceRules,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        tx.lock_seq().await?;
        let mut suppressed = Vec::with_capacity(bounces.len());
        for bounce in bounces {
            tx.insert_bounce(&bounce.event).await?;
            let key = &bounce.event.address_key;
            let live = tx
                .suppression_entry(key)
                .await?
                .filter(|entry| !entry.deleted);
            let soft_in_window = if bounce.event.kind == BounceKind::Soft {
                tx.count_bounces(key, BounceKind::Soft, now - rules.soft_window())
                    .await?
            } else {
                0
            };
            let plan = rules.plan(bounce, live.as_ref(), soft_in_window);
            if let BouncePlan::Suppress(entry) = &plan {
                let seq = tx.next_seq().await?;
                tx.write_suppression(entry, seq, now).await?;
            }
            suppressed.push(plan.suppressed());
        }
        tx.commit().await?;
        Ok(suppressed)
    }
}
