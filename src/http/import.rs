//! Reading the body of `POST /suppressions`: one address (`{"email", …}`),
//! or an import of many, as JSON (`{"suppressions": [{"email", …}, …]}`) or
//! CSV (columns `email` and, optionally, `reason`). An import is all or
//! nothing, so every entry is checked here, and the first invalid one is
//! refused with its position.

use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::ApiError;
use crate::address::EmailAddress;
use crate::suppress::ImportEntry;
use crate::vocab::SuppressionReason;

/// Most entries one import may hold.
pub const MAX_IMPORT: usize = 10_000;
/// Longest note accepted with a suppression added by hand.
const MAX_NOTE_CHARS: usize = 1000;

/// What a `POST /suppressions` asks for.
#[derive(Debug)]
pub enum AddRequest {
    One(ImportEntry),
    Many(Vec<ImportEntry>),
}

/// One entry as JSON gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    email: String,
    #[serde(default = "manual")]
    reason: SuppressionReason,
    diagnostic: Option<String>,
}

fn manual() -> SuppressionReason {
    SuppressionReason::Manual
}

/// An import as JSON gives it; entries are read one by one, so that an
/// error can name the entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportJson {
    suppressions: Vec<Value>,
}

/// Reads the body by its media type.
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<AddRequest, ApiError> {
    let media = super::media::media_type(headers).unwrap_or_default();
    match media.as_str() {
        "text/csv" | "application/csv" => read_csv(body).map(AddRequest::Many),
        json if json == "application/json" || json.ends_with("+json") => read_json(body),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send `application/json` (one entry, or `{\"suppressions\": [...]}`) or \
             `text/csv` (columns email and, optionally, reason)",
        )),
    }
}

fn read_json(body: &[u8]) -> Result<AddRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not JSON: {err}"),
        )
    })?;
    let is_import = value
        .as_object()
        .is_some_and(|object| object.contains_key("suppressions"));
    if !is_import {
        let entry: EntryJson = serde_json::from_value(value)
            .map_err(|err| ApiError::invalid(format!("the body is not a suppression: {err}")))?;
        return entry_from_json(entry, "").map(AddRequest::One);
    }
    let import: ImportJson = serde_json::from_value(value)
        .map_err(|err| ApiError::invalid(format!("the body is not an import: {err}")))?;
    check_count(import.suppressions.len(), "`suppressions` has")?;
    let mut entries = Vec::with_capacity(import.suppressions.len());
    for (index, value) in import.suppressions.into_iter().enumerate() {
        let at = format!("entry {} (`suppressions[{index}]`): ", index + 1);
        let entry: EntryJson =
            serde_json::from_value(value).map_err(|err| ApiError::invalid(format!("{at}{err}")))?;
        entries.push(entry_from_json(entry, &at)?);
    }
    Ok(AddRequest::Many(entries))
}

fn entry_from_json(entry: EntryJson, at: &str) -> Result<ImportEntry, ApiError> {
    if entry
        .diagnostic
        .as_ref()
        .is_some_and(|text| text.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(ApiError::invalid(format!(
            "{at}`diagnostic` is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(ImportEntry {
        address: parse_address(&entry.email, at)?,
        reason: entry.reason,
        note: entry.diagnostic,
    })
}

fn parse_address(email: &str, at: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(email)
        .map_err(|err| ApiError::invalid(format!("{at}`email` is not a valid address: {err}")))
}

fn check_count(count: usize, what: &str) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::invalid(
            "the import holds no entries; send at least one",
        ));
    }
    if count > MAX_IMPORT {
        return Err(ApiError::invalid(format!(
            "{what} more than {MAX_IMPORT} entries, the most one import takes; \
             split the list"
        )));
    }
    Ok(())
}

/// Reads a CSV import: the address in the first column and the reason, if
/// any, in the second, under an optional header row (`email` or
/// `email,reason`). Blank lines are skipped; rows are numbered as lines of
/// the file, blank ones included.
fn read_csv(body: &[u8]) -> Result<Vec<ImportEntry>, ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    // How many columns rows may have: 1 under the header `email`, else 2.
    let mut width: Option<usize> = None;
    let mut entries = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|err| {
            let row = err
                .position()
                .map_or(index as u64 + 1, |pos| line_at(body, pos.byte()));
            ApiError::invalid(format!("row {row}: not readable as CSV: {err}"))
        })?;
        let row = record
            .position()
            .map_or(index as u64 + 1, |pos| line_at(body, pos.byte()));
        let at = format!("row {row}: ");
        if record.iter().all(str::is_empty) {
            continue;
        }
        if width.is_none() {
            let header = header_width(&record, &at)?;
            width = Some(header.unwrap_or(2));
            if header.is_some() {
                continue;
            }
        }
        let width = width.unwrap_or(2);
        if record.len() > width {
            return Err(ApiError::invalid(format!(
                "{at}{} columns; the columns are email and, optionally, reason",
                record.len()
            )));
        }
        let reason = match record.get(1) {
            None | Some("") => SuppressionReason::Manual,
            Some(text) => text
                .parse()
                .map_err(|err| ApiError::invalid(format!("{at}{err}")))?,
        };
        if entries.len() == MAX_IMPORT {
            check_count(MAX_IMPORT + 1, "the file has")?;
        }
        entries.push(ImportEntry {
            address: parse_address(record.get(0).unwrap_or_default(), &at)?,
            reason,
            note: None,
        });
    }
    check_count(entries.len(), "the file has")?;
    Ok(entries)
}

