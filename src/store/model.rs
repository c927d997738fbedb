//! The records the store keeps, independent of the backend.

use chrono::{DateTime, Utc};

use crate::vocab::{BounceKind, BounceOrigin, Diagnosis, SmtpEvidence, bounded_text};
use crate::vocab::{Reason, Status};
use crate::vocab::{SuppressionReason, SuppressionSource, snake_case_enum};

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

snake_case_enum! {
    /// What kind of observation put an address on the suppression list.
    EvidenceKind, "evidence kind" {
        /// A mail server's reply to our probe's `RCPT TO`.
        SmtpReply => "smtp_reply",
        /// A bounce or complaint report: an RFC 3464 DSN, a plain-text or
        /// ARF report, a JSON report or an ESP's event.
        Dsn => "dsn",
        /// A DNS answer that names no mail host (NXDOMAIN with the zone's
        /// SOA, a null MX, no MX and no address).
        Dns => "dns",
        /// A person's word: an entry added or imported through the API.
        Note => "note",
    }
}

/// The observation that put an address on the suppression list, kept with
/// its entry. Fields that do not apply to its kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// The SMTP reply code (a reply; a DSN's `Diagnostic-Code`).
    pub code: Option<u16>,
    /// The RFC 3463 status: a reply's enhanced code, a DSN's `Status`.
    pub enhanced_code: Option<String>,
    /// The reply's or report's text, the DNS answer in words, or the note.
    pub text: Option<String>,
    /// The mail server that replied or that the report names (Remote-MTA).
    pub host: Option<String>,
    /// The domain whose DNS answer this is.
    pub domain: Option<String>,
    /// Where a report came from.
    pub origin: Option<BounceOrigin>,
    /// When mailvet saw it: the probe's reply, the report's arrival, the
    /// entry's addition.
    #[serde(with = "crate::rfc3339")]
    pub observed_at: DateTime<Utc>,
}

impl Evidence {
    fn empty(kind: EvidenceKind, observed_at: DateTime<Utc>) -> Self {
        Evidence {
            kind,
            code: None,
            enhanced_code: None,
            text: None,
            host: None,
            domain: None,
            origin: None,
            observed_at,
        }
    }

    /// A mail server's reply to the probe.
    pub fn smtp_reply(reply: &SmtpEvidence, observed_at: DateTime<Utc>) -> Self {
        Evidence {
            code: Some(reply.code),
            enhanced_code: reply.enhanced_code.clone(),
            text: Some(reply.message.clone()),
            host: Some(reply.host.clone()).filter(|host| !host.is_empty()),
            ..Self::empty(EvidenceKind::SmtpReply, observed_at)
        }
    }

    /// A DNS answer for `domain`, described by `answer`.
    pub fn dns(domain: &str, answer: Option<String>, observed_at: DateTime<Utc>) -> Self {
        Evidence {
            domain: Some(domain.to_owned()),
            text: answer,
            ..Self::empty(EvidenceKind::Dns, observed_at)
        }
    }

    /// A bounce or complaint report, as much of it as the report gave.
    pub fn report(origin: BounceOrigin, diagnosis: &Diagnosis, observed_at: DateTime<Utc>) -> Self {
        Evidence {
            code: diagnosis.smtp_code,
            enhanced_code: diagnosis.enhanced_code.clone(),
            text: diagnosis.diagnostic.as_deref().map(bounded_text),
            host: diagnosis.mx_host.clone(),
            origin: Some(origin),
            ..Self::empty(EvidenceKind::Dsn, observed_at)
        }
    }

    /// A person's note (or none).
    pub fn note(text: Option<String>, observed_at: DateTime<Utc>) -> Self {
        Evidence {
            text: text.as_deref().map(bounded_text),
            ..Self::empty(EvidenceKind::Note, observed_at)
        }
    }

    /// The same observation, whenever it was made.
    pub fn same_as(&self, other: &Evidence) -> bool {
        Evidence {
            observed_at: other.observed_at,
            ..self.clone()
        } == *other
    }

    /// The flat evidence columns the entry also keeps (and shows as
    /// `smtp_code`, `enhanced_code`, `diagnostic`, `mx_host`).
    pub fn diagnosis(&self) -> Diagnosis {
        Diagnosis {
            smtp_code: self.code,
            enhanced_code: self.enhanced_code.clone(),
            diagnostic: self.text.clone(),
            mx_host: self.host.clone(),
        }
    }
}

/// A request to put an address on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSuppression {
    pub address_key: String,
    pub email: String,
    pub reason: SuppressionReason,
    pub source: SuppressionSource,
    pub evidence: Evidence,
}

/// An entry of the suppression list, live or a tombstone (`deleted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub address_key: String,
    pub email: String,
    pub reason: SuppressionReason,
    pub source: SuppressionSource,
    /// The reply or report fields, kept flat (entries made before evidence
    /// was kept have only these).
    pub diagnosis: Diagnosis,
    /// What put the address on the list; `None` for entries made before
    /// evidence was kept.
    pub evidence: Option<Evidence>,
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
    /// Only changes made at or after this time (`updated_at`).
    pub since: Option<DateTime<Utc>>,
    /// Only changes made before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Which live entries a bulk removal (an undo) takes off the list: those
/// from `source`, put on the list (`created_at`) at or after `since` and
/// before `until`, optionally only with `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovalFilter {
    pub source: SuppressionSource,
    pub reason: Option<SuppressionReason>,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
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
                    && old
                        .evidence
                        .as_ref()
                        .is_some_and(|evidence| evidence.same_as(&new.evidence)) =>
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

/// Counts of one UTC day, for `GET /stats/daily`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStats {
    /// Fresh verdicts by status.
    pub verifications_by_status: std::collections::BTreeMap<String, u64>,
    /// Bounce events received, by kind.
    pub bounces_by_kind: std::collections::BTreeMap<String, u64>,
    /// Suppressions first created that day (entries removed later
    /// included).
    pub suppressions_added: u64,
    /// Suppressions whose removal was that day (tombstones; an entry
    /// removed twice counts on the day of its last removal).
    pub suppressions_removed: u64,
}

/// What the store holds now, for the operator's gauges: cheap counts,
/// sampled in the background rather than at every scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreGauges {
    /// Live entries on the suppression list.
    pub suppressions: u64,
    /// Jobs waiting for a worker.
    pub jobs_queued: u64,
    /// Jobs being worked on.
    pub jobs_running: u64,
    /// Addresses of queued and running jobs not verified yet.
    pub job_addresses_pending: u64,
}

impl StoreGauges {
    /// The gauges from the count of live suppressions and, per active job
    /// status (`queued` or `running`), its jobs and their pending
    /// addresses, as both backends' queries give them.
    pub(crate) fn from_counts(suppressions: i64, jobs: Vec<(String, i64, i64)>) -> Self {
        let mut gauges = StoreGauges {
            suppressions: suppressions.max(0).unsigned_abs(),
            ..StoreGauges::default()
        };
        for (status, count, pending) in jobs {
            let count = count.max(0).unsigned_abs();
            match status.as_str() {
                "queued" => gauges.jobs_queued = count,
                _ => gauges.jobs_running = count,
            }
            gauges.job_addresses_pending += pending.max(0).unsigned_abs();
        }
        gauges
    }
}

/// The start of the hour `at` falls in.
pub(crate) fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}
