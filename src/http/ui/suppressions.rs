//! Suppressions: find entries by address or domain and filter them by
//! reason, source and date; see each entry's evidence; add and remove one;
//! import and export a CSV; undo a batch by source and time.
//!
//! A search for one address looks it up; any other search reads the list
//! in change order (as the feed does) and keeps the live entries that
//! match, up to [`SHOWN`] of them within [`SCANNED`] entries.

use axum::extract::{Multipart, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{count, csrf_field, page};
use super::session::{Session, UiError};
use super::{Ui, see_other};
use crate::address::EmailAddress;
use crate::http::import::{self, AddRequest};
use crate::http::{feed, suppressions as api};
use crate::store::{ChangeFilter, Suppression};
use crate::vocab::{SuppressionReason, SuppressionSource};

/// Most entries a search shows, and exports.
const SHOWN: usize = 200;
/// Most entries a search reads.
const SCANNED: usize = 50_000;
/// Entries read per round trip.
const PAGE: u32 = 1000;

/// The search form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    source: String,
    /// A date (`2026-11-30`): entries changed on or after it.
    #[serde(default)]
    from: String,
    /// A date: entries changed on or before it.
    #[serde(default)]
    to: String,
    /// Set after a form did something, to say what.
    #[serde(default)]
    done: String,
}

