//! Jobs: upload a list (a plain file form, which `jobs.js` enhances with
//! drag and drop), follow a job's progress live, download its results,
//! cancel it; and the recent jobs.

use std::io;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{count, csrf_field, duration, page, percent};
use super::session::{Session, UiError};
use super::{Ui, see_other};
use crate::http::jobs::{self as api, UploadFormat};
use crate::jobs::JobView;
use crate::store::JobStatus;

fn upload_form(session: &Session) -> Markup {
    html! {
        form.card.upload #upload method="post" action="/ui/jobs" enctype="multipart/form-data" {
            (csrf_field(session))
            label for="list" { "A CSV file of addresses (a column named " code { "email" } ", or else the first column)" }
            div.drop #drop {
                input #list type="file" name="list" accept=".csv,text/csv" required;
                p.hint { "Or drop the file here." }
            }
            button type="submit" { "Upload and verify" }
        }
    }
}

fn jobs_table(jobs: &[JobView]) -> Markup {
    html! {
        @if jobs.is_empty() {
            p { "No jobs yet." }
        } @else {
            div.scroll {
                table #jobs {
                    caption { "Recent jobs, newest first" }
                    thead { tr {
                        th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Progress" }
                        th scope="col" { "Addresses" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for job in jobs {
                            tr {
                                th scope="row" { a href=(format!("/ui/jobs/{}", job.id)) { code { (job.id.to_string()[..8]) } } }
                                td { (job.status) }
                                td { (percent(job.progress)) }
                                td { (count(job.processed)) " of " (count(job.total)) }
                                td { (crate::rfc3339::format(&job.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/jobs`.
pub async fn show(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
) -> Result<Markup, UiError> {
    let session = &session;
    let jobs = api::recent(&ui, Some(20))
        .await
        .map_err(|err| UiError::from_api(err, session))?;
    Ok(page(
        "Jobs",
        Some("/ui/jobs"),
        Some(session),
        html! {
            h1 { "Jobs" }
            (upload_form(session))
            section aria-labelledby="recent" {
                h2 #recent { "Recent jobs" }
                (jobs_table(&jobs))
            }
            script src=(super::assets::url("jobs.js")) defer {}
        },
    ))
}

/// `POST /ui/jobs`: the form's `csrf` field first, then the file, which
/// streams into the job as `POST /jobs` takes it.
pub async fn upload(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    mut form: Multipart,
) -> Result<Response, UiError> {
    let refused = |message: &str| UiError::forbidden(message.to_owned(), Some(session.clone()));
    let bad = |message: String| {
        UiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "Upload failed",
            message,
            Some(session.clone()),
        )
    };
    let mut csrf_ok = false;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|err| bad(format!("reading the upload failed: {err}")))?
    {
        match field.name() {
            Some("csrf") => {
                let token = field.text().await.unwrap_or_default();
                csrf_ok = session.csrf_matches(&token);
            }
            Some("list") if csrf_ok => {
                let (chunks, mut pending) =
                    tokio::sync::mpsc::channel::<io::Result<axum::body::Bytes>>(4);
                let pump = async move {
                    loop {
                        let chunk = field.chunk().await.map_err(io::Error::other).transpose();
                        let Some(chunk) = chunk else { break };
                        if chunks.send(chunk).await.is_err() {
                            break;
                        }
                    }
                };
                let stream = futures::stream::poll_fn(move |cx| pending.poll_recv(cx));
                let (_, created) = tokio::join!(
                    pump,
                    api::create_job(&ui, UploadFormat::Csv, Box::pin(stream), None)
                );
                let job = created.map_err(|err| UiError::from_api(err, &session))?;
                return Ok(see_other(&format!("/ui/jobs/{}", job.id)));
            }
            Some("list") => {
                return Err(refused(
                    "The form's security token is missing or out of date; reload the page and try again.",
                ));
            }
            _ => {}
        }
    }
    if csrf_ok {
        Err(bad("Choose a CSV file to upload.".to_owned()))
    } else {
        Err(refused(
            "The form's security token is missing or out of date; reload the page and try again.",
        ))
    }
}

async fn view(ui: &Ui, session: &Session, id: &str) -> Result<JobView, UiError> {
    api::get(State(ui.app.clone()), Path(id.to_owned()))
        .await
        .map(|Json(view)| view)
        .map_err(|err| UiError::from_api(err, session))
}

/// The numbers of a job's progress, with the ids `jobs.js` fills in.
fn progress_markup(job: &JobView) -> Markup {
    let elapsed = job
        .completed_at
        .unwrap_or_else(Utc::now)
        .signed_duration_since(job.created_at)
        .num_milliseconds()
        .max(1) as f64
        / 1000.0;
    let rate = job.processed as f64 / elapsed;
    html! {
        div.card #progress data-job=(job.id) data-status=(job.status) {
            label for="bar" { "Progress" }
            progress #bar max="1000" value=((job.progress * 1000.0).round() as u64) { (percent(job.progress)) }
            p.big { span #percent { (percent(job.progress)) } " · " span #status { (job.status) } }
            dl.counts {
                dt { "Processed" } dd #processed { (count(job.processed)) " of " (count(job.total)) }
                dt { "Deliverable" } dd #count-deliverable { (count(job.counts.deliverable)) }
                dt { "Undeliverable" } dd #count-undeliverable { (count(job.counts.undeliverable)) }
                dt { "Risky" } dd #count-risky { (count(job.counts.risky)) }
                dt { "Unknown" } dd #count-unknown { (count(job.counts.unknown)) }
                dt { "Rate" } dd #rate { (format!("{rate:.1}")) " addresses/s" }
                dt { "Time left" } dd #eta { @match job.eta_seconds { Some(eta) => (duration(eta)), None => "—" } }
            }
        }
    }
}

/// `GET /ui/jobs/{id}`.
pub async fn detail(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Markup, UiError> {
    let job = view(&ui, &session, &id).await?;
    let active = matches!(job.status, JobStatus::Queued | JobStatus::Running);
    Ok(page(
        "Job",
        Some("/ui/jobs"),
        Some(&session),
        html! {
            h1 { "Job " code { (job.id.to_string()[..8]) } }
            p.live #announce aria-live="polite" {}
            (progress_markup(&job))
            p.actions {
                a.button #download href=(format!("/ui/jobs/{}/results", job.id)) download { "Download results (CSV)" }
            }
            @if active {
                form #cancel method="post" action=(format!("/ui/jobs/{}/cancel", job.id)) {
                    (csrf_field(&session))
                    button.danger type="submit" { "Cancel the job" }
                }
            }
            p { a href="/ui/jobs" { "All jobs" } }
            script src=(super::assets::url("jobs.js")) defer {}
        },
    ))
}

/// `GET /ui/jobs/{id}/progress`: the job as JSON, for `jobs.js`.
pub async fn progress(
    State(ui): State<Ui>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, crate::http::ApiError> {
    api::get(State(ui.app.clone()), Path(id)).await
}

#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    format: Option<String>,
}

/// `GET /ui/jobs/{id}/results`: the results as `GET /jobs/{id}/results`
/// gives them (CSV unless asked otherwise).
pub async fn results(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(query): Query<ResultsQuery>,
) -> Result<Response, UiError> {
    let query = api::ResultsQuery::new(query.format.or(Some("csv".to_owned())));
    api::results(
        State(ui.app.clone()),
        Path(id),
        Query(query),
        HeaderMap::new(),
    )
    .await
    .map_err(|err| UiError::from_api(err, &session))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/jobs/{id}/cancel`.
pub async fn cancel(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Result<Response, UiError> {
    session.check_csrf(&form.csrf)?;
    match api::cancel(State(ui.app.clone()), Path(id.clone())).await {
        Ok(_) => Ok(see_other(&format!("/ui/jobs/{id}"))),
        Err(err) => Err(UiError::from_api(err, &session)),
    }
    .map(IntoResponse::into_response)
}
