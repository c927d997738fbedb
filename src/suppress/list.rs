//! The suppression list's owner. Every change to the list goes through
//! [`SuppressionList`]: additions by hand, suppressions of undeliverable
//! verdicts, bounce reports, removals. It alone holds the store's
//! suppression writes, counts the changes in metrics, and moves the list's
//! version, by which answers kept in memory know they are out of date.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::Utc;

use super::policy::SoftBouncePolicy;
use crate::address::EmailAddress;
use crate::store::{
    ChangeFilter, Database, Evidence, NewBounce, NewSuppression, RemovalFilter, StoreResult,
    Suppression, Upserted,
};
use crate::vocab::{SuppressionReason, SuppressionSource};

/// One address of a bulk import, with its reason and an optional note.
#[derive(Debug, Clone)]
pub struct ImportEntry {
    pub address: EmailAddress,
    pub reason: SuppressionReason,
    pub note: Option<String>,
}

/// What a bulk import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Entries that put an address on the list.
    pub added: u64,
    /// Entries whose address was on the list already (or earlier in the
    /// same import); their entries are kept as they were.
    pub existing: u64,
}

/// The suppression list.
#[derive(Debug)]
pub struct SuppressionList {
    db: Arc<dyn Database>,
    bounce_policy: SoftBouncePolicy,
    /// Moves with every change this process makes or sees.
    version: AtomicU64,
    /// The list's change sequence when last polled; `-1` until then.
    seen_seq: AtomicI64,
}

impl SuppressionList {
    pub fn new(db: Arc<dyn Database>, bounce_policy: SoftBouncePolicy) -> Self {
        SuppressionList {
            db,
            bounce_policy,
            version: AtomicU64::new(0),
            seen_seq: AtomicI64::new(-1),
        }
    }

    /// A number that changes whenever the list may have changed: by this
    /// process at once, by another replica when [`Self::poll`] sees it. An
    /// answer read against one version is stale under any other.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Reads the list's change sequence, which moves with every change by
    /// any replica, and moves the version if it moved. A failed read moves
    /// it too: nothing is known about the list then.
    pub async fn poll(&self) -> StoreResult<()> {
        match self.db.suppression_seq().await {
            Ok(seq) => {
                if self.seen_seq.swap(seq, Ordering::AcqRel) != seq {
                    self.changed();
                }
                Ok(())
            }
            Err(err) => {
                self.changed();
                Err(err)
            }
        }
    }

    /// Notes the list's change sequence as another replica's change made
    /// it (a notification): the version moves if the sequence did.
    pub fn observe_seq(&self, seq: i64) {
        if self.seen_seq.fetch_max(seq, Ordering::AcqRel) < seq {
            self.changed();
        }
    }

    /// The live entry for an address.
    pub async fn get(&self, address: &EmailAddress) -> StoreResult<Option<Suppression>> {
        self.db.suppression(&address.key()).await
    }

    /// The live entries among the address keys, in one read.
    pub async fn get_among(&self, keys: &[String]) -> StoreResult<Vec<Suppression>> {
        self.db.suppressions_among(keys).await
    }

    /// Entries changed after `after_seq`, in change order, tombstones
    /// included (the change feed).
    pub async fn changes(
        &self,
        after_seq: i64,
        limit: u32,
        filter: &ChangeFilter,
    ) -> StoreResult<Vec<Suppression>> {
        self.db.suppression_changes(after_seq, limit, filter).await
    }

    /// Adds an address by hand (an operator, a CRM), with the note given as
    /// its evidence. An address already on the list keeps its entry and its
    /// evidence: a hand-made entry never overwrites a bounce's. Returns the
    /// entry and whether it is new.
    pub async fn add(
        &self,
        address: &EmailAddress,
        reason: SuppressionReason,
        note: Option<String>,
    ) -> StoreResult<(Suppression, bool)> {
        if let Some(existing) = self.get(address).await? {
            return Ok((existing, false));
        }
        let entry = hand_made(address, reason, note);
        let (stored, outcome) = self.upsert(&entry).await?;
        Ok((stored, outcome == Upserted::Created))
    }

