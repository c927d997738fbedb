//! The suppression list over HTTP: add (one address or an import), look
//! up and remove one address, and undo a batch.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::import::{self, AddRequest};
use super::{ApiError, AppState};
use crate::address::EmailAddress;
use crate::store::{Evidence, RemovalFilter, Suppression};
use crate::vocab::{SuppressionReason, SuppressionSource};

/// A suppression entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct SuppressionBody {
    email: String,
    reason: SuppressionReason,
    source: SuppressionSource,
    smtp_code: Option<u16>,
    enhanced_code: Option<String>,
    diagnostic: Option<String>,
    mx_host: Option<String>,
    /// What put the address on the list; `null` for entries made before
    /// evidence was kept.
    evidence: Option<Evidence>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    updated_at: DateTime<Utc>,
    deleted: bool,
}

impl SuppressionBody {
    /// The entry as a CSV row, in the columns of the CSV feed.
    pub fn csv_record(&self) -> [String; 10] {
        let optional = |value: Option<&str>| value.unwrap_or_default().to_owned();
        let time = crate::rfc3339::format;
        [
            self.email.clone(),
            self.reason.to_string(),
            self.source.to_string(),
            self.smtp_code
                .map(|code| code.to_string())
                .unwrap_or_default(),
            optional(self.enhanced_code.as_deref()),
            optional(self.diagnostic.as_deref()),
            optional(self.mx_host.as_deref()),
            time(&self.created_at),
            time(&self.updated_at),
            self.deleted.to_string(),
        ]
    }
}

impl From<Suppression> for SuppressionBody {
    fn from(entry: Suppression) -> Self {
        SuppressionBody {
            email: entry.email,
            reason: entry.reason,
            source: entry.source,
            smtp_code: entry.diagnosis.smtp_code,
            enhanced_code: entry.diagnosis.enhanced_code,
            diagnostic: entry.diagnosis.diagnostic,
            mx_host: entry.diagnosis.mx_host,
            evidence: entry.evidence,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
            deleted: entry.deleted,
        }
    }
}

/// An address from the path. One that cannot be parsed cannot be on the
/// list either.
fn parse_path_address(email: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(email).map_err(|err| {
        ApiError::not_found(format!(
            "not on the suppression list: not a valid address ({err})"
        ))
    })
}

/// What an import did.
#[derive(Debug, Serialize)]
pub struct ImportBody {
    added: u64,
    existing: u64,
}

/// `POST /suppressions`: suppress an address by hand, or import a list
/// (JSON `{"suppressions": [...]}` or CSV), all or nothing. Idempotent: an
/// address already on the list keeps its entry (and its evidence); one
/// address answers 200 then, an import counts it as `existing`.
pub async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match import::read(&headers, &body)? {
        AddRequest::One(entry) => {
            let (stored, created) = state
                .suppressions
                .add(&entry.address, entry.reason, entry.note)
                .await?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(SuppressionBody::from(stored))).into_response())
        }
        AddRequest::Many(entries) => {
            let imported = state.suppressions.import(&entries).await?;
            Ok(Json(ImportBody {
                added: imported.added,
                existing: imported.existing,
            })
            .into_response())
        }
    }
}

/// `GET /suppressions/{email}`: the live entry for an address.
pub async fn get(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<Json<SuppressionBody>, ApiError> {
    let address = parse_path_address(&email)?;
    match state.suppressions.get(&address).await? {
        Some(entry) => Ok(Json(entry.into())),
        None => Err(ApiError::not_found("not on the suppression list")),
    }
}

/// `DELETE /suppressions/{email}`: take an address off the list; the feed
/// reports the removal as a tombstone.
pub async fn remove(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    let address = parse_path_address(&email)?;
    match state.suppressions.remove(&address).await? {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found("not on the suppression list")),
    }
}

/// The query of `DELETE /suppressions`. Unknown parameters are refused: a
/// misspelt `until` must not widen what is removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoQuery {
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    reason: Option<String>,
}

/// How many entries an undo removed.
#[derive(Debug, Serialize)]
pub struct UndoBody {
    removed: u64,
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// A time parameter: RFC 3339 with an offset. A `+` offset sent without
/// percent-encoding arrives as a space, and is read as the `+` it was.
pub(super) fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|err| match text.rsplit_once(' ') {
            Some((time, offset)) => DateTime::parse_from_rfc3339(&format!("{time}+{offset}")),
            None => Err(err),
        })
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| {
            bad_request(format!(
                "`{name}` must be an RFC 3339 time with an offset, such as \
                 2026-11-28T10:00:00Z (`{text}`: {err})"
            ))
        })
}

