//! `POST /tokens/verify`: a signup form's backend, holding a secret key,
//! asks whether a verdict token from the browser is genuine, current and
//! (when it says which) for the address the form submitted. The backend
//! may instead check the token itself with the shared `--token-secret`
//! (see `crate::token` for the format).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiJson, AppState};
use crate::address::EmailAddress;
use crate::token::{TokenClaims, TokenError, unix_now};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    token: String,
    /// The address the form submitted: when given, the token must be for it.
    #[serde(default)]
    email: Option<String>,
}

fn invalid_token(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_token", message)
}

/// The address as tokens name it: normalized when it parses, else trimmed.
fn as_in_tokens(email: &str) -> String {
    EmailAddress::parse(email)
        .map_or_else(|_| email.trim().to_owned(), |address| address.normalized())
}

/// `POST /tokens/verify`: 200 with the claims, or 422 `invalid_token` (not
/// issued here, altered, malformed, for another address, or no tokens
/// issued at all) or `expired_token`.
pub async fn verify_token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<Json<TokenClaims>, ApiError> {
    let Some(signer) = &state.tokens else {
        return Err(invalid_token(
            "this server issues no tokens (--token-secret is not set), so no token is valid",
        ));
    };
    let claims = signer
        .check(&request.token, unix_now())
        .map_err(|err| match err {
            TokenError::Expired { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expired_token",
                err.to_string(),
            ),
            TokenError::Malformed | TokenError::BadSignature => invalid_token(err.to_string()),
        })?;
    if let Some(email) = &request.email
        && as_in_tokens(email) != claims.email
    {
        return Err(invalid_token(
            "the token is for another address than `email`",
        ));
    }
    Ok(Json(claims))
}