    /// Adds many addresses by hand, all or none, in one transaction. As with
    /// [`Self::add`], an address already on the list keeps its entry, so
    /// importing the same list again adds nothing.
    pub async fn import(&self, entries: &[ImportEntry]) -> StoreResult<Imported> {
        if entries.is_empty() {
            return Ok(Imported::default());
        }
        let new: Vec<NewSuppression> = entries
            .iter()
            .map(|entry| hand_made(&entry.address, entry.reason, entry.note.clone()))
            .collect();
        let outcome = self.db.import_suppressions(&new, Utc::now()).await;
        // A failed write may still have committed (its answer lost).
        self.changed();
        let added = outcome?.into_iter().filter(|added| *added).count() as u64;
        metrics::counter!("mailvet_suppressions_added_total", "source" => SuppressionSource::Api.as_str())
            .increment(added);
        Ok(Imported {
            added,
            existing: entries.len() as u64 - added,
        })
    }

    /// Suppresses the addresses whose verification found a permanent
    /// failure of the recipient, each with what the verification saw (the
    /// server's reply or the DNS answer): one transaction for the lot, so
    /// that a batch's or a job group's failures take one turn at the
    /// change sequence rather than one each.
    pub async fn add_undeliverables(
        &self,
        found: Vec<(&EmailAddress, SuppressionReason, Evidence)>,
    ) -> StoreResult<()> {
        let entries: Vec<NewSuppression> = found
            .into_iter()
            .map(|(address, reason, evidence)| NewSuppression {
                address_key: address.key(),
                email: address.normalized(),
                reason,
                source: SuppressionSource::Verify,
                evidence,
            })
            .collect();
        let upserted = self.db.upsert_suppressions(&entries, Utc::now()).await;
        // A failed write may still have committed (its answer lost).
        let Ok(upserted) = upserted else {
            self.changed();
            return upserted.map(|_| ());
        };
        if upserted
            .iter()
            .any(|(_, outcome)| *outcome != Upserted::Unchanged)
        {
            self.changed();
        }
        let created = upserted
            .iter()
            .filter(|(_, outcome)| *outcome == Upserted::Created)
            .count();
        metrics::counter!("mailvet_suppressions_added_total", "source" => SuppressionSource::Verify.as_str())
            .increment(created as u64);
        Ok(())
    }

    async fn upsert(&self, entry: &NewSuppression) -> StoreResult<(Suppression, Upserted)> {
        let (stored, outcome) = self.db.upsert_suppression(entry, Utc::now()).await?;
        if outcome != Upserted::Unchanged {
            self.changed();
        }
        if outcome == Upserted::Created {
            metrics::counter!("mailvet_suppressions_added_total", "source" => entry.source.as_str())
                .increment(1);
        }
        Ok((stored, outcome))
    }

    /// Takes an address off the list, leaving a tombstone in the change
    /// feed. `None` when it was not on the list.
    pub async fn remove(&self, address: &EmailAddress) -> StoreResult<Option<Suppression>> {
        let removed = self
            .db
            .remove_suppression(&address.key(), Utc::now())
            .await?;
        if removed.is_some() {
            self.changed();
            metrics::counter!("mailvet_suppressions_removed_total").increment(1);
        }
        Ok(removed)
    }

    /// Takes every live entry that `filter` matches off the list (an undo of
    /// a bad batch), each leaving a tombstone in the change feed, in one
    /// transaction; verdicts cached for undone verification suppressions
    /// are forgotten with them. Returns how many were removed.
    pub async fn remove_matching(&self, filter: &RemovalFilter) -> StoreResult<u64> {
        let outcome = self.db.remove_suppressions(filter, Utc::now()).await;
        // Answers kept in memory are retired even if the answer was lost.
        self.changed();
        let removed = outcome?;
        metrics::counter!("mailvet_suppressions_removed_total").increment(removed);
        Ok(removed)
    }

    /// Records the bounces of one report and the suppressions they call for
    /// (see [`super::policy`]), in one transaction. Returns, per bounce,
    /// whether the address is suppressed because of it.
    pub async fn record_bounces(&self, bounces: &[NewBounce]) -> StoreResult<Vec<bool>> {
        if bounces.is_empty() {
            return Ok(Vec::new());
        }
        let outcome = self
            .db
            .record_bounces(bounces, &self.bounce_policy, Utc::now())
            .await;
        // Even a failed write may have reached the database (a commit whose
        // answer was lost): treat the list as changed either way.
        self.changed();
        let suppressed = outcome?;
        Ok(suppressed)
    }
}

/// The entry for an address added by hand: the note is its evidence.
fn hand_made(
    address: &EmailAddress,
    reason: SuppressionReason,
    note: Option<String>,
) -> NewSuppression {
    NewSuppression {
        address_key: address.key(),
        email: address.normalized(),
        reason,
        source: SuppressionSource::Api,
        evidence: Evidence::note(note, Utc::now()),
    }
}
