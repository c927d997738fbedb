//! The one error body of the API: `{"error": {"code", "message"}}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::error_chain;
use crate::store::StoreError;

/// An error answered to a client. 5xx messages say nothing internal; the
/// cause is logged where the error is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422: the body was well-formed but its content is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn database_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unreachable; try again shortly",
        )
    }

    /// A 500 whose cause goes to the log, not to the client.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// The error for a response that some layer produced without a JSON
    /// body (axum's 405, a timeout, …): the code follows the status and the
    /// message is the layer's text when it had one.
    fn for_status(status: StatusCode, text: &str) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        let message = if !text.is_empty() && !status.is_server_error() {
            text.to_owned()
        } else {
            match status {
                StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method".into(),
                StatusCode::GATEWAY_TIMEOUT => {
                    "the request did not complete within the server's time limit".into()
                }
                other => other
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_lowercase(),
            }
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %error_chain(&err), "database unavailable");
            ApiError::database_unavailable()
        } else {
            ApiError::internal(&err)
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (code, status) = match &rejection {
            JsonRejection::JsonSyntaxError(_) => ("malformed_json", StatusCode::BAD_REQUEST),
            JsonRejection::JsonDataError(_) => {
                ("invalid_request", StatusCode::UNPROCESSABLE_ENTITY)
            }
            JsonRejection::MissingJsonContentType(_) => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            JsonRejection::BytesRejection(bytes) => return bytes_rejection(bytes),
            _ => ("bad_request", rejection.status()),
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        bytes_rejection(&rejection)
    }
}

fn bytes_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this server accepts",
        )
    } else {
        ApiError::new(rejection.status(), "bad_request", rejection.body_text())
    }
}

/// A JSON body extractor whose rejections come back as [`ApiError`]s,
/// worded as axum's `Json` words them. The common case, `Content-Type:
/// application/json` as such and a body that parses, takes a shorter way
/// than `Json` (no MIME parse, no path tracking while parsing); any other
/// content type, and the wording of a body that does not parse, are left
/// to `Json` itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let plain_json = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes() == b"application/json");
        if !plain_json {
            let Json(value) = Json::<T>::from_request(request, state).await?;
            return Ok(ApiJson(value));
        }
        let bytes = Bytes::from_request(request, state).await?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(ApiJson(value)),
            Err(_) => {
                let Json(value) = Json::<T>::from_bytes(&bytes)?;
                Ok(ApiJson(value))
            }
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// Most bytes of a non-JSON error body that are kept as the message.
const MAX_ERROR_TEXT: usize = 4096;

/// Gives every error response the JSON error body, including those made by
/// axum itself or by tower layers (405, timeouts) with an empty or plain
/// text body. Headers such as `Allow` and `Retry-After` are kept.
pub async fn json_error_bodies(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    // The dashboard answers its own errors, as HTML pages.
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if !is_error || is_json || is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_ERROR_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let mut rebuilt = ApiError::for_status(status, &text).into_response();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    let headers = rebuilt.headers_mut();
    for (name, value) in parts.headers.drain() {
        if let Some(name) = name {
            headers.insert(name, value);
        }
    }
    debug_assert!(headers.get(CONTENT_TYPE) == Some(&HeaderValue::from_static("application/json")));
    rebuilt
}

/// The answer for a path that no route serves.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_never_echo_layer_text() {
        let err = ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR, "panic at foo.rs:12");
        assert!(!err.message.contains("foo.rs"));
        assert_eq!(err.code, "internal");
    }
}
