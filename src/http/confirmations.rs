//! Signup confirmation (double opt-in): `POST /confirmations` sends the
//! message, `GET /confirm/{token}` is its link, `GET /confirmations/{email}`
//! tells an address's state and `GET /confirmations` is the feed of
//! confirmed addresses.

use axum::extract::{Path, Query, State};
use axum::http::header::{LOCATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Caller;
use super::verify::Origin;
use super::{ApiError, ApiJson, AppState};
use crate::address::EmailAddress;
use crate::confirm::{FeedCursor, LinkError, Sender};
use crate::store::{Confirmation, Confirmed, NewConfirmation, Reserved};
use crate::verify::Requester;
use crate::vocab::{Reason, Status};

/// The largest `metadata`, as JSON.
const MAX_METADATA_BYTES: usize = 4096;
/// The longest `redirect_url`.
const MAX_REDIRECT_CHARS: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmationRequest {
    email: String,
    #[serde(default)]
    redirect_url: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Where an address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationState {
    Pending,
    Confirmed,
    Expired,
}

/// An address's confirmation, as answered.
#[derive(Debug, Serialize)]
pub struct ConfirmationBody {
    email: String,
    state: ConfirmationState,
    #[serde(with = "crate::rfc3339")]
    requested_at: DateTime<Utc>,
    #[serde(with = "crate::rfc3339")]
    expires_at: DateTime<Utc>,
    confirmed_at: Option<String>,
}

impl ConfirmationBody {
    fn new(confirmation: &Confirmation, now: DateTime<Utc>) -> Self {
        let state = if confirmation.confirmed_at.is_some() {
            ConfirmationState::Confirmed
        } else if now >= confirmation.expires_at {
            ConfirmationState::Expired
        } else {
            ConfirmationState::Pending
        };
        ConfirmationBody {
            email: confirmation.email.clone(),
            state,
            requested_at: confirmation.requested_at,
            expires_at: confirmation.expires_at,
            confirmed_at: confirmation
                .confirmed_at
                .as_ref()
                .map(crate::rfc3339::format),
        }
    }
}

/// The 422 of an address that no message is sent to, with its verdict.
#[derive(Debug, Serialize)]
struct Refused {
    error: RefusedDetail,
    verification: Verdict,
}

#[derive(Debug, Serialize)]
struct RefusedDetail {
    code: &'static str,
    message: String,
}

#[derive(Debug, Serialize)]
struct Verdict {
    status: Status,
    reason: Reason,
}

fn not_configured(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "confirmations_not_configured",
        message,
    )
}

fn limited(retry_at: DateTime<Utc>, now: DateTime<Utc>, what: &str) -> Response {
    let seconds = (retry_at - now).num_seconds().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}; try again in {seconds} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// Checks `metadata`: a JSON object of at most [`MAX_METADATA_BYTES`].
fn checked_metadata(
    metadata: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>, ApiError> {
    match metadata {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value @ serde_json::Value::Object(_)) => {
            if value.to_string().len() > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(format!(
                    "`metadata` is larger than {MAX_METADATA_BYTES} bytes of JSON"
                )));
            }
            Ok(Some(value))
        }
        Some(_) => Err(ApiError::invalid("`metadata` must be a JSON object")),
    }
}

