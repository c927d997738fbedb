//! Rows as the backends return them, and their reading into the store's
//! records: written once for both backends.
//!
//! The two schemas hold the same columns and differ only in how they store a
//! few kinds of value (times, ids, JSON, `integer`); [`ColumnTypes`] names
//! those per backend, and each row type is generic over it. Stored enum
//! names are read back strictly: an unknown name makes the row
//! [`StoreError::Corrupt`], never a guess.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Sqlite};
use uuid::Uuid;

use crate::store::jobs::{ClaimedItem, Job, JobResultRow, StatusCounts};
use crate::store::{
    BounceEvent, CachedVerification, Evidence, StoreError, StoreResult, Suppression,
};
use crate::vocab::Diagnosis;

/// How a backend stores the values the rows hold, and how they read back.
pub(in crate::store) trait ColumnTypes {
    /// A point in time: `timestamptz` on Postgres; on SQLite, milliseconds
    /// since the Unix epoch.
    type Time;
    /// An `integer` column: 32 bits on Postgres, 64 on SQLite.
    type Int: Into<i64>;
    /// A job id: `uuid` on Postgres, its text on SQLite.
    type Uuid;
    /// A JSON document: `jsonb` on Postgres, its text on SQLite.
    type Json;

    fn time(column: &str, value: Self::Time) -> StoreResult<DateTime<Utc>>;
    fn uuid(column: &str, value: Self::Uuid) -> StoreResult<Uuid>;
    fn json(column: &str, value: Self::Json) -> StoreResult<serde_json::Value>;
}

impl ColumnTypes for Postgres {
    type Time = DateTime<Utc>;
    type Int = i32;
    type Uuid = Uuid;
    type Json = serde_json::Value;

    fn time(_column: &str, value: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
        Ok(value)
    }

    fn uuid(_column: &str, value: Uuid) -> StoreResult<Uuid> {
        Ok(value)
    }

    fn json(_column: &str, value: serde_json::Value) -> StoreResult<serde_json::Value> {
        Ok(value)
    }
}

impl ColumnTypes for Sqlite {
    type Time = i64;
    type Int = i64;
    type Uuid = String;
    type Json = String;

    fn time(column: &str, value: i64) -> StoreResult<DateTime<Utc>> {
        DateTime::from_timestamp_millis(value)
            .ok_or_else(|| StoreError::Corrupt(format!("{column}: {value} is not a time")))
    }

    fn uuid(column: &str, value: String) -> StoreResult<Uuid> {
        Uuid::parse_str(&value).map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
    }

    fn json(column: &str, value: String) -> StoreResult<serde_json::Value> {
        serde_json::from_str(&value).map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
    }
}

/// Reads a nullable time column back.
fn maybe_time<DB: ColumnTypes>(
    column: &str,
    value: Option<DB::Time>,
) -> StoreResult<Option<DateTime<Utc>>> {
    value.map(|value| DB::time(column, value)).transpose()
}

/// Reads a stored enum name back, or reports the row as corrupt.
pub(in crate::store) fn parse_stored<T>(column: &str, value: &str) -> StoreResult<T>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    value
        .parse()
        .map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
}

/// Reads a stored count back (a negative one counts as none).
pub(in crate::store) fn stored_count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Reads `(key, count)` rows into a map.
pub(in crate::store) fn counts_map(rows: Vec<(String, i64)>) -> BTreeMap<String, u64> {
    rows.into_iter()
        .map(|(key, value)| (key, stored_count(value)))
        .collect()
}

// ---- the suppression list and bounces --------------------------------

/// The columns of `suppressions`, as [`SuppressionRow`] reads them.
macro_rules! suppression_columns {
    () => {
        "address_key, email, reason, source, smtp_code, enhanced_code, \
         diagnostic, mx_host, evidence, deleted, seq, created_at, updated_at"
    };
}
pub(in crate::store) use suppression_columns;

