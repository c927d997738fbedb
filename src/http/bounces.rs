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
    /// Any JSON number: JSON Schema counts `550.0` as the integer 550.
    smtp_code: Option<serde_json::Number>,
    diagnostic: Option<String>,
}

/// An SMTP reply code (200 to 599) written as a JSON number, `550` or
/// `550.0`.
fn reply_code(number: &serde_json::Number) -> Option<u16> {
    let whole = match number.as_u64() {
        Some(value) => value,
        None => number.as_f64().filter(|value| value.fract() == 0.0)? as u64,
    };
    u16::try_from(whole)
        .ok()
        .filter(|code| (200..=599).contains(code))
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
    let smtp_code = bounce
        .smtp_code
        .as_ref()
        .map(|number| {
            reply_code(number).ok_or_else(|| {
                ApiError::invalid(format!(
                    "`smtp_code` {number} is not an SMTP reply code (200 to 599)"
                ))
            })
        })
        .transpose()?;
    Ok(ReportedRecipient {
        email: bounce.email,
        status,
        smtp_code,
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
            // Reading a message (MIME, decoding, the text readers) is CPU
            // work proportional to its size: off the async executor, so a
            // large one cannot stall other requests.
            let parsed = tokio::task::spawn_blocking(move || message::parse(&body))
                .await
                .map_err(|err| ApiError::internal(&err))?
                .map_err(|err| ApiError::invalid(err.to_string()))?;
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
        intake::record(
            &state.suppressions,
            state.verifier.bounce_patterns(),
            origin,
            recipients,
        )
        .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_may_be_written_as_whole_numbers_of_any_json_form() {
        let code = |text: &str| reply_code(&serde_json::from_str(text).expect("a JSON number"));
        assert_eq!(code("550"), Some(550));
        assert_eq!(code("550.0"), Some(550));
        assert_eq!(code("5.5e2"), Some(550));
        for bad in ["550.5", "199", "600", "-550", "-550.0", "70000", "1e300"] {
            assert_eq!(code(bad), None, "{bad}");
        }
    }
}
