//! `GET /widget.js`: the signup-form script (`assets/widget/widget.js`),
//! embedded in the binary. A page loads it with
//! `<script src="…/widget.js" data-key="pk_…" defer>`; it needs no key to
//! fetch, as every visitor of the form's page loads it.

use std::sync::LazyLock;

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The script, as served.
pub const WIDGET_JS: &str = include_str!("../../assets/widget/widget.js");

/// A strong validator: the script's SHA-256, quoted.
static ETAG_VALUE: LazyLock<HeaderValue> = LazyLock::new(|| {
    let digest = Sha256::digest(WIDGET_JS.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"widget\""))
});

/// Whether an `If-None-Match` header names the script's current ETag (or
/// `*`).
fn matches_etag(headers: &HeaderMap) -> bool {
    let current = ETAG_VALUE.to_str().unwrap_or_default();
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == current || tag == "*")
}

/// `GET /widget.js`: the script, cached by browsers for an hour and
/// revalidated by its ETag (304 when unchanged).
pub async fn script(headers: HeaderMap) -> Response {
    let common = [
        (ETAG, ETAG_VALUE.clone()),
        (
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ),
        (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if matches_etag(&headers) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=utf-8"),
        )],
        WIDGET_JS,
    )
        .into_response()
}
