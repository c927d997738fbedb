//! The dashboard's static files, embedded in the binary and served with a
//! strong `ETag` (a digest of the content) and a day of caching; pages
//! link them with the digest in the query, so a new binary's files are
//! fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    etag: String,
}

/// `(name, content type, bytes)` of every file under `assets/ui/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/ui/ui.css"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/ui/jobs.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../assets/ui/favicon.svg"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, content_type, bytes)| {
            let digest = Sha256::digest(bytes);
            let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            Asset {
                name,
                content_type,
                bytes,
                etag: format!("\"{tag}\""),
            }
        })
        .collect()
});

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The URL of an asset, its version in the query.
pub fn url(name: &str) -> String {
    match find(name) {
        Some(asset) => format!("/ui/assets/{name}?v={}", asset.etag.trim_matches('"')),
        None => format!("/ui/assets/{name}"),
    }
}

/// `GET /ui/assets/{name}`.
pub async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = find(&name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag = HeaderValue::from_str(&asset.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache = HeaderValue::from_static("public, max-age=86400");
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == asset.etag));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag), (CACHE_CONTROL, cache)],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (ETAG, etag),
            (CACHE_CONTROL, cache),
        ],
        asset.bytes,
    )
        .into_response()
}
