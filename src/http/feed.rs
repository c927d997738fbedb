//! `GET /suppressions`: the suppression list as a change feed for CRM sync,
//! as JSON or CSV.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::suppressions::{self, SuppressionBody};
use super::{ApiError, AppState};
use crate::store::{ChangeFilter, Suppression};
use crate::suppress::Cursor;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A change feed's `limit`: 1 to 1,000, 100 when absent.
pub(super) fn page_limit(text: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_LIMIT);
    };
    text.parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_request",
                format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
            )
        })
}

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    limit: Option<String>,
    cursor: Option<String>,
    reason: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Serialize)]
struct FeedPage {
    data: Vec<SuppressionBody>,
    next_cursor: String,
    has_more: bool,
}

fn parse_query(query: &FeedQuery) -> Result<(u32, Cursor, ChangeFilter), ApiError> {
    let bad = |message: String| {
        ApiError::new(axum::http::StatusCode::BAD_REQUEST, "bad_request", message)
    };
    let limit = page_limit(query.limit.as_deref())?;
    let cursor = match &query.cursor {
        None => Cursor::default(),
        Some(token) if token.is_empty() => Cursor::default(),
        Some(token) => Cursor::decode(token).ok_or_else(|| {
            bad("`cursor` is not a cursor this server gave out; omit it to start from the beginning".into())
        })?,
    };
    let time = |name: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| suppressions::parse_time(name, text))
            .transpose()
    };
    let since = time("since", &query.since)?;
    let until = time("until", &query.until)?;
    suppressions::check_span(since, until)?;
    let filter = ChangeFilter {
        reason: query
            .reason
            .as_deref()
            .map(suppressions::parse_reason)
            .transpose()?,
        source: query
            .source
            .as_deref()
            .map(suppressions::parse_source)
            .transpose()?,
        since,
        until,
    };
    Ok((limit, cursor, filter))
}

fn wants_csv(headers: &HeaderMap) -> bool {
    super::media::accepts(headers, "text/csv")
}

/// `GET /suppressions?limit=&cursor=&reason=&source=&since=&until=`: the
/// entries changed after the cursor (and, with `since`/`until`, within that
/// span of time), in change order, tombstones included. `next_cursor` is
/// always given: keep it and poll again for every later change.
pub async fn feed(
    State(state): State<AppState>,
    Query(query): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (limit, cursor, filter) = parse_query(&query)?;
    // One row more than asked tells whether there is more.
    let mut entries = state
        .suppressions
        .changes(cursor.0, limit + 1, &filter)
        .await?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next = entries.last().map_or(cursor, |entry| Cursor(entry.seq));
    let next_cursor = next.encode();
    if wants_csv(&headers) {
        return Ok(csv_page(entries, &next_cursor, has_more));
    }
    Ok(Json(FeedPage {
        data: entries.into_iter().map(SuppressionBody::from).collect(),
        next_cursor,
        has_more,
    })
    .into_response())
}

pub(super) fn csv_page(entries: Vec<Suppression>, next_cursor: &str, has_more: bool) -> Response {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record([
        "email",
        "reason",
        "source",
        "smtp_code",
        "enhanced_code",
        "diagnostic",
        "mx_host",
        "created_at",
        "updated_at",
        "deleted",
    ]);
    for entry in entries {
        let body = SuppressionBody::from(entry);
        let _ = writer.write_record(body.csv_record().map(crate::spreadsheet::safe_cell));
    }
    let bytes = writer.into_inner().unwrap_or_default();
    let mut response = (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(next_cursor) {
        response.headers_mut().insert("next-cursor", value);
    }
    response.headers_mut().insert(
        "has-more",
        HeaderValue::from_static(if has_more { "true" } else { "false" }),
    );
    response
}
