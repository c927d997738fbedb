//! The operator's dashboard: server-rendered HTML pages under `/ui/`, with
//! their CSS, scripts and icons embedded in the binary.
//!
//! The pages reach the engine, the store and the suppression list through
//! [`AppState`], as the API handlers do (and through the same functions
//! where the API has the logic). They are not part of the JSON API: the
//! key middleware lets them through, and they keep their own sessions
//! ([`session`]): a secret key once at `/ui/login`, then a cookie. Every
//! response carries a strict Content-Security-Policy; no page has an
//! inline script or style.
//!
//! A page is a module with its handlers and a line in [`routes`].

mod assets;
mod charts;
mod jobs;
mod layout;
mod login;
mod overview;
mod patterns;
mod session;
mod signup;
mod suppressions;
mod verify;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, LOCATION, ORIGIN, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::{AppState, Gate};
pub use session::Sessions;
use session::{Session, UiError};

/// The policy of every dashboard response: nothing but this server's own
/// files, no inline script or style, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// Whether a path is the dashboard's (and so not the JSON API's).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// What the dashboard's handlers share: the application, the key gate
/// (keys, trusted proxies) and the sessions.
#[derive(Debug, Clone)]
pub(super) struct Ui {
    app: AppState,
    gate: Gate,
    sessions: Sessions,
    /// The public keys (not secret: signup pages carry them).
    public_keys: Vec<String>,
    /// The browser origins allowed to call the API.
    cors_origins: Vec<String>,
}

impl std::ops::Deref for Ui {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

impl Ui {
    /// Whether the dashboard asks for a key (it does when the API does).
    fn needs_login(&self) -> bool {
        !self.gate.keys().is_empty()
    }
}

/// The dashboard's routes, with their middleware. The caller merges them
/// into the API's router; they are not listed in `served_routes()`.
pub(super) fn router(app: AppState, gate: Gate, limits: &super::HttpLimits) -> Router {
    let upload_limit = app.jobs.max_upload_bytes;
    let ui = Ui {
        app,
        gate,
        sessions: Sessions::new(limits.ui_session_ttl),
        public_keys: limits.public_keys.clone(),
        cors_origins: limits.cors_origins.clone(),
    };
    let routes = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::show))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/verify", get(verify::form).post(verify::submit))
        .route(
            "/ui/jobs",
            get(jobs::show)
                .post(jobs::upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/ui/jobs/{id}", get(jobs::detail))
        .route("/ui/jobs/{id}/progress", get(jobs::progress))
        .route("/ui/jobs/{id}/results", get(jobs::results))
        .route("/ui/jobs/{id}/cancel", post(jobs::cancel))
        .route("/ui/suppressions", get(suppressions::show))
        .route("/ui/suppressions/export", get(suppressions::export))
        .route("/ui/suppressions/add", post(suppressions::add))
        .route("/ui/suppressions/remove", post(suppressions::remove))
        .route(
            "/ui/suppressions/import",
            post(suppressions::import).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/ui/suppressions/undo", post(suppressions::undo))
        .route("/ui/signup", get(signup::show))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .with_state(ui.clone());
    routes
        .layer(middleware::from_fn_with_state(ui, access))
        .layer(middleware::from_fn(headers))
}

/// An HTML 404 for the dashboard's paths that no page serves.
async fn not_found(session: Option<axum::Extension<Session>>) -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the dashboard.",
        session.map(|axum::Extension(session)| session),
    )
}

/// The security headers of every dashboard response.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Whether an `Origin` header names this server (the `Host` the browser
/// asked for). Browsers send `Origin` with every cross-site POST.
fn same_origin(request: &Request) -> bool {
    let Some(origin) = request.headers().get(ORIGIN) else {
        return true;
    };
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
        .map(|url| match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => String::new(),
        });
    matches!((host, origin_host), (Some(host), Some(origin)) if host.eq_ignore_ascii_case(&origin))
}

/// The session gate: refuses cross-origin POSTs, finds the request's
/// session and, when keys are configured, sends a visitor without one to
/// the login page. Without keys (a loopback server) a visitor is given a
/// session at once: the CSRF token lives in it.
async fn access(State(ui): State<Ui>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if request.method() == Method::POST && !same_origin(&request) {
        return UiError::forbidden("The form was sent from another site.", None).into_response();
    }
    let open = path.starts_with("/ui/assets/") || path == "/" || path == "/ui";
    let secure = ui.gate.came_over_tls(&request);
    let found = ui.sessions.of_request(request.headers()).await;
    if let Some(session) = found {
        request.extensions_mut().insert(session);
        return next.run(request).await;
    }
    if open || path == "/ui/login" {
        return next.run(request).await;
    }
    if ui.needs_login() {
        return if request.method() == Method::GET && !path.ends_with("/progress") {
            let mut response = Redirect::to("/ui/login").into_response();
            *response.status_mut() = StatusCode::SEE_OTHER;
            response
        } else {
            UiError::new(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Your session has ended. Sign in again.",
                None,
            )
            .into_response()
        };
    }
    if request.method() != Method::GET {
        // A form from a session that is gone: its CSRF token cannot match.
        return UiError::forbidden("The form's session has ended; reload the page.", None)
            .into_response();
    }
    let session = ui.sessions.start().await;
    let cookie = session.cookie(secure);
    request.extensions_mut().insert(session);
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// A 303 to a dashboard page, after a form did its work.
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
