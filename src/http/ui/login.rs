//! Signing in with a secret key, and signing out.

use axum::Extension;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::page;
use super::session::{Session, UiError, expired_cookie};
use super::{Ui, see_other};

fn login_page(error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        None,
        html! {
            h1 { "Sign in" }
            p { "The dashboard takes one of this server's " strong { "secret" } " API keys (" code { "--secret-keys" } "). It is kept for this session only." }
            @if let Some(error) = error {
                p.notice.error role="alert" { (error) }
            }
            form.card method="post" action="/ui/login" {
                label for="key" { "Secret key" }
                input #key type="password" name="key" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    error: Option<String>,
}

/// `GET /ui/login`: the form (saying why, after a refusal), or the
/// overview when no key is needed.
pub async fn form(
    State(ui): State<Ui>,
    session: Option<Extension<Session>>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if !ui.needs_login() || session.is_some() {
        return see_other("/ui/");
    }
    let error = query
        .error
        .is_some()
        .then_some("That is not a secret key of this server.");
    login_page(error).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: String,
}

/// `POST /ui/login`: checks the key as the API does, then starts a
/// session. Attempts are limited per client address.
pub async fn submit(State(ui): State<Ui>, request: Request) -> Result<Response, UiError> {
    if !ui.needs_login() {
        return Ok(see_other("/ui/"));
    }
    let client = ui.gate.client_of(&request);
    let secure = ui.gate.came_over_tls(&request);
    if !ui.sessions.may_try_login(client) {
        return Err(UiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many sign-in attempts from your address; wait a minute and try again.",
            None,
        ));
    }
    let axum::Form(form) = axum::Form::<LoginForm>::from_request(request, &())
        .await
        .map_err(|_| {
            UiError::new(
                StatusCode::BAD_REQUEST,
                "Sign in",
                "The form was not sent whole.",
                None,
            )
        })?;
    if !ui.gate.is_secret_key(form.key.trim()) {
        tracing::info!(client = %client, "dashboard sign-in refused");
        // Back to the form (a redirect, not a 401 page: the browser would
        // log the status as a console error).
        return Ok(see_other("/ui/login?error=key"));
    }
    let session = ui.sessions.start().await;
    let mut response = see_other("/ui/");
    if let Ok(value) = HeaderValue::from_str(&session.cookie(secure)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    tracing::info!(client = %client, "dashboard sign-in");
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session.
pub async fn logout(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    request: Request,
) -> Result<Response, UiError> {
    let secure = ui.gate.came_over_tls(&request);
    let axum::Form(form) = axum::Form::<CsrfForm>::from_request(request, &())
        .await
        .map_err(|_| UiError::forbidden("The form was not sent whole.", Some(session.clone())))?;
    session.check_csrf(&form.csrf)?;
    ui.sessions.end(&session).await;
    let target = if ui.needs_login() {
        "/ui/login"
    } else {
        "/ui/"
    };
    let mut response = see_other(target);
    if let Ok(value) = HeaderValue::from_str(&expired_cookie(secure)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}
