//! The HTTP API: routes, middleware and the shared application state.

mod auth;
mod bounces;
mod confirmations;
mod error;
mod feed;
pub mod gauges;
mod health;
mod import;
mod jobs;
mod media;
mod meta;
mod patterns;
pub mod sns;
mod stats;
mod suppressions;
mod tokens;
mod ui;
mod verify;
pub mod webhooks;
mod widget;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;

pub use auth::{Gate, Keys, RateLimits, parse_ip_range};
pub use error::{ApiError, ApiJson};
pub use health::READINESS_TTL;
pub use meta::OPENAPI_YAML;

use crate::store::Store;
use crate::suppress::SuppressionList;
use crate::verify::Verifier;

/// What every handler can reach: cheap to clone (one `Arc`), as every
/// request clones it for each extractor and middleware that takes it.
#[derive(Debug, Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The state behind [`AppState`].
#[derive(Debug)]
pub struct SharedState {
    pub store: Arc<dyn Store>,
    /// The one writer of the suppression list.
    pub suppressions: Arc<SuppressionList>,
    pub verifier: Arc<Verifier>,
    /// The time budget of `POST /verify` when the caller gives none.
    pub verify_timeout: Duration,
    pub metrics: PrometheusHandle,
    pub jobs: crate::jobs::JobSettings,
    /// Guarded outbound HTTP (SNS subscription confirmation).
    pub outbound: crate::outbound::Outbound,
    /// Checks the signatures of Amazon SNS messages.
    pub sns: sns::SnsVerifier,
    /// Keys that ESP webhooks must be signed with, when configured.
    pub webhook_signing: WebhookSigning,
    /// The latest database check of `/readyz`, kept for a second.
    pub readiness: moka::future::Cache<(), bool>,
    /// Mailgun signature tokens already taken, for the replay window.
    pub mailgun_tokens: moka::sync::Cache<String, ()>,
    /// The store's gauges, sampled in the background.
    pub gauges: Arc<gauges::SampledGauges>,
    /// Signs the tokens of public-key answers, when `--token-secret` is set.
    pub tokens: Option<crate::token::TokenSigner>,
    /// Signup confirmation: its relay, links and limits, or what is missing.
    pub confirmations: Arc<crate::confirm::Confirmations>,
}

/// The keys ESP webhooks are signed with.
#[derive(Debug, Clone, Default)]
pub struct WebhookSigning {
    pub mailgun: Option<crate::secret::SecretString>,
    pub sendgrid: Option<String>,
}

/// Limits and access rules applied to every request.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub gate: Gate,
    /// Browser origins allowed to call the API (CORS).
    pub cors_origins: Vec<String>,
    /// The longest a dashboard session lasts.
    pub ui_session_ttl: Duration,
    /// The public keys, for the dashboard's signup-form page (they are not
    /// secret: signup pages carry them).
    pub public_keys: Vec<String>,
}

/// A route the router serves: its method and path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRoute {
    pub method: Method,
    pub path: &'static str,
}

/// Builds the router and, alongside, the list of what it serves, so that
/// the list cannot drift from the router.
struct Routes {
    router: Router<AppState>,
    served: Vec<ServedRoute>,
}

impl Routes {
    fn new() -> Self {
        Routes {
            router: Router::new(),
            served: Vec::new(),
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("{method} is not a routable method"));
        self.router = self.router.route(path, on(filter, handler));
        self.served.push(ServedRoute { method, path });
        self
    }
}

fn routes() -> Routes {
    Routes::new()
        .add(Method::GET, "/healthz", health::healthz)
        .add(Method::GET, "/readyz", health::readyz)
        .add(Method::GET, "/metrics", meta::metrics)
        .add(Method::GET, "/openapi.yaml", meta::openapi)
        .add(Method::POST, "/verify", verify::verify)
        .add(Method::POST, "/verify/batch", verify::verify_batch)
        .add(Method::POST, "/tokens/verify", tokens::verify_token)
        .add(Method::GET, "/widget.js", widget::script)
        .add(Method::GET, "/suppressions", feed::feed)
        .add(Method::POST, "/suppressions", suppressions::add)
        .add(Method::DELETE, "/suppressions", suppressions::undo)
        .add(Method::GET, "/suppressions/{email}", suppressions::get)
        .add(Method::POST, "/bounces", bounces::receive)
        .add(Method::POST, "/bounces/{provider}", webhooks::receive)
        .add(Method::GET, "/stats", stats::stats)
        .add(Method::GET, "/stats/daily", stats::stats_daily)
        .add(Method::GET, "/jobs", jobs::list)
        .add(Method::POST, "/jobs", jobs::create)
        .add(Method::GET, "/jobs/{id}", jobs::get)
        .add(Method::DELETE, "/jobs/{id}", jobs::cancel)
        .add(Method::GET, "/jobs/{id}/results", jobs::results)
        .add(Method::POST, "/confirmations", confirmations::request)
        .add(Method::GET, "/confirmations", confirmations::feed)
        .add(Method::GET, "/confirmations/{email}", confirmations::get)
        .add(Method::GET, "/confirm/{token}", confirmations::follow)
        .add(
            Method::DELETE,
            "/suppressions/{email}",
            suppressions::remove,
        )
}

/// Every route the API serves, for tests and documentation checks.
pub fn served_routes() -> Vec<ServedRoute> {
    routes().served
}

/// The whole API with its middleware.
pub fn router(state: AppState, limits: HttpLimits) -> Router {
    let dashboard = ui::router(state.clone(), limits.gate.clone(), &limits);
    routes()
        .router
        .fallback(error::not_found)
        .with_state(state)
        .merge(dashboard)
        // Innermost first: each layer wraps all that is above it.
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            deadline,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            limits.gate.clone(),
            auth::require_key,
        ))
        .layer(middleware::from_fn(error::json_error_bodies))
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(meta::record_http_metrics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .layer(cors(&limits.cors_origins))
}

/// Answers 504 when a request takes longer than `limit` to answer. Job
/// uploads are exempt: a list of a million addresses may take minutes to
/// arrive, and an upload that stalls is stopped by its own idle timeout.
async fn deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: middleware::Next,
) -> Response {
    let path = request.uri().path();
    if request.method() == Method::POST && (path == "/jobs" || path == "/ui/jobs") {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::GATEWAY_TIMEOUT.into_response(),
    }
}

/// Request ids: random UUIDs from the thread's generator (a `getrandom`
/// system call per request showed in profiles).
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        HeaderValue::from_str(&id.to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// CORS for browser signup forms: the configured origins may call the API
/// with a key in `Authorization`; no credentials (cookies) are allowed.
/// Without configured origins, no CORS headers are sent at all.
fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.trim().trim_end_matches('/')).ok())
        .collect();
    if allowed.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allow_credentials(false)
        .max_age(Duration::from_secs(3600))
}

/// The route template of a request: never the concrete path, which may hold
/// an email address, and a bounded set of values for metrics.
fn route_of(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "http.request",
        method = %request.method(),
        route = route_of(request),
        request_id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn log_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    span.record("status", status);
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    // Successes at debug (as tower-http logs them): at tens of thousands
    // of requests a second a line each is most of the cost of a cached
    // answer, and /metrics counts them. Refusals at info, failures at warn.
    if response.status().is_server_error() {
        tracing::warn!(status, "request failed");
    } else if response.status().is_client_error() {
        tracing::info!(status, "request refused");
    } else {
        tracing::debug!(status, "request answered");
    }
}