/// `POST /confirmations`: verifies the address, then (unless it is
/// undeliverable, already confirmed, or over a limit) records the request
/// and sends the confirmation message through the relay.
pub async fn request(
    State(state): State<AppState>,
    requester: Option<Extension<Requester>>,
    caller: Option<Extension<Caller>>,
    Origin(origin): Origin,
    ApiJson(body): ApiJson<ConfirmationRequest>,
) -> Result<Response, ApiError> {
    let requester = requester.map_or(Requester::Trusted, |Extension(requester)| requester);
    let confirmations = &state.confirmations;
    let sender = confirmations.sender().map_err(not_configured)?;
    if requester.is_public()
        && !origin
            .as_deref()
            .is_some_and(|origin| confirmations.public_origin_allowed(origin))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a public key may request confirmations only from a page whose origin is in \
             --cors-origins",
        ));
    }
    if let Some(url) = &body.redirect_url
        && (url.len() > MAX_REDIRECT_CHARS || !confirmations.redirect_allowed(url))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "redirect_not_allowed",
            "`redirect_url` must be an http(s) URL whose origin is in --cors-origins or \
             --confirm-redirect-origins",
        ));
    }
    // Kept as the URL parser writes it (non-ASCII percent-encoded), so
    // that it can go in a `Location` header as it is.
    let redirect_url = body
        .redirect_url
        .as_deref()
        .and_then(|url| url::Url::parse(url.trim()).ok())
        .map(String::from);
    let metadata = checked_metadata(body.metadata)?;
    // Verified first: no message to an address known to be undeliverable
    // or suppressed. Risky and unknown verdicts do not stop it: only the
    // click can tell.
    let verdict = {
        let verifier = state.verifier.clone();
        let email = body.email.clone();
        let requester = requester.clone();
        let verification =
            tokio::spawn(async move { verifier.verify(&email, false, &requester).await });
        match tokio::time::timeout(state.verify_timeout, verification).await {
            Ok(Ok(answer)) => Some(answer.value),
            Ok(Err(err)) => return Err(ApiError::internal(&err)),
            Err(_) => None,
        }
    };
    if let Some(result) = &verdict
        && result.status == Status::Undeliverable
    {
        return Ok(refused(result.status, result.reason));
    }
    let Ok(address) = EmailAddress::parse(&body.email) else {
        return Ok(refused(Status::Undeliverable, Reason::InvalidSyntax));
    };
    let now = Utc::now();
    let expires_at = now + sender.ttl;
    let client = match (&requester, caller) {
        (Requester::Public { client }, _) => format!("public:{client}"),
        (Requester::Trusted, Some(Extension(Caller(key)))) => format!("key:{key}"),
        (Requester::Trusted, None) => "open".to_owned(),
    };
    let new = NewConfirmation {
        id: Uuid::new_v4(),
        address_key: address.key(),
        email: address.normalized(),
        redirect_url,
        metadata,
        client,
        requested_at: now,
        expires_at,
    };
    let limits = sender.limits(requester.is_public());
    let created = match state.store.reserve_confirmation(&new, &limits).await? {
        Reserved::Created(created) => created,
        Reserved::AlreadyConfirmed(confirmed) => {
            return Ok(
                (StatusCode::OK, Json(ConfirmationBody::new(&confirmed, now))).into_response(),
            );
        }
        Reserved::AddressLimited { retry_at } => {
            metrics::counter!("mailvet_confirmations_limited_total", "limit" => "address")
                .increment(1);
            return Ok(limited(
                retry_at,
                now,
                "this address has been sent as many confirmation messages as it may be today",
            ));
        }
        Reserved::ClientLimited { retry_at } => {
            metrics::counter!("mailvet_confirmations_limited_total", "limit" => "client")
                .increment(1);
            return Ok(limited(
                retry_at,
                now,
                "this client has requested as many confirmation messages as it may this hour",
            ));
        }
    };
    if let Err(err) = send(sender, &created).await {
        // Not counted against the limits: nothing was sent.
        if let Err(discard) = state.store.discard_confirmation(created.id).await {
            tracing::warn!(error = %crate::error::error_chain(&discard), "forgetting an unsent confirmation failed");
        }
        return Err(err);
    }
    metrics::counter!("mailvet_confirmations_sent_total").increment(1);
    tracing::info!(
        email.domain = address.domain(),
        relay = sender.relay.name(),
        "confirmation message sent"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(ConfirmationBody::new(&created, now)),
    )
        .into_response())
}

fn refused(status: Status, reason: Reason) -> Response {
    metrics::counter!("mailvet_confirmations_refused_total").increment(1);
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(Refused {
            error: RefusedDetail {
                code: "undeliverable",
                message: format!(
                    "the address is {} ({}): no confirmation message was sent",
                    status.as_str(),
                    reason.as_str()
                ),
            },
            verification: Verdict { status, reason },
        }),
    )
        .into_response()
}

/// Sends the message of a recorded request.
async fn send(sender: &Sender, confirmation: &Confirmation) -> Result<(), ApiError> {
    let link = sender.link(confirmation.id, confirmation.expires_at);
    let message = sender
        .message(&confirmation.email, &link, confirmation.expires_at)
        .map_err(ApiError::invalid)?;
    sender.relay.send(message).await.map_err(|err| {
        tracing::warn!(error = %err, "the relay refused a confirmation message");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "relay_failed",
            "the mail relay did not take the confirmation message; try again later",
        )
    })
}

