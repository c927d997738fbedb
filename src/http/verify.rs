//! `POST /verify` and `POST /verify/batch`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState};
use crate::verify::VerifyResult;

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

/// `POST /verify`: one address. An invalid address is a verdict
/// (`undeliverable / invalid_syntax`), not an error.
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Json<VerifyResult> {
    Json(state.verifier.verify(&request.email, request.fresh).await)
}

/// `POST /verify/batch`: up to 1000 addresses, results in input order.
pub async fn verify_batch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
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
    Ok(Json(BatchResponse { results }))
}
