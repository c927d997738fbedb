//! Signup form: the widget's snippet for this server, what it needs here
//! (a public key, the form's origin in `--cors-origins`, a token secret),
//! and a live preview of the widget on a form of this page.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::header::HOST;
use maud::{Markup, html};

use super::Ui;
use super::layout::page;
use super::session::Session;

/// This server's origin as the browser reached it.
fn origin(ui: &Ui, request: &Request) -> String {
    let host = request
        .headers()
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost:8080");
    let scheme = if ui.gate.came_over_tls(request) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `GET /ui/signup`.
pub async fn show(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    request: Request,
) -> Markup {
    let origin = origin(&ui, &request);
    // Public keys are meant for web pages; with no keys at all the API is
    // open and any key is taken.
    let key = match ui.public_keys.first() {
        Some(key) => Some(key.clone()),
        None if !ui.needs_login() => Some("pk_open_server".to_owned()),
        None => None,
    };
    let shown_key = key.clone().unwrap_or_else(|| "pk_…".to_owned());
    let snippet =
        format!(r#"<script src="{origin}/widget.js" data-key="{shown_key}" defer></script>"#);
    page(
        "Signup form",
        Some("/ui/signup"),
        Some(&session),
        html! {
            h1 { "Signup form" }
            p {
                "One script tag adds inline checking to the email field of any signup form: "
                "a suggestion for a misspelt domain, a plain message for an address that cannot "
                "receive mail, and nothing alarming otherwise. It never blocks the form. "
                "See " code { "docs/SIGNUP_FORMS.md" } " for the backend check and a stylesheet."
            }
            section.card aria-labelledby="snippet-title" {
                h2 #snippet-title { "The snippet for this server" }
                pre { code #snippet { (snippet) } }
                @if key.is_none() {
                    p.notice.error role="status" {
                        "No public key is configured: set " code { "--public-keys" }
                        " (" code { "MAILVET_PUBLIC_KEYS" } "). A public key may only call "
                        code { "POST /verify" } " and is safe to put in a page."
                    }
                }
            }
            section.card aria-labelledby="needs-title" {
                h2 #needs-title { "What it needs here" }
                dl.evidence {
                    dt { "Public key" }
                    dd {
                        @if ui.public_keys.is_empty() {
                            @if ui.needs_login() { "none configured" } @else { "none needed: this server has no keys" }
                        } @else {
                            (ui.public_keys.len()) " configured"
                        }
                    }
                    dt { "Allowed form origins" }
                    dd {
                        @if ui.cors_origins.is_empty() {
                            "none: set " code { "--cors-origins" } " to the origin of each site with a form"
                        } @else {
                            @for (n, allowed) in ui.cors_origins.iter().enumerate() {
                                @if n > 0 { ", " }
                                code { (allowed) }
                            }
                        }
                    }
                    dt { "Signed tokens for the backend" }
                    dd {
                        @if ui.tokens.is_some() {
                            "on: each answer carries a token the form posts as " code { "mailvet_token" }
                        } @else {
                            "off: set " code { "--token-secret" } " so the form's backend can trust the check"
                        }
                    }
                }
            }
            section.card aria-labelledby="preview-title" {
                h2 #preview-title { "Live preview" }
                @if let Some(key) = &key {
                    p.hint { "Type an address and leave the field: the widget asks this server, as it would from your site." }
                    form #preview method="get" action="/ui/signup" {
                        label for="preview-email" { "Email" }
                        input #preview-email type="email" name="email" autocomplete="off" spellcheck="false";
                    }
                    script src="/widget.js" data-key=(key) defer {}
                } @else {
                    p.hint { "The preview needs a public key." }
                }
            }
        },
    )
}
