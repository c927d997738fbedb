//! The records the store keeps, independent of the backend.

use chrono::{DateTime, Utc};

use crate::vocab::{BounceKind, BounceOrigin, Diagnosis};
use crate::vocab::{Reason, Status};
use crate::vocab::{SuppressionReason, SuppressionSource};

/// A verification verdict kept for reuse until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedVerification {
    /// The matching key of the address (see `docs/ARCHITECTURE.md`).
    pub address_key: String,
    /// The normalized address.
    pub email: String,
    pub status: Status,
    pub reason: Reason,
    /// The full result as served by `POST /verify`.
    pub result: serde_json::Value,
    pub checked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A request to put an address on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    pub address_key: String,
    pub email: String,
    pub reason: SuppressionReason,
    pub source: SuppressionSource,
    pub evidence: Diagnosis,
}

/// An entry of the suppression list, live or a tombstone (`deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub address_key: String,
    pub email: String,
    pub reason: SuppressionReason,
    pub source: SuppressionSource,
    pub evidence: Diagnosis,
    pub deleted: bool,
    /// The position of this entry's last change in the change feed.
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which changes of the suppression list to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub reason: Option<SuppressionReason>,
    pub source: Option<SuppressionSource>,
}

/// What [`Store::upsert_suppression`](super::Store::upsert_suppression) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// The address was not suppressed (absent, or a tombstone) and now is.
    Created,
    /// The address was suppressed; its reason, source or evidence changed.
    Updated,
    /// The address was already suppressed with exactly this entry.
    Unchanged,
}

impl Upserted {
    /// Decides what an upsert does, given the entry stored for the address.
    pub(crate) fn plan(existing: Option<&Suppression>, new: &NewSuppression) -> Self {
        match existing {
            None => Upserted::Created,
            Some(old) if old.deleted => Upserted::Created,
            Some(old)
                if old.email == new.email
                    && old.reason == new.reason
                    && old.source == new.source
                    && old.evidence == new.evidence =>
            {
                Upserted::Unchanged
            }
            Some(_) => Upserted::Updated,
        }
    }
}

/// One bounce report for one recipient, as it is to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBounceEvent {
    pub address_key: String,
    pub email: String,
    pub kind: BounceKind,
    pub origin: BounceOrigin,
    pub evidence: Diagnosis,
    pub received_at: DateTime<Utc>,
}

/// A recorded bounce report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceEvent {
    pub id: i64,
    pub address_key: String,
    pub email: String,
    pub kind: BounceKind,
    pub origin: BounceOrigin,
    pub evidence: Diagnosis,
    pub received_at: DateTime<Utc>,
}

/// One recipient's bounce, to be recorded, with the suppression it calls
/// for: `Some` for a hard bounce or a complaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBounce {
    pub event: NewBounceEvent,
    pub suppress_as: Option<SuppressionReason>,
}

/// What recording a bounce does to the suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BouncePlan {
    /// Nothing: the bounce is only recorded.
    Nothing,
    /// The address is on the list already; its entry stays as it is.
    AlreadySuppressed,
    /// Put the address on the list with this entry.
    Suppress(NewSuppression),
}

impl BouncePlan {
    /// Whether the address is suppressed after the bounce.
    pub fn suppressed(&self) -> bool {
        !matches!(self, BouncePlan::Nothing)
    }
}

/// The rules by which bounces suppress addresses. The suppression list
/// supplies them (`suppress::policy`); the store applies them inside the
/// transaction that records the bounce, so that a decision and its write
/// are one.
pub trait BounceRules: Send + Sync {
    /// How far back soft bounces of an address are counted.
    fn soft_window(&self) -> chrono::Duration;

    /// What to do for `bounce`, given the address's live entry (if any) and
    /// its soft bounces within the window, this one included.
    fn plan(
        &self,
        bounce: &NewBounce,
        live: Option<&Suppression>,
        soft_in_window: u64,
    ) -> BouncePlan;
}

/// Counts over one window of time, for `GET /stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Fresh verdicts by status.
    pub verifications_by_status: std::collections::BTreeMap<String, u64>,
    /// Live suppressions created in the window, by reason and by source.
    pub suppressions_by_reason: std::collections::BTreeMap<String, u64>,
    pub suppressions_by_source: std::collections::BTreeMap<String, u64>,
    /// Bounce events received in the window, by kind.
    pub bounces_by_kind: std::collections::BTreeMap<String, u64>,
}

/// The start of the hour `at` falls in.
pub(crate) fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}
