//! Verify: one address or a few, with the verdict and its evidence.

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Form};
use maud::{Markup, html};
use serde::Deserialize;

use super::Ui;
use super::layout::{csrf_field, page};
use super::session::{Session, UiError};
use crate::verify::{Requester, VerifyResult};
use crate::vocab::{Reason, Status};

/// Most addresses one form takes.
pub const MAX_ADDRESSES: usize = 20;

fn form_markup(session: &Session, emails: &str, fresh: bool) -> Markup {
    html! {
        form.card method="post" action="/ui/verify" {
            (csrf_field(session))
            label for="emails" { "Addresses, one per line (up to " (MAX_ADDRESSES) ")" }
            textarea #emails name="emails" rows="4" required autocomplete="off" spellcheck="false" { (emails) }
            div.check {
                input #fresh type="checkbox" name="fresh" value="true" checked[fresh];
                label for="fresh" { "Check again, even if a verdict is cached" }
            }
            button type="submit" { "Verify" }
        }
    }
}

/// `GET /ui/verify`.
pub async fn form(Extension(session): Extension<Session>) -> Markup {
    page(
        "Verify",
        Some("/ui/verify"),
        Some(&session),
        html! {
            h1 { "Verify" }
            (form_markup(&session, "", false))
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    emails: String,
    #[serde(default)]
    fresh: Option<String>,
}

/// Why a verdict follows from its evidence, in a sentence.
pub fn explanation(result: &VerifyResult) -> String {
    let host = result
        .smtp
        .as_ref()
        .map_or_else(|| "the mail server".to_owned(), |smtp| smtp.host.clone());
    match result.reason {
        Reason::Accepted => format!("{host} accepted the recipient at RCPT TO, so mail to it is expected to be delivered."),
        Reason::InvalidSyntax => "The address is not well formed, so no mail can be sent to it.".to_owned(),
        Reason::NoSuchDomain => "The domain does not exist in DNS (NXDOMAIN), so nothing can be delivered to it.".to_owned(),
        Reason::NoMailServer => "The domain publishes no mail server (no MX, or a null MX), so it takes no mail.".to_owned(),
        Reason::MailboxNotFound => format!("{host} answered that this mailbox does not exist: a permanent failure."),
        Reason::MailboxDisabled => format!("{host} answered that this mailbox is disabled: a permanent failure."),
        Reason::Suppressed => match result.suppression_reason {
            Some(why) => format!("The address is on the suppression list ({why}), so it is not to be mailed."),
            None => "The address is on the suppression list, so it is not to be mailed.".to_owned(),
        },
        Reason::CatchAll => format!("{host} accepts any recipient, even a made-up one, so its yes says nothing about this mailbox."),
        Reason::MailboxFull => format!("{host} answered that the mailbox is full: it exists, but mail may bounce."),
        Reason::Disposable => "The domain belongs to a disposable-address service: the address works for a short while only.".to_owned(),
        Reason::Greylisted => format!("{host} deferred the check (greylisting): ask again later for a verdict."),
        Reason::Blocked => format!("{host} refused to talk to this server (a block or a policy), which says nothing about the mailbox."),
        Reason::RateLimited => format!("{host} asked this server to slow down, so the mailbox was not checked."),
        Reason::Timeout => "No verdict came within the time allowed; the check may go on and fill the cache.".to_owned(),
        Reason::ConnectionFailed => "No mail server of the domain could be reached, which says nothing about the mailbox.".to_owned(),
        Reason::DnsError => "The DNS lookup failed, so neither the domain nor its mail servers are known.".to_owned(),
        Reason::SmtpError => format!("The conversation with {host} broke off before it answered for the recipient."),
    }
}

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Deliverable => "ok",
        Status::Undeliverable => "bad",
        Status::Risky | Status::Unknown => "warn",
    }
}

