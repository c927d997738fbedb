//! `POST /bounces`: bounce reports as JSON or as raw messages.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::address::EmailAddress;
use crate::bounce::intake::{self, BounceReport};
use crate::bounce::{ReportedRecipient, message};
use crate::vocab::BounceOrigin;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonBounce {
    email: String,
    status: Option<String>,
    smtp_code: Option<u16>,
    diagnostic: Option<String>,
}

fn json_recipient(body: &[u8]) -> Result<ReportedRecipient, ApiError> {
    let bounce: JsonBounce = serde_json::from_slice(body).map_err(|err| {
        if err.is_syntax() || err.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {err}"),
            )
        } else {
            ApiError::invalid(err.to_string())
        }
    })?;
    EmailAddress::parse(&bounce.email)
        .map_err(|err| ApiError::invalid(format!("`email` is not a valid address: {err}")))?;
    let status = bounce
        .status
        .as_deref()
        .map(|status| {
            status.trim().parse().map_err(|()| {
                ApiError::invalid(format!(
                    "`status` {status:?} is not an RFC 3463 status code such as 5.1.1"
                ))
            })
        })
        .transpose()?;
    if let Some(code) = bounce.smtp_code.filter(|code| !(200..=599).contains(code)) {
        return Err(ApiError::invalid(format!(
            "`smtp_code` {code} is not an SMTP reply code (200 to 599)"
        )));
    }
    Ok(ReportedRecipient {
        email: bounce.email,
        status,
        smtp_code: bounce.smtp_code,
        diagnostic: bounce.diagnostic,
        ..ReportedRecipient::default()
    })
}

/// `POST /bounces`: one JSON bounce, or a raw bounce message (RFC 3464 DSN,
/// RFC 5965 complaint, or a human-readable bounce).
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BounceReport>, ApiError> {
    let (origin, recipients) = match super::media::media_type(&headers).as_deref() {
        Some("application/json") => (BounceOrigin::Json, vec![json_recipient(&body)?]),
        Some("message/rfc822" | "message/global" | "text/plain") => {
            let parsed = message::parse(&body).map_err(|err| ApiError::invalid(err.to_string()))?;
            (BounceOrigin::Message, parsed.recipients)
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "a bounce is application/json or message/rfc822, not {}",
                    other.unwrap_or("a body without Content-Type")
                ),
            ));
        }
    };
    Ok(Json(
        intake::record(&state.suppressions, origin, recipients).await?,
    ))
}
