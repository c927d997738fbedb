//! `POST /verify` and `POST /verify/batch`.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{CONTENT_TYPE, ORIGIN, WARNING};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, AppState};
use crate::address::EmailAddress;
use crate::token::{TokenClaims, unix_now};
use crate::verify::result::Flags;
use crate::verify::{Answer, Requester, VerifyResult};
use crate::vocab::{Reason, Status};

/// Most addresses in one batch request.
pub const MAX_BATCH: usize = 1000;

/// The shortest and longest time budgets a caller may ask for.
const MIN_TIMEOUT_MS: u64 = 100;
const MAX_TIMEOUT_MS: u64 = 120_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    email: String,
    #[serde(default)]
    fresh: bool,
    /// The caller's time budget; the server's `--verify-timeout` without.
    #[serde(default, deserialize_with = "whole_millis")]
    timeout_ms: Option<u64>,
}

/// `timeout_ms`, when given: a whole number of milliseconds, written as
/// JSON writes integers (`2500`, or `2500.0`); `null`, fractions and
/// negative numbers are refused like any other wrong type.
fn whole_millis<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_u64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        Some(float) if float >= 0.0 && float.fract() == 0.0 && float <= u64::MAX as f64 => {
            Ok(Some(float as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "`timeout_ms` must be a whole number of milliseconds, not {number}"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    emails: Vec<String>,
    #[serde(default)]
    fresh: bool,
}

/// The answer a public key gets: what a signup form needs and no more. A
/// suppressed address is `undeliverable / suppressed`, without saying why
/// (a complaint is nobody else's business), and no mail server's reply,
/// MX host or suppression detail is shown. With `--token-secret`, it
/// carries a signed token of the verdict for the form's backend.
#[derive(Debug, Serialize)]
pub struct PublicVerifyResult {
    email: String,
    status: Status,
    reason: Reason,
    suggestion: Option<String>,
    flags: Flags,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl PublicVerifyResult {
    fn new(result: VerifyResult, token: Option<String>) -> Self {
        PublicVerifyResult {
            email: result.email,
            status: result.status,
            reason: result.reason,
            suggestion: result.suggestion,
            flags: result.flags,
            token,
        }
    }
}

/// The longest `Origin` header copied into a token.
const MAX_ORIGIN_CHARS: usize = 256;

/// The `Origin` of a browser's request, as a token records it (taken
/// alone, rather than copying every header of every request).
#[derive(Debug)]
pub struct Origin(pub(super) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin(origin_of(&parts.headers)))
    }
}

fn origin_of(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(ORIGIN)?.to_str().ok()?.trim();
    (!origin.is_empty() && origin.len() <= MAX_ORIGIN_CHARS).then(|| origin.to_owned())
}

/// The signed token of a public key's answer, when tokens are issued.
fn token_for(
    state: &AppState,
    requester: &Requester,
    origin: Option<String>,
    result: &VerifyResult,
) -> Option<String> {
    let signer = state.tokens.as_ref().filter(|_| requester.is_public())?;
    let email = result
        .normalized
        .clone()
        .unwrap_or_else(|| result.email.trim().to_owned());
    let claims = TokenClaims::issued(email, result.status, result.reason, origin, unix_now());
    Some(signer.sign(&claims))
}

#[derive(Debug, Serialize)]
pub struct BatchResponse {
    results: Vec<VerifyResult>,
}

/// The content type of a JSON answer, as `Json` sets it.
const JSON: &str = "application/json";

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
/// down the answer still comes, from the network, with a `Warning`. A
/// public key gets the public shape, within its share of the probe budget,
/// and may not ask for a fresh check.
///
/// The answer comes within the time budget (`timeout_ms`, else
/// `--verify-timeout`): when it runs out the answer is `unknown / timeout`
/// and the verification goes on in the background, so that its verdict is
/// in the cache for the next call.
pub async fn verify(
    State(state): State<AppState>,
    requester: Option<Extension<Requester>>,
    Origin(origin): Origin,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Response, ApiError> {
    // Without keys (a loopback server) every caller is trusted.
    let requester = requester.map_or(Requester::Trusted, |Extension(requester)| requester);
    if requester.is_public() && request.fresh {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a public key may not set `fresh`: its answers may come from the cache",
        ));
    }
    let budget = match request.timeout_ms {
        None => state.verify_timeout,
        Some(ms) if (MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
        Some(ms) => {
            return Err(ApiError::invalid(format!(
                "`timeout_ms` is {ms}; it must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"
            )));
        }
    };
    // Most answers need no work: no task, no timer. A trusted caller's
    // answer from memory is sent as the JSON kept with it.
    if !requester.is_public()
        && let Some(json) = state
            .verifier
            .remembered_json(&request.email, request.fresh)
    {
        return Ok(([(CONTENT_TYPE, HeaderValue::from_static(JSON))], json).into_response());
    }
    if let Some(result) = state.verifier.answer_at_once(&request.email, request.fresh) {
        let token = token_for(&state, &requester, origin, &result);
        return Ok(respond(
            &requester,
            Answer {
                value: result,
                degraded: false,
            },
            token,
        ));
    }
    let verification = {
        let verifier = state.verifier.clone();
        let email = request.email.clone();
        let requester = requester.clone();
        // A task of its own, so that it finishes (and fills the cache) even
        // when this request stops waiting for it.
        tokio::spawn(async move { verifier.verify(&email, request.fresh, &requester).await })
    };
    let result = match tokio::time::timeout(budget, verification).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => return Err(ApiError::internal(&err)),
        Err(_) => {
            metrics::counter!("mailvet_verify_budget_exceeded_total").increment(1);
            Answer {
                value: out_of_time(&request.email, budget),
                degraded: false,
            }
        }
    };
    let token = token_for(&state, &requester, origin, &result.value);
    Ok(respond(&requester, result, token))
}

/// The answer in the shape the requester may see.
fn respond(requester: &Requester, result: Answer<VerifyResult>, token: Option<String>) -> Response {
    if requester.is_public() {
        answer(Answer {
            value: PublicVerifyResult::new(result.value, token),
            degraded: result.degraded,
        })
    } else {
        answer(result)
    }
}

/// The answer when the time budget ran out before the verification ended.
fn out_of_time(email: &str, budget: Duration) -> VerifyResult {
    let normalized = EmailAddress::parse(email)
        .ok()
        .map(|address| address.normalized());
    let mut result = VerifyResult::new(email, normalized, Reason::Timeout);
    result.message = Some(format!(
        "no verdict within the time budget of {} ms; the check goes on and its verdict will be \
         cached: ask again shortly",
        budget.as_millis()
    ));
    result
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
