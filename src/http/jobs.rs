//! `/jobs`: bulk verification. Uploads stream into the store in batches;
//! results stream back out in input order.

use std::io;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};
use uuid::Uuid;

use super::{ApiError, AppState};
use crate::address::EmailAddress;
use crate::jobs::JobView;
use crate::jobs::input::{self, InputError};
use crate::jobs::tally::DomainTally;
use crate::store::{Job, JobResultRow, NewJobItem};
use crate::verify::VerifyResult;
use crate::verify::export::CsvResults;

/// An upload that sends nothing for this long is abandoned.
const UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Results read from the store per round trip while streaming.
const RESULTS_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct CreateQuery {
    webhook_url: Option<String>,
}

/// How an uploaded list is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum UploadFormat {
    Csv,
    Json,
}

fn upload_format(headers: &HeaderMap) -> Result<UploadFormat, ApiError> {
    let essence = super::media::media_type(headers).unwrap_or_default();
    match essence.as_str() {
        "text/csv" | "application/csv" => Ok(UploadFormat::Csv),
        "application/json" => Ok(UploadFormat::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the list as `text/csv` (a column named `email`, or else the first column) or as `application/json` (`{\"emails\": [...]}`)",
        )),
    }
}

fn check_webhook_url(url: &str) -> Result<(), ApiError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_webhook_url",
            "`webhook_url` must be an absolute http:// or https:// URL",
        )),
    }
}

/// The upload as a byte stream that fails once it passes `limit` bytes, or
/// when no data comes for [`UPLOAD_IDLE_TIMEOUT`].
fn bounded(
    chunks: impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    limit: usize,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Unpin {
    Box::pin(futures::stream::unfold(
        (chunks, 0usize, false),
        move |(mut chunks, seen, failed)| async move {
            if failed {
                return None;
            }
            match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, chunks.next()).await {
                Err(_) => Some((
                    Err(io::Error::new(io::ErrorKind::TimedOut, UploadFailure::Idle)),
                    (chunks, seen, true),
                )),
                Ok(None) => None,
                Ok(Some(Err(err))) => Some((Err(err), (chunks, seen, true))),
                Ok(Some(Ok(bytes))) => {
                    let seen = seen + bytes.len();
                    if seen > limit {
                        Some((
                            Err(io::Error::other(UploadFailure::TooLarge)),
                            (chunks, seen, true),
                        ))
                    } else {
                        Some((Ok(bytes), (chunks, seen, false)))
                    }
                }
            }
        },
    ))
}

#[derive(Debug, thiserror::Error)]
enum UploadFailure {
    #[error("the upload is larger than this server accepts")]
    TooLarge,
    #[error("the upload stalled: no data for 60 s")]
    Idle,
}

/// `POST /jobs`: takes the list in as it streams, then queues the job.
pub async fn create(
    State(state): State<AppState>,
    Query(query): Query<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let format = upload_format(&headers)?;
    if let Some(url) = &query.webhook_url {
        check_webhook_url(url)?;
    }
    let chunks = body.into_data_stream().map_err(io::Error::other);
    let job = create_job(&state, format, chunks, query.webhook_url).await?;
    let id = job.id;
    let location =
        HeaderValue::from_str(&format!("/jobs/{id}")).map_err(|err| ApiError::internal(&err))?;
    Ok((
        StatusCode::ACCEPTED,
        [(LOCATION, location)],
        Json(JobView::new(&job, Utc::now())),
    )
        .into_response())
}

/// Takes a list in as it streams, then queues it as a job: what `POST
/// /jobs` and the dashboard's upload form do. `webhook_url` has been
/// checked; a JSON upload may name its own.
pub(super) async fn create_job(
    state: &AppState,
    format: UploadFormat,
    chunks: impl Stream<Item = io::Result<Bytes>> + Send + Unpin + 'static,
    webhook_url: Option<String>,
) -> Result<Job, ApiError> {
    let limits = &state.jobs;
    let reader = SyncIoBridge::new(StreamReader::new(bounded(chunks, limits.max_upload_bytes)));
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<Vec<NewJobItem>>(PARSED_AHEAD);
    // The parser also finds each address's domain, on its own thread, while
    // the store writes what came before.
    // It also counts the domains, to find the large ones.
    let parser = tokio::task::spawn_blocking(move || {
        let mut tally = DomainTally::new();
        let sink = |batch| {
            let items = job_items(batch);
            for item in &items {
                tally.add(&item.domain);
            }
            batches.blocking_send(items).is_ok()
        };
        let parsed = match format {
            UploadFormat::Csv => input::read_csv(reader, sink).map(|()| None),
            UploadFormat::Json => input::read_json(reader, sink),
        };
        parsed.map(|url| (url, tally.large()))
    });

    let id = Uuid::new_v4();
    let store = &state.store;
    store.create_job(id, Utc::now()).await?;
    let written = write_items(state, id, &mut incoming).await;
    // Dropping the receiver stops the parser at its next batch.
    drop(incoming);
    let parsed = parser.await;
    let (total, webhook_url, large_domains) = match (written, parsed) {
        (Err(failure), _) => (0, Err(failure), Vec::new()),
        (Ok(total), Ok(Ok((url, large)))) => (total, Ok(url.or(webhook_url)), large),
        (Ok(_), Ok(Err(err))) => (0, Err(input_error(err)), Vec::new()),
        (Ok(_), Err(join)) => (0, Err(ApiError::internal(&join)), Vec::new()),
    };
    let webhook_url = match webhook_url.and_then(|url| {
        url.as_deref().map(check_webhook_url).transpose()?;
        Ok(url)
    }) {
        Ok(url) => url,
        Err(err) => {
            if let Err(discard) = store.discard_job(id).await {
                tracing::warn!(error = %crate::error::error_chain(&discard), job = %id, "discarding a failed upload failed; it is purged later");
            }
            return Err(err);
        }
    };
    let job = store
        .seal_job(
            id,
            total,
            webhook_url.as_deref(),
            &large_domains,
            Utc::now(),
        )
        .await?;
    state.jobs.wake.notify_waiters();
    tracing::info!(job = %id, total, "job queued");
    Ok(job)
}