/// `GET /confirmations/{email}`: the address's state, or 404 when no
/// confirmation was requested for it.
pub async fn get(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<Json<ConfirmationBody>, ApiError> {
    let key = EmailAddress::parse(&email)
        .map_err(|_| ApiError::not_found("no confirmation for this address"))?
        .key();
    let confirmation = state
        .store
        .confirmation_of(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("no confirmation for this address"))?;
    Ok(Json(ConfirmationBody::new(&confirmation, Utc::now())))
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct FeedEntry {
    email: String,
    #[serde(with = "crate::rfc3339")]
    requested_at: DateTime<Utc>,
    confirmed_at: Option<String>,
    metadata: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct FeedPage {
    data: Vec<FeedEntry>,
    next_cursor: String,
    has_more: bool,
}

/// `GET /confirmations?cursor=&limit=`: confirmed addresses in the order
/// they were confirmed. `next_cursor` is always given: keep it and poll
/// again for every later confirmation.
pub async fn feed(
    State(state): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Response, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
    let limit = super::feed::page_limit(query.limit.as_deref())?;
    let cursor = match query.cursor.as_deref() {
        None | Some("") => FeedCursor::default(),
        Some(token) => FeedCursor::decode(token).ok_or_else(|| {
            bad("`cursor` is not a cursor this server gave out; omit it to start from the beginning".into())
        })?,
    };
    let mut entries = state
        .store
        .confirmation_changes(cursor.0, limit + 1)
        .await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next = entries
        .last()
        .and_then(|entry| entry.seq)
        .map_or(cursor, FeedCursor);
    Ok(Json(FeedPage {
        data: entries
            .into_iter()
            .map(|entry| FeedEntry {
                email: entry.email,
                requested_at: entry.requested_at,
                confirmed_at: entry.confirmed_at.as_ref().map(crate::rfc3339::format),
                metadata: entry.metadata,
            })
            .collect(),
        next_cursor: next.encode(),
        has_more,
    })
    .into_response())
}

/// A small page for the person who followed the link.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let markup = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
            }
            body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; padding: 0 1em; line-height: 1.5;" {
                h1 { (title) }
                p { (text) }
            }
        }
    };
    let mut response = (status, markup).into_response();
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// `GET /confirm/{token}`: the link of a confirmation message. Confirms the
/// address the first time (then redirects to the request's
/// `redirect_url`, when it had one whose origin is still allowed, or shows
/// a page); later clicks show that it is confirmed and change nothing.
pub async fn follow(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Ok(sender) = state.confirmations.sender() else {
        return page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This confirmation link is not valid.",
        );
    };
    let now = Utc::now();
    let id = match sender.links.check(&token, now.timestamp()) {
        Ok(id) => id,
        Err(LinkError::Expired { .. }) => return expired(),
        Err(LinkError::Invalid) => {
            return page(
                StatusCode::NOT_FOUND,
                "Link not valid",
                "This confirmation link is not valid. Please check that it was copied whole.",
            );
        }
    };
    match state.store.confirm(id, now).await {
        Ok(Confirmed::Now(confirmation)) => {
            metrics::counter!("mailvet_confirmations_confirmed_total").increment(1);
            match confirmation
                .redirect_url
                .filter(|url| state.confirmations.redirect_allowed(url))
                .and_then(|url| HeaderValue::from_str(&url).ok())
            {
                Some(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
                None => page(
                    StatusCode::OK,
                    "Email address confirmed",
                    "Thank you: your email address is confirmed. You can close this page.",
                ),
            }
        }
        Ok(Confirmed::Already(_)) => page(
            StatusCode::OK,
            "Already confirmed",
            "This email address is already confirmed. There is nothing more to do.",
        ),
        Ok(Confirmed::Expired(_)) => expired(),
        Ok(Confirmed::Unknown) => page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This confirmation link is not valid.",
        ),
        Err(err) => {
            tracing::error!(error = %crate::error::error_chain(&err), "confirming failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "The address could not be confirmed just now. Please follow the link again in a moment.",
            )
        }
    }
}

fn expired() -> Response {
    page(
        StatusCode::GONE,
        "Link expired",
        "This confirmation link has expired. Please sign up again to receive a new one.",
    )
}
