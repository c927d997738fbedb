//! `POST /verify` and `POST /verify/batch`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::WARNING;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState};
use crate::verify::{Answer, VerifyResult};

/// Most addresses in one batch request.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    email: String,
    #[serde(default)]
    fresh: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    emails: Vec<String>,
    #[serde(default)]
    fresh: bool,
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    results: Vec<VerifyResult>,
}

/// Said when an answer was given without the database.
const DEGRADED_WARNING: &str =
    "199 mailvet \"database unavailable: answered without the cache and the suppression list\"";

/// The JSON answer, with a `Warning` header when it was given without the
/// database.
fn answer<T: Serialize>(answer: Answer<T>) -> Response {
    let mut response = Json(answer.value).into_response();
    if answer.degraded {
        response
            .headers_mut()
            .insert(WARNING, HeaderValue::from_static(DEGRADED_WARNING));
    }
    response
}

/// `POST /verify`: one address. An invalid address is a verdict
/// (`undeliverable / invalid_syntax`), not an error. If the database is
/// down the answer still comes, from the network, with a `Warning`.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Response {
    answer(state.verifier.verify(&request.email, request.fresh).await)
}

/// `POST /verify/batch`: up to 1000 addresses, results in input order.
pub async fn verify_batch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<Response, ApiError> {
    if request.emails.is_empty() {
        return Err(ApiError::invalid("`emails` is empty"));
    }
    if request.emails.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "`emails` has {} addresses; a batch takes at most {MAX_BATCH} (use POST /jobs for lists)",
            request.emails.len()
        )));
    }
    let results = state
        .verifier
        .verify_batch(&request.emails, request.fresh)
        .await;
    Ok(answer(Answer {
        value: BatchResponse {
            results: results.value,
        },
        degraded: results.degraded,
    }))
}