fn day_start(name: &str, text: &str, days_after: i64) -> Result<Option<DateTime<Utc>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{name}` must be a date such as 2026-11-30"))?;
    Ok((date + chrono::Duration::days(days_after))
        .and_hms_opt(0, 0, 0)
        .map(|time| time.and_utc()))
}

impl Search {
    fn filter(&self) -> Result<ChangeFilter, String> {
        fn optional(text: &str) -> Option<&str> {
            Some(text.trim()).filter(|text| !text.is_empty())
        }
        Ok(ChangeFilter {
            reason: optional(&self.reason)
                .map(api::parse_reason)
                .transpose()
                .map_err(|err| err.message)?,
            source: optional(&self.source)
                .map(api::parse_source)
                .transpose()
                .map_err(|err| err.message)?,
            since: day_start("from", &self.from, 0)?,
            until: day_start("to", &self.to, 1)?,
        })
    }

    /// The query string of this search, for the export link.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("reason", &self.reason),
            ("source", &self.source),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }
}

/// The live entries a search finds.
async fn find(ui: &Ui, search: &Search) -> Result<Vec<Suppression>, String> {
    let filter = search.filter()?;
    let q = search.q.trim().to_lowercase();
    let failed = |err: crate::store::StoreError| format!("the database did not answer: {err}");
    if q.contains('@') {
        let address = EmailAddress::parse(&q).map_err(|err| format!("not an address: {err}"))?;
        let found = ui.suppressions.get(&address).await.map_err(failed)?;
        return Ok(found
            .into_iter()
            .filter(|entry| {
                filter.reason.is_none_or(|reason| entry.reason == reason)
                    && filter.source.is_none_or(|source| entry.source == source)
            })
            .collect());
    }
    let mut found = Vec::new();
    let mut after = 0;
    let mut scanned = 0;
    while scanned < SCANNED && found.len() < SHOWN {
        let entries = ui
            .suppressions
            .changes(after, PAGE, &filter)
            .await
            .map_err(failed)?;
        let Some(last) = entries.last() else { break };
        after = last.seq;
        scanned += entries.len();
        let more = entries.len() == PAGE as usize;
        found.extend(entries.into_iter().filter(|entry| {
            !entry.deleted
                && (q.is_empty()
                    || entry.email.rsplit_once('@').is_some_and(|(_, domain)| {
                        domain.to_lowercase() == q
                            || domain.to_lowercase().ends_with(&format!(".{q}"))
                    })
                    || entry.email.to_lowercase().contains(&q))
        }));
        if !more {
            break;
        }
    }
    found.truncate(SHOWN);
    Ok(found)
}

fn options<T: std::fmt::Display>(all: &[T], chosen: &str) -> Markup {
    html! {
        option value="" selected[chosen.is_empty()] { "any" }
        @for item in all {
            @let name = item.to_string();
            option value=(name) selected[chosen == name] { (name) }
        }
    }
}

fn entry_row(entry: &Suppression, session: &Session) -> Markup {
    html! {
        tr {
            th scope="row" { (entry.email) }
            td { (entry.reason) }
            td { (entry.source) }
            td { (crate::rfc3339::format(&entry.created_at)) }
            td {
                details {
                    summary { "Evidence" }
                    dl {
                        @if let Some(code) = entry.diagnosis.smtp_code { dt { "SMTP code" } dd { (code) } }
                        @if let Some(code) = &entry.diagnosis.enhanced_code { dt { "Enhanced code" } dd { (code) } }
                        @if let Some(text) = &entry.diagnosis.diagnostic { dt { "Diagnostic" } dd { code { (text) } } }
                        @if let Some(host) = &entry.diagnosis.mx_host { dt { "MX host" } dd { (host) } }
                    }
                    @match &entry.evidence {
                        Some(evidence) => dl.evidence {
                            dt { "Kind" } dd { (evidence.kind) }
                            @if let Some(code) = evidence.code { dt { "Code" } dd { (code) @if let Some(enhanced) = &evidence.enhanced_code { " " (enhanced) } } }
                            @if let Some(text) = &evidence.text { dt { "Said" } dd { code { (text) } } }
                            @if let Some(host) = &evidence.host { dt { "Host" } dd { (host) } }
                            @if let Some(domain) = &evidence.domain { dt { "Domain" } dd { (domain) } }
                            @if let Some(origin) = evidence.origin { dt { "From" } dd { (origin) } }
                            dt { "Seen" } dd { (crate::rfc3339::format(&evidence.observed_at)) }
                        },
                        None => p.hint { "No evidence was kept for this entry." },
                    }
                }
            }
            td {
                form method="post" action="/ui/suppressions/remove" {
                    (csrf_field(session))
                    input type="hidden" name="email" value=(entry.email);
                    button.danger type="submit" aria-label=(format!("Remove {}", entry.email)) { "Remove" }
                }
            }
        }
    }
}

/// `GET /ui/suppressions`.
pub async fn show(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Query(search): Query<Search>,
) -> Markup {
    let (session, search) = (&session, &search);
    let found = find(&ui, search).await;
    let reasons: Vec<String> = SuppressionReason::ALL
        .iter()
        .map(ToString::to_string)
        .collect();
    let sources: Vec<String> = SuppressionSource::ALL
        .iter()
        .map(ToString::to_string)
        .collect();
    page(
        "Suppressions",
        Some("/ui/suppressions"),
        Some(session),
        html! {
            h1 { "Suppressions" }
            @if !search.done.is_empty() { p.notice role="status" { (search.done) } }
            form.card.search method="get" action="/ui/suppressions" role="search" {
                div.fields {
                    div { label for="q" { "Address or domain" } input #q type="search" name="q" value=(search.q); }
                    div { label for="reason" { "Reason" } select #reason name="reason" { (options(&reasons, &search.reason)) } }
                    div { label for="source" { "Source" } select #source name="source" { (options(&sources, &search.source)) } }
                    div { label for="from" { "Changed from" } input #from type="date" name="from" value=(search.from); }
                    div { label for="to" { "to" } input #to type="date" name="to" value=(search.to); }
                }
                button type="submit" { "Search" }
                " "
                a.button #export href=(format!("/ui/suppressions/export?{}", search.query())) { "Export CSV" }
            }
            @match &found {
                Err(message) => p.notice.error role="alert" { (message) },
                Ok(entries) if entries.is_empty() => p #results { "No entries match." },
                Ok(entries) => div.scroll {
                    table #results {
                        caption { (count(entries.len() as u64)) @if entries.len() == 1 { " entry" } @else { " entries" } @if entries.len() == SHOWN { " (the first " (SHOWN) ")" } }
                        thead { tr {
                            th scope="col" { "Address" } th scope="col" { "Reason" } th scope="col" { "Source" }
                            th scope="col" { "Added" } th scope="col" { "Evidence" } th scope="col" { span.sr { "Actions" } }
                        } }
                        tbody { @for entry in entries { (entry_row(entry, session)) } }
                    }
                },
            }
            div.grid {
                form.card method="post" action="/ui/suppressions/add" {
                    h2 { "Add an address" }
                    (csrf_field(session))
                    label for="add-email" { "Address" }
                    input #add-email type="email" name="email" required;
                    label for="add-reason" { "Reason" }
                    select #add-reason name="reason" {
                        @for reason in &reasons { option value=(reason) selected[reason == "manual"] { (reason) } }
                    }
                    label for="add-note" { "Note (optional)" }
                    input #add-note type="text" name="note";
                    button type="submit" { "Add" }
                }
                form.card method="post" action="/ui/suppressions/import" enctype="multipart/form-data" {
                    h2 { "Import a CSV" }
                    (csrf_field(session))
                    label for="import-file" { "CSV file (columns " code { "email" } " and, optionally, " code { "reason" } ")" }
                    input #import-file type="file" name="file" accept=".csv,text/csv" required;
                    button type="submit" { "Import" }
                }
                form.card method="post" action="/ui/suppressions/undo" {
                    h2 { "Undo a batch" }
                    p.hint { "Removes every live entry from one source put on the list in a span of time." }
                    (csrf_field(session))
                    label for="undo-source" { "Source" }
                    select #undo-source name="source" required { @for source in &sources { option value=(source) { (source) } } }
                    label for="undo-since" { "Since (RFC 3339)" }
                    input #undo-since type="text" name="since" placeholder="2026-11-28T10:00:00Z" required;
                    label for="undo-until" { "Until (optional)" }
                    input #undo-until type="text" name="until" placeholder="2026-11-28T11:00:00Z";
                    button.danger type="submit" { "Undo" }
                }
            }
        },
    )
}

/// `GET /ui/suppressions/export`: the entries a search finds, as CSV in
/// the feed's columns.
pub async fn export(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Query(search): Query<Search>,
) -> Result<Response, UiError> {
    let entries = find(&ui, &search).await.map_err(|message| {
        UiError::new(
            StatusCode::BAD_REQUEST,
            "Export failed",
            message,
            Some(session.clone()),
        )
    })?;
    let mut response = feed::csv_page(entries, "", false);
    response.headers_mut().insert(
        axum::http::header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"mailvet-suppressions.csv\""),
    );
    Ok(response)
}

fn done(message: &str) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", message)
        .finish();
    see_other(&format!("/ui/suppressions?{query}"))
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    email: String,
    reason: String,
    #[serde(default)]
    note: String,
}

/// `POST /ui/suppressions/add`.
pub async fn add(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Form(form): Form<AddForm>,
) -> Result<Response, UiError> {
    session.check_csrf(&form.csrf)?;
    let invalid = |message: String| {
        UiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not added",
            message,
            Some(session.clone()),
        )
    };
    let address = EmailAddress::parse(form.email.trim())
        .map_err(|err| invalid(format!("`{}` is not an address: {err}", form.email.trim())))?;
    let reason = api::parse_reason(&form.reason).map_err(|err| invalid(err.message))?;
    let note = Some(form.note.trim().to_owned()).filter(|note| !note.is_empty());
    let (entry, created) = ui
        .suppressions
        .add(&address, reason, note)
        .await
        .map_err(|err| UiError::from_api(err.into(), &session))?;
    Ok(done(&if created {
        format!("{} is now suppressed.", entry.email)
    } else {
        format!(
            "{} was already suppressed; its entry is unchanged.",
            entry.email
        )
    }))
}

#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
    email: String,
}

/// `POST /ui/suppressions/remove`.
pub async fn remove(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, UiError> {
    session.check_csrf(&form.csrf)?;
    let address = EmailAddress::parse(form.email.trim()).map_err(|err| {
        UiError::new(
            StatusCode::NOT_FOUND,
            "Not removed",
            format!("not an address: {err}"),
            Some(session.clone()),
        )
    })?;
    let removed = ui
        .suppressions
        .remove(&address)
        .await
        .map_err(|err| UiError::from_api(err.into(), &session))?;
    Ok(done(&match removed {
        Some(_) => format!("{} was removed from the list.", form.email.trim()),
        None => format!("{} was not on the list.", form.email.trim()),
    }))
}

/// `POST /ui/suppressions/import`: a CSV file, as `POST /suppressions`
/// takes it, all or nothing.
pub async fn import(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    mut form: Multipart,
) -> Result<Response, UiError> {
    let failed = |message: String| {
        UiError::new(
            StatusCode::BAD_REQUEST,
            "Import failed",
            message,
            Some(session.clone()),
        )
    };
    let mut csrf_ok = false;
    let mut body = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|err| failed(format!("reading the upload failed: {err}")))?
    {
        match field.name() {
            Some("csrf") => csrf_ok = session.csrf_matches(&field.text().await.unwrap_or_default()),
            Some("file") => {
                body = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|err| failed(format!("reading the file failed: {err}")))?,
                )
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(session
            .check_csrf("")
            .err()
            .unwrap_or_else(|| failed(String::new())));
    }
    let body = body.ok_or_else(|| failed("Choose a CSV file to import.".to_owned()))?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    let entries =
        match import::read(&headers, &body).map_err(|err| UiError::from_api(err, &session))? {
            AddRequest::Many(entries) => entries,
            AddRequest::One(entry) => vec![entry],
        };
    let imported = ui
        .suppressions
        .import(&entries)
        .await
        .map_err(|err| UiError::from_api(err.into(), &session))?;
    Ok(done(&format!(
        "Imported: {} added, {} already on the list.",
        count(imported.added),
        count(imported.existing)
    )))
}

#[derive(Debug, Deserialize)]
pub struct UndoForm {
    #[serde(default)]
    csrf: String,
    source: String,
    since: String,
    #[serde(default)]
    until: String,
}

/// `POST /ui/suppressions/undo`: as `DELETE /suppressions`.
pub async fn undo(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Form(form): Form<UndoForm>,
) -> Result<Response, UiError> {
    session.check_csrf(&form.csrf)?;
    let until = Some(form.until.trim().to_owned()).filter(|until| !until.is_empty());
    let query = api::UndoQuery::new(form.source, form.since.trim().to_owned(), until);
    let filter = api::parse_undo(&query).map_err(|err| UiError::from_api(err, &session))?;
    let removed = ui
        .suppressions
        .remove_matching(&filter)
        .await
        .map_err(|err| UiError::from_api(err.into(), &session))?;
    Ok(done(&format!("{} entries removed.", count(removed))).into_response())
}