/// `until` must come after `since` when both are given.
pub(super) fn check_span(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(), ApiError> {
    match (since, until) {
        (Some(since), Some(until)) if until <= since => Err(bad_request(format!(
            "`until` ({}) must be later than `since` ({})",
            crate::rfc3339::format(&until),
            crate::rfc3339::format(&since)
        ))),
        _ => Ok(()),
    }
}

/// A suppression source, named as the API names it.
/// The words an operator is likely to type for a source are taken too:
/// `verification` for `verify`, `manual` for `api`.
pub(super) fn parse_source(text: &str) -> Result<SuppressionSource, ApiError> {
    let text = match text {
        "verification" => "verify",
        "manual" => "api",
        other => other,
    };
    text.parse().map_err(|_| {
        bad_request(format!(
            "`source`: unknown suppression source `{text}`; the sources are verify \
             (a verification found the mailbox or domain missing), bounce and api"
        ))
    })
}

/// A suppression reason, named as the API names it.
pub(super) fn parse_reason(text: &str) -> Result<SuppressionReason, ApiError> {
    text.parse().map_err(|_| {
        let known: Vec<&str> = SuppressionReason::ALL.iter().map(|r| r.as_str()).collect();
        bad_request(format!(
            "`reason`: unknown suppression reason `{text}`; the reasons are {}",
            known.join(", ")
        ))
    })
}

impl UndoQuery {
    /// An undo as the dashboard's form gives it.
    pub(super) fn new(source: String, since: String, until: Option<String>) -> Self {
        UndoQuery {
            source: Some(source),
            since: Some(since),
            until,
            reason: None,
        }
    }
}

pub(super) fn parse_undo(query: &UndoQuery) -> Result<RemovalFilter, ApiError> {
    let source = match query.source.as_deref() {
        Some(text) => parse_source(text)?,
        None => {
            return Err(bad_request(
                "`source` is required: which entries to remove, verify, bounce or api".into(),
            ));
        }
    };
    let since = match query.since.as_deref() {
        Some(text) => parse_time("since", text)?,
        None => {
            return Err(bad_request(
                "`since` is required: entries put on the list at or after this time \
                 (RFC 3339, such as 2026-11-28T10:00:00Z) are removed"
                    .into(),
            ));
        }
    };
    let until = query
        .until
        .as_deref()
        .map(|text| parse_time("until", text))
        .transpose()?;
    check_span(Some(since), until)?;
    let reason = query.reason.as_deref().map(parse_reason).transpose()?;
    Ok(RemovalFilter {
        source,
        reason,
        since,
        until,
    })
}

/// `DELETE /suppressions?source=&since=[&until=][&reason=]`: undo a batch.
/// Removes every live entry from `source` put on the list at or after
/// `since` (and before `until`, with `reason`), each leaving a tombstone in
/// the feed, in one transaction.
pub async fn undo(
    State(state): State<AppState>,
    Query(query): Query<UndoQuery>,
) -> Result<Json<UndoBody>, ApiError> {
    let filter = parse_undo(&query)?;
    let removed = state.suppressions.remove_matching(&filter).await?;
    tracing::info!(
        source = %filter.source,
        since = %crate::rfc3339::format(&filter.since),
        removed,
        "suppressions removed in bulk"
    );
    Ok(Json(UndoBody { removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_an_offset_even_when_its_plus_arrived_as_a_space() {
        let utc = parse_time("since", "2026-11-28T10:00:00Z").expect("a time");
        for text in [
            "2026-11-28T11:00:00+01:00",
            "2026-11-28T11:00:00 01:00",
            "2026-11-28T10:00:00.000z",
        ] {
            assert_eq!(parse_time("since", text), Ok(utc), "{text}");
        }
        for text in ["2026-11-28", "2026-11-28T10:00:00", "yesterday", ""] {
            let err = parse_time("since", text).expect_err(text);
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains("`since`"), "{}", err.message);
        }
    }

    #[test]
    fn an_undo_needs_a_source_and_a_start_and_a_span_that_is_one() {
        let query = |source: Option<&str>, since: Option<&str>, until: Option<&str>| UndoQuery {
            source: source.map(str::to_owned),
            since: since.map(str::to_owned),
            until: until.map(str::to_owned),
            reason: None,
        };
        let t = "2026-11-28T10:00:00Z";
        assert!(parse_undo(&query(Some("verify"), Some(t), None)).is_ok());
        // The words an operator types for the sources are taken.
        assert!(parse_undo(&query(Some("verification"), Some(t), None)).is_ok());
        assert!(parse_undo(&query(Some("manual"), Some(t), None)).is_ok());
        for (bad, says) in [
            (query(None, Some(t), None), "`source` is required"),
            (query(Some("verify"), None, None), "`since` is required"),
            (query(Some("verifications"), Some(t), None), "verify"),
            (query(Some("verify"), Some(t), Some(t)), "later than"),
        ] {
            let err = parse_undo(&bad).expect_err(says);
            assert!(err.message.contains(says), "{}", err.message);
        }
    }
}