/// One verdict with its evidence.
pub fn verdict(result: &VerifyResult) -> Markup {
    html! {
        article.card.verdict {
            h2 { (result.email) }
            p {
                span.badge.(status_class(result.status)) { (result.status) }
                " " code { (result.reason) }
                @if result.cached { " " span.hint { "(from the cache)" } }
            }
            p.why { (explanation(result)) }
            @if let Some(message) = &result.message { p.hint { (message) } }
            @if let Some(suggestion) = &result.suggestion { p { "Did you mean " strong { (suggestion) } "?" } }
            dl {
                dt { "Normalized" } dd { (result.normalized.as_deref().unwrap_or("—")) }
                dt { "MX hosts tried" }
                dd {
                    @if result.mx.is_empty() { "none" } @else {
                        ol.mx { @for host in &result.mx { li { code { (host) } } } }
                    }
                }
                dt { "Deciding SMTP reply" }
                dd {
                    @match &result.smtp {
                        Some(smtp) => {
                            code.reply { (smtp.host) ": " (smtp.code) @if let Some(enhanced) = &smtp.enhanced_code { " " (enhanced) } " " (smtp.message) }
                        }
                        None => { "none (no SMTP conversation was needed or possible)" }
                    }
                }
                dt { "Flags" }
                dd {
                    @let flags = [("disposable", result.flags.disposable), ("role account", result.flags.role_account), ("free provider", result.flags.free_provider), ("catch-all", result.flags.catch_all)];
                    @let set: Vec<&str> = flags.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect();
                    @if set.is_empty() { "none" } @else { (set.join(", ")) }
                }
                @if result.suppressed {
                    dt { "Suppressed" } dd { @if let Some(reason) = result.suppression_reason { (reason) } @else { "yes" } }
                }
                dt { "Checked at" } dd { (crate::rfc3339::format(&result.checked_at)) }
            }
            @if !result.transcript.is_empty() {
                div.scroll {
                    table.transcript {
                        caption { "The conversation with the mail servers" }
                        thead { tr { th scope="col" { "Host" } th scope="col" { "Sent" } th scope="col" { "Reply" } } }
                        tbody {
                            @for step in &result.transcript {
                                tr {
                                    th scope="row" { code { (step.host) } }
                                    td { code { (step.sent) } }
                                    td {
                                        code.reply {
                                            @if let Some(code) = step.code { (code) " " } @else { "no reply: " }
                                            @if let Some(enhanced) = &step.enhanced_code { (enhanced) " " }
                                            (step.message)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/verify`: verifies each address (at once, each within the
/// server's `--verify-timeout`).
pub async fn submit(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Form(form): Form<VerifyForm>,
) -> Result<Markup, UiError> {
    session.check_csrf(&form.csrf)?;
    let emails: Vec<String> = form
        .emails
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let fresh = form.fresh.is_some();
    let error = if emails.is_empty() {
        Some("Type an address to verify.".to_owned())
    } else if emails.len() > MAX_ADDRESSES {
        Some(format!(
            "That is {} addresses; this form takes up to {MAX_ADDRESSES}. Upload a list on the Jobs page instead.",
            emails.len()
        ))
    } else {
        None
    };
    let budget: Duration = ui.verify_timeout;
    let results = if error.is_none() {
        futures::future::join_all(emails.iter().map(|email| {
            let verifier = ui.verifier.clone();
            let email = email.clone();
            async move {
                let task = tokio::spawn(async move {
                    verifier
                        .verify(&email, fresh, &Requester::Trusted)
                        .await
                        .value
                });
                tokio::time::timeout(budget, task)
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        }))
        .await
    } else {
        Vec::new()
    };
    Ok(page(
        "Verify",
        Some("/ui/verify"),
        Some(&session),
        html! {
            h1 { "Verify" }
            (form_markup(&session, &form.emails, fresh))
            @if let Some(error) = error { p.notice.error role="alert" { (error) } }
            section aria-label="Verdicts" {
                @for (email, result) in emails.iter().zip(&results) {
                    @match result {
                        Some(result) => (verdict(result)),
                        None => article.card.verdict {
                            h2 { (email) }
                            p { span.badge.warn { "unknown" } " " code { "timeout" } }
                            p.why { "No verdict within the time allowed; the check goes on and its verdict will be cached. Verify again shortly." }
                        },
                    }
                }
            }
        },
    ))
}