/// The line of the file on which a record that the reader places at `byte`
/// begins. (The reader's own line count skips blank lines and counts a
/// CRLF file short; its byte position may point at the line ends before
/// the record.)
fn line_at(body: &[u8], byte: u64) -> u64 {
    let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(body.len());
    while start < body.len() && matches!(body[start], b'\r' | b'\n') {
        start += 1;
    }
    1 + body[..start].iter().filter(|&&b| b == b'\n').count() as u64
}

/// When the first row is a header (its first cell is `email`), how many
/// columns it names.
fn header_width(record: &csv::StringRecord, at: &str) -> Result<Option<usize>, ApiError> {
    let is_header = record
        .get(0)
        .is_some_and(|cell| cell.eq_ignore_ascii_case("email"));
    if !is_header {
        return Ok(None);
    }
    match record.get(1) {
        None => Ok(Some(1)),
        Some(name) if name.eq_ignore_ascii_case("reason") && record.len() == 2 => Ok(Some(2)),
        Some(_) => Err(ApiError::invalid(format!(
            "{at}the header names the columns {}; the columns are email and, optionally, reason",
            record.iter().collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::CONTENT_TYPE;
    use proptest::prelude::*;

    use super::*;

    fn headers(media: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(media));
        headers
    }

    fn imported(body: &str) -> Result<Vec<(String, SuppressionReason)>, ApiError> {
        match read(&headers("text/csv"), body.as_bytes())? {
            AddRequest::Many(entries) => Ok(entries
                .into_iter()
                .map(|entry| (entry.address.normalized(), entry.reason))
                .collect()),
            AddRequest::One(_) => panic!("a CSV is an import"),
        }
    }

    #[test]
    fn a_csv_names_the_row_of_its_first_bad_entry() {
        for body in [
            "email\r\na@example.test\r\n\r\nnot-an-address\r\n",
            "email\na@example.test\n\nnot-an-address\n",
            "\u{feff}\na@example.test,\"hard_bounce\"\nb@example.test,manual\nnot-an-address\n",
        ] {
            let err = imported(body).expect_err("bad");
            assert!(
                err.message.starts_with("row 4: "),
                "{body:?}: {}",
                err.message
            );
        }
        let err = imported("a@example.test,manual,x\n").expect_err("bad");
        assert!(
            err.message.starts_with("row 1: 3 columns"),
            "{}",
            err.message
        );
        let err = imported("email\na@example.test,manual\n").expect_err("no reason column");
        assert!(
            err.message.starts_with("row 2: 2 columns"),
            "{}",
            err.message
        );
    }

    proptest! {
        /// Whatever the bytes, reading answers (an import or an error),
        /// never panics.
        #[test]
        fn any_body_is_answered(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = read(&headers("text/csv"), &body);
            let _ = read(&headers("application/json"), &body);
        }

        /// A list of addresses and reasons reads back as written, in order.
        #[test]
        fn a_csv_of_valid_rows_reads_back_as_written(
            rows in proptest::collection::vec(
                ("[a-z][a-z0-9]{0,8}", "[a-z]{1,8}", proptest::option::of(0..SuppressionReason::ALL.len())),
                1..40,
            ),
            header in any::<bool>(),
        ) {
            let mut csv = if header { "email,reason\n".to_owned() } else { String::new() };
            let mut expected = Vec::new();
            for (local, domain, reason) in &rows {
                let email = format!("{local}@{domain}.test");
                let reason = reason.map(|index| SuppressionReason::ALL[index]);
                match reason {
                    Some(reason) => csv.push_str(&format!("{email},{reason}\n")),
                    None => csv.push_str(&format!("{email}\n")),
                }
                expected.push((email, reason.unwrap_or(SuppressionReason::Manual)));
            }
            prop_assert_eq!(imported(&csv).expect("valid rows"), expected);
        }
    }
}