/// Batches of parsed addresses that may wait for the store: the parser
/// reads on while a write is under way.
const PARSED_AHEAD: usize = 32;
/// Addresses written to the store at a time: one `COPY` on Postgres, one
/// transaction on SQLite.
const WRITE_ITEMS: usize = 20_000;
/// Writes under way at once: Postgres inserts one on each of two
/// connections (its own work is most of an upload's); SQLite takes them
/// in turn.
const WRITES_AT_ONCE: usize = 2;

/// A parsed batch as the store takes it: each address with the domain it
/// is grouped by (empty when it does not parse).
fn job_items(batch: Vec<String>) -> Vec<NewJobItem> {
    batch
        .into_iter()
        .map(|email| NewJobItem {
            domain: EmailAddress::parse(&email)
                .map(|address| address.domain().to_owned())
                .unwrap_or_default(),
            email,
        })
        .collect()
}

/// Writes the job's items as they are parsed, [`WRITE_ITEMS`] at a time and
/// up to [`WRITES_AT_ONCE`] writes at once, numbered in input order;
/// returns how many. Fails past the job's limit on addresses, or when the
/// store does (after the writes under way have ended).
async fn write_items(
    state: &AppState,
    id: Uuid,
    incoming: &mut tokio::sync::mpsc::Receiver<Vec<NewJobItem>>,
) -> Result<u64, ApiError> {
    let max_addresses = state.jobs.max_addresses;
    let mut numbered: u64 = 0;
    let mut pending: Vec<NewJobItem> = Vec::with_capacity(WRITE_ITEMS);
    let mut writes = futures::stream::FuturesUnordered::new();
    let outcome = loop {
        let batch = incoming.recv().await;
        let end = batch.is_none();
        if let Some(batch) = batch {
            if numbered + (pending.len() + batch.len()) as u64 > max_addresses {
                break Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_addresses",
                    format!("a job holds at most {max_addresses} addresses"),
                ));
            }
            pending.extend(batch);
        }
        if pending.len() >= WRITE_ITEMS || (end && !pending.is_empty()) {
            // The store works on one write while the next is sent.
            if writes.len() >= WRITES_AT_ONCE
                && let Some(Err(err)) = writes.next().await
            {
                break Err(ApiError::from(err));
            }
            let items = std::mem::replace(&mut pending, Vec::with_capacity(WRITE_ITEMS));
            let first_seq = numbered;
            numbered += items.len() as u64;
            let store = state.store.clone();
            writes
                .push(async move { store.add_job_items(id, first_seq, &items, Utc::now()).await });
        }
        if end {
            break Ok(numbered);
        }
    };
    // Every write ends before the job is sealed or discarded.
    let mut failed = None;
    while let Some(written) = writes.next().await {
        if let Err(err) = written {
            failed.get_or_insert(err);
        }
    }
    match (outcome, failed) {
        (Err(err), _) => Err(err),
        (Ok(_), Some(err)) => Err(ApiError::from(err)),
        (Ok(total), None) => Ok(total),
    }
}

fn input_error(err: InputError) -> ApiError {
    match err {
        InputError::Malformed(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", message)
        }
        InputError::Invalid(message) => ApiError::invalid(message),
        InputError::Io(err) => {
            let failure = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<UploadFailure>());
            match failure {
                Some(UploadFailure::TooLarge) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    UploadFailure::TooLarge.to_string(),
                ),
                Some(UploadFailure::Idle) => ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "upload_stalled",
                    UploadFailure::Idle.to_string(),
                ),
                None => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "upload_failed",
                    format!("reading the upload failed: {err}"),
                ),
            }
        }
        InputError::Stopped => ApiError::new(
            StatusCode::BAD_REQUEST,
            "upload_failed",
            "the upload was stopped",
        ),
    }
}

fn job_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| no_job(text))
}

fn no_job(id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!("no job `{id}`"))
}

