//! What the service says about itself: metrics and its API contract.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The API contract, served as is at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /metrics`: Prometheus text exposition format. The recorder's
/// metrics (process metrics read afresh), then the gauges of this service:
/// the store's, as last sampled, and probe health.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::telemetry::collect_process_metrics();
    let mut text = state.metrics.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&state.gauges.render(state.verifier.probe_health()));
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// `GET /openapi.yaml`.
pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

/// Counts requests and times them, labelled by route template.
pub async fn record_http_metrics(request: Request, next: Next) -> Response {
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::HEAD
        | Method::OPTIONS => intern(request.method().as_str()),
        // Any token is a method to HTTP: others share one label.
        _ => "other",
    };
    let route = intern(super::route_of(&request));
    let started = Instant::now();
    let response = next.run(request).await;
    let status = intern(response.status().as_str());
    metrics::histogram!(
        "mailvet_http_request_duration_seconds",
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "mailvet_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status,
    )
    .increment(1);
    response
}

/// A label value as a `&'static str`, so that recording a request's
/// metrics allocates nothing. The values are methods, route templates and
/// status codes: a small, bounded set (unmatched paths are one value, and
/// unusual methods another).
fn intern(value: &str) -> &'static str {
    static SEEN: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    if let Some(found) = SEEN
        .read()
        .expect("interned labels")
        .iter()
        .find(|seen| **seen == value)
    {
        return found;
    }
    let mut seen = SEEN.write().expect("interned labels");
    if let Some(found) = seen.iter().find(|seen| **seen == value) {
        return found;
    }
    let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
    seen.push(leaked);
    leaked
}
