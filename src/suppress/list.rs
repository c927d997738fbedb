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
    ChangeFilter, Database, NewBounce, NewSuppression, StoreResult, Suppression, Upserted,
};
use crate::vocab::{Diagnosis, SuppressionReason, SuppressionSource};

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

    /// The live entry for an address.
    pub async fn get(&self, address: &EmailAddress) -> StoreResult<Option<Suppression>> {
        self.db.suppression(&address.key()).await
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

    /// Adds an address by hand (an operator, a CRM). An address already on
    /// the list keeps its entry and its evidence: a hand-made entry never
    /// overwrites a bounce's. Returns the entry and whether it is new.
    pub async fn add(
        &self,
        address: &EmailAddress,
        reason: SuppressionReason,
        diagnostic: Option<String>,
    ) -> StoreResult<(Suppression, bool)> {
        if let Some(existing) = self.get(address).await? {
            return Ok((existing, false));
        }
        let entry = NewSuppression {
            address_key: address.key(),
            email: address.normalized(),
            reason,
            source: SuppressionSource::Api,
            evidence: Diagnosis {
                diagnostic,
                ..Diagnosis::default()
            },
        };
        let (stored, outcome) = self.upsert(&entry).await?;
        Ok((stored, outcome == Upserted::Created))
    }

    /// Suppresses an address whose verification found a permanent failure
    /// of the recipient, with the server's evidence.
    pub async fn add_undeliverable(
        &self,
        address: &EmailAddress,
        reason: SuppressionReason,
        evidence: Diagnosis,
    ) -> StoreResult<Suppression> {
        let entry = NewSuppression {
            address_key: address.key(),
            email: address.normalized(),
            reason,
            source: SuppressionSource::Verify,
            evidence,
        };
        Ok(self.upsert(&entry).await?.0)
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