/// An entry's evidence as the `evidence` column stores it: its JSON text.
pub(in crate::store) fn evidence_json(evidence: &Evidence) -> String {
    serde_json::to_string(evidence).expect("evidence serialises")
}

/// The SMTP evidence columns of `suppressions` and `bounce_events`.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct EvidenceRow<DB: ColumnTypes> {
    smtp_code: Option<DB::Int>,
    enhanced_code: Option<String>,
    diagnostic: Option<String>,
    mx_host: Option<String>,
}

impl<DB: ColumnTypes> TryFrom<EvidenceRow<DB>> for Diagnosis {
    type Error = StoreError;

    fn try_from(row: EvidenceRow<DB>) -> StoreResult<Self> {
        let smtp_code = row
            .smtp_code
            .map(|code| {
                let code: i64 = code.into();
                u16::try_from(code)
                    .map_err(|_| StoreError::Corrupt(format!("smtp_code: {code} out of range")))
            })
            .transpose()?;
        Ok(Diagnosis {
            smtp_code,
            enhanced_code: row.enhanced_code,
            diagnostic: row.diagnostic,
            mx_host: row.mx_host,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct SuppressionRow<DB: ColumnTypes> {
    address_key: String,
    email: String,
    reason: String,
    source: String,
    #[sqlx(flatten)]
    diagnosis: EvidenceRow<DB>,
    evidence: Option<DB::Json>,
    deleted: bool,
    seq: i64,
    created_at: DB::Time,
    updated_at: DB::Time,
}

impl<DB: ColumnTypes> TryFrom<SuppressionRow<DB>> for Suppression {
    type Error = StoreError;

    fn try_from(row: SuppressionRow<DB>) -> StoreResult<Self> {
        Ok(Suppression {
            address_key: row.address_key,
            email: row.email,
            reason: parse_stored("reason", &row.reason)?,
            source: parse_stored("source", &row.source)?,
            diagnosis: row.diagnosis.try_into()?,
            evidence: row
                .evidence
                .map(|json| {
                    serde_json::from_value(DB::json("evidence", json)?)
                        .map_err(|err| StoreError::Corrupt(format!("evidence: {err}")))
                })
                .transpose()?,
            deleted: row.deleted,
            seq: row.seq,
            created_at: DB::time("created_at", row.created_at)?,
            updated_at: DB::time("updated_at", row.updated_at)?,
        })
    }
}

/// The columns of `bounce_events`, as [`BounceRow`] reads them.
macro_rules! bounce_columns {
    () => {
        "id, address_key, email, kind, origin, smtp_code, enhanced_code, \
         diagnostic, mx_host, received_at"
    };
}
pub(in crate::store) use bounce_columns;

#[derive(sqlx::FromRow)]
pub(in crate::store) struct BounceRow<DB: ColumnTypes> {
    id: i64,
    address_key: String,
    email: String,
    kind: String,
    origin: String,
    #[sqlx(flatten)]
    evidence: EvidenceRow<DB>,
    received_at: DB::Time,
}

impl<DB: ColumnTypes> TryFrom<BounceRow<DB>> for BounceEvent {
    type Error = StoreError;

    fn try_from(row: BounceRow<DB>) -> StoreResult<Self> {
        Ok(BounceEvent {
            id: row.id,
            address_key: row.address_key,
            email: row.email,
            kind: parse_stored("kind", &row.kind)?,
            origin: parse_stored("origin", &row.origin)?,
            evidence: row.evidence.try_into()?,
            received_at: DB::time("received_at", row.received_at)?,
        })
    }
}

// ---- the verification cache ------------------------------------------

/// The columns of `verifications`, as [`VerificationRow`] reads them.
macro_rules! verification_columns {
    () => {
        "address_key, email, status, reason, result, checked_at, expires_at"
    };
}
pub(in crate::store) use verification_columns;

#[derive(sqlx::FromRow)]
pub(in crate::store) struct VerificationRow<DB: ColumnTypes> {
    address_key: String,
    email: String,
    status: String,
    reason: String,
    result: DB::Json,
    checked_at: DB::Time,
    expires_at: DB::Time,
}

impl<DB: ColumnTypes> TryFrom<VerificationRow<DB>> for CachedVerification {
    type Error = StoreError;

    fn try_from(row: VerificationRow<DB>) -> StoreResult<Self> {
        Ok(CachedVerification {
            address_key: row.address_key,
            email: row.email,
            status: parse_stored("status", &row.status)?,
            reason: parse_stored("reason", &row.reason)?,
            result: DB::json("result", row.result)?,
            checked_at: DB::time("checked_at", row.checked_at)?,
            expires_at: DB::time("expires_at", row.expires_at)?,
        })
    }
}

// ---- bulk jobs ---------------------------------------------------------

/// The columns of `jobs`, as [`JobRow`] reads them.
macro_rules! job_columns {
    () => {
        "id, status, total, processed, deliverable, undeliverable, risky, unknown, \
         webhook_url, webhook_attempts, created_at, updated_at, started_at, completed_at"
    };
}
pub(in crate::store) use job_columns;

#[derive(sqlx::FromRow)]
pub(in crate::store) struct JobRow<DB: ColumnTypes> {
    id: DB::Uuid,
    status: String,
    total: i64,
    processed: i64,
    deliverable: i64,
    undeliverable: i64,
    risky: i64,
    unknown: i64,
    webhook_url: Option<String>,
    webhook_attempts: DB::Int,
    created_at: DB::Time,
    updated_at: DB::Time,
    started_at: Option<DB::Time>,
    completed_at: Option<DB::Time>,
}

impl<DB: ColumnTypes> TryFrom<JobRow<DB>> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow<DB>) -> StoreResult<Self> {
        Ok(Job {
            id: DB::uuid("id", row.id)?,
            status: parse_stored("status", &row.status)?,
            total: stored_count(row.total),
            processed: stored_count(row.processed),
            counts: StatusCounts {
                deliverable: stored_count(row.deliverable),
                undeliverable: stored_count(row.undeliverable),
                risky: stored_count(row.risky),
                unknown: stored_count(row.unknown),
            },
            webhook_url: row.webhook_url,
            webhook_attempts: small_count(row.webhook_attempts.into()),
            created_at: DB::time("created_at", row.created_at)?,
            updated_at: DB::time("updated_at", row.updated_at)?,
            started_at: maybe_time::<DB>("started_at", row.started_at)?,
            completed_at: maybe_time::<DB>("completed_at", row.completed_at)?,
        })
    }
}

/// Reads a stored attempt count back (a negative one counts as none).
fn small_count(value: i64) -> u32 {
    value.max(0) as u32
}

/// The columns of `job_items` a claim returns, as [`ClaimedItemRow`] reads
/// them.
macro_rules! claimed_item_columns {
    () => {
        "seq, email, domain, attempts"
    };
}
pub(in crate::store) use claimed_item_columns;

#[derive(sqlx::FromRow)]
pub(in crate::store) struct ClaimedItemRow<DB: ColumnTypes> {
    seq: i64,
    email: String,
    domain: String,
    attempts: DB::Int,
}

impl<DB: ColumnTypes> From<ClaimedItemRow<DB>> for ClaimedItem {
    fn from(row: ClaimedItemRow<DB>) -> Self {
        ClaimedItem {
            seq: stored_count(row.seq),
            email: row.email,
            domain: row.domain,
            attempts: small_count(row.attempts.into()),
        }
    }
}

/// A stored result, as `select seq, result from job_items` returns it.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct ResultRow {
    seq: i64,
    result: Option<String>,
}

impl From<ResultRow> for JobResultRow {
    fn from(row: ResultRow) -> Self {
        JobResultRow {
            seq: stored_count(row.seq),
            result: row.result.unwrap_or_default(),
        }
    }
}
