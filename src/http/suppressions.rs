//! The suppression list over HTTP: add, look up and remove one address.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState};
use crate::address::EmailAddress;
use crate::store::Suppression;
use crate::vocab::{SuppressionReason, SuppressionSource};

/// Longest operator note accepted with a manual suppression.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;

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
            smtp_code: entry.evidence.smtp_code,
            enhanced_code: entry.evidence.enhanced_code,
            diagnostic: entry.evidence.diagnostic,
            mx_host: entry.evidence.mx_host,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
            deleted: entry.deleted,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSuppression {
    email: String,
    #[serde(default = "manual")]
    reason: SuppressionReason,
    diagnostic: Option<String>,
}

fn manual() -> SuppressionReason {
    SuppressionReason::Manual
}

fn parse_body_address(email: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(email)
        .map_err(|err| ApiError::invalid(format!("`email` is not a valid address: {err}")))
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

/// `POST /suppressions`: suppress an address by hand. Idempotent: an address
/// already on the list keeps its entry (and its evidence) and answers 200.
pub async fn add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddSuppression>,
) -> Result<(StatusCode, Json<SuppressionBody>), ApiError> {
    let address = parse_body_address(&body.email)?;
    if body
        .diagnostic
        .as_ref()
        .is_some_and(|text| text.chars().count() > MAX_DIAGNOSTIC_CHARS)
    {
        return Err(ApiError::invalid(format!(
            "`diagnostic` is longer than {MAX_DIAGNOSTIC_CHARS} characters"
        )));
    }
    let (stored, created) = state
        .suppressions
        .add(&address, body.reason, body.diagnostic)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored.into())))
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
