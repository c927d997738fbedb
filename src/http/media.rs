//! Media types of requests (`Content-Type`) and of the answers a client
//! wants (`Accept`).

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_TYPE};

/// The media type of a request, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

/// Whether the `Accept` header names the media type `kind`.
pub fn accepts(headers: &HeaderMap, kind: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.split(',').any(|item| item.trim().starts_with(kind)))
}