/// Most jobs `GET /jobs` lists, and how many without `limit`.
const MAX_LISTED_JOBS: u32 = 100;
const DEFAULT_LISTED_JOBS: u32 = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// The answer of `GET /jobs`.
#[derive(Debug, serde::Serialize)]
pub struct JobList {
    jobs: Vec<JobView>,
}

/// The most recent jobs, newest first, as the API and the dashboard list
/// them.
pub(super) async fn recent(state: &AppState, limit: Option<u32>) -> Result<Vec<JobView>, ApiError> {
    let limit = match limit {
        None => DEFAULT_LISTED_JOBS,
        Some(n) if (1..=MAX_LISTED_JOBS).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "`limit` is {n}; it must be between 1 and {MAX_LISTED_JOBS}"
            )));
        }
    };
    let now = Utc::now();
    Ok(state
        .store
        .recent_jobs(limit)
        .await?
        .iter()
        .map(|job| JobView::new(job, now))
        .collect())
}

/// `GET /jobs?limit=`: the most recent jobs, newest first.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    Ok(Json(JobList {
        jobs: recent(&state, query.limit).await?,
    }))
}

/// `GET /jobs/{id}`: counts, progress and ETA.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let job = state.store.job(id).await?.ok_or_else(|| no_job(id))?;
    Ok(Json(JobView::new(&job, Utc::now())))
}

/// `DELETE /jobs/{id}`: stops a queued or running job; its results so far
/// stay readable. A finished job cannot be cancelled (409).
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    let job = state
        .store
        .cancel_job(id, Utc::now())
        .await?
        .ok_or_else(|| no_job(id))?;
    if job.status != crate::store::JobStatus::Cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_finished",
            format!("the job is already {}", job.status),
        ));
    }
    tracing::info!(job = %id, "job cancelled");
    Ok(Json(JobView::new(&job, Utc::now())))
}

#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    format: Option<String>,
}

impl ResultsQuery {
    pub(super) fn new(format: Option<String>) -> Self {
        ResultsQuery { format }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultsFormat {
    Csv,
    Ndjson,
}

fn results_format(query: &ResultsQuery, headers: &HeaderMap) -> Result<ResultsFormat, ApiError> {
    match query.format.as_deref() {
        Some("csv") => return Ok(ResultsFormat::Csv),
        Some("ndjson") => return Ok(ResultsFormat::Ndjson),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("`format` must be `csv` or `ndjson`, not `{other}`"),
            ));
        }
        None => {}
    }
    let accepts = |kind: &str| super::media::accepts(headers, kind);
    if accepts("application/x-ndjson") && !accepts("text/csv") {
        Ok(ResultsFormat::Ndjson)
    } else {
        Ok(ResultsFormat::Csv)
    }
}

/// `GET /jobs/{id}/results`: every result so far, in input order, streamed
/// page by page from the store.
pub async fn results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ResultsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = results_format(&query, &headers)?;
    let id = job_id(&id)?;
    if state.store.job(id).await?.is_none() {
        return Err(no_job(id));
    }
    let store = state.store.clone();
    let pages = futures::stream::try_unfold(
        (None::<u64>, true, false),
        move |(after, first, finished)| {
            let store = store.clone();
            async move {
                if finished {
                    return Ok::<_, io::Error>(None);
                }
                let rows = store
                    .job_results(id, after, RESULTS_PAGE)
                    .await
                    .map_err(|err| {
                        tracing::warn!(error = %crate::error::error_chain(&err), job = %id, "streaming job results failed");
                        io::Error::other(err)
                    })?;
                let finished = rows.len() < RESULTS_PAGE;
                let next = rows.last().map(|row| row.seq).or(after);
                let bytes = render(format, &rows, first)?;
                Ok(Some((Bytes::from(bytes), (next, false, finished))))
            }
        },
    );
    let (content_type, disposition) = match format {
        ResultsFormat::Csv => (
            "text/csv; charset=utf-8",
            Some(format!("attachment; filename=\"mailvet-job-{id}.csv\"")),
        ),
        ResultsFormat::Ndjson => ("application/x-ndjson", None),
    };
    let mut response = Body::from_stream(pages).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(value) = disposition.and_then(|text| HeaderValue::from_str(&text).ok()) {
        response.headers_mut().insert(CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn render(format: ResultsFormat, rows: &[JobResultRow], first: bool) -> io::Result<Vec<u8>> {
    match format {
        ResultsFormat::Ndjson => {
            let mut out = Vec::with_capacity(rows.len() * 400);
            for row in rows {
                out.extend_from_slice(row.result.as_bytes());
                out.push(b'\n');
            }
            Ok(out)
        }
        ResultsFormat::Csv => {
            let out = Vec::with_capacity(rows.len() * 200);
            let mut writer = if first {
                CsvResults::new(out).map_err(io::Error::other)?
            } else {
                CsvResults::without_header(out)
            };
            for row in rows {
                let result: VerifyResult =
                    serde_json::from_str(&row.result).map_err(io::Error::other)?;
                writer.write(&result).map_err(io::Error::other)?;
            }
            writer.into_inner()
        }
    }
}
