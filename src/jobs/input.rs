//! Address lists as they are uploaded: a CSV file or a JSON document,
//! read as a stream and handed on in batches, never held whole.

use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Addresses per batch handed to the sink.
pub const BATCH: usize = 1000;

/// Why an upload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not well-formed CSV or JSON.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but not the expected shape.
    #[error("{0}")]
    Invalid(String),
    /// Reading the upload failed (the client went away, or the upload was
    /// larger than allowed).
    #[error("reading the upload failed: {0}")]
    Io(#[from] std::io::Error),
    /// The sink stopped taking batches.
    #[error("the upload was stopped")]
    Stopped,
}

/// Whether a header cell names the address column: `email` or
/// `email address`, ignoring case, spaces, `-` and `_` (`E-mail`,
/// `Email Address` as Mailchimp exports, `email_address`).
pub fn is_email_header(cell: &[u8]) -> bool {
    let name: Vec<u8> = cell
        .iter()
        .filter(|byte| !matches!(byte, b' ' | b'-' | b'_'))
        .map(u8::to_ascii_lowercase)
        .collect();
    name == b"email" || name == b"emailaddress"
}

/// Which column of a CSV holds the addresses, and whether the first row
/// is a header. A column named as [`is_email_header`] accepts wins; with
/// none, the first column is used, and the first row is a header unless its
/// first cell holds an `@`.
pub fn email_column(first_row: &csv::StringRecord) -> (usize, bool) {
    let named = first_row
        .iter()
        .position(|cell| is_email_header(cell.trim().trim_start_matches('\u{feff}').as_bytes()));
    match named {
        Some(column) => (column, true),
        None => {
            let first = first_row.get(0).unwrap_or_default();
            (0, !first.contains('@'))
        }
    }
}

/// Reads the addresses of a CSV, handing them to `sink` in batches of at
/// most [`BATCH`]. Blank cells are skipped. `sink` returns `false` to stop.
pub fn read_csv<R: Read>(
    input: R,
    mut sink: impl FnMut(Vec<String>) -> bool,
) -> Result<(), InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let mut column = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => return Err(csv_error(err)),
        }
        let column = match column {
            Some(column) => column,
            None if record.iter().all(|cell| cell.trim().is_empty()) => continue,
            None => {
                let (found, header) = email_column(&record);
                column = Some(found);
                if header {
                    continue;
                }
                found
            }
        };
        let Some(cell) = record.get(column) else {
            continue;
        };
        let email = cell.trim().trim_start_matches('\u{feff}');
        if email.is_empty() {
            continue;
        }
        batch.push(email.to_owned());
        if batch.len() == BATCH && !sink(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))) {
            return Err(InputError::Stopped);
        }
    }
    if !batch.is_empty() && !sink(batch) {
        return Err(InputError::Stopped);
    }
    Ok(())
}

fn csv_error(err: csv::Error) -> InputError {
    let line = err.position().map(|position| position.line());
    match err.into_kind() {
        csv::ErrorKind::Io(err) => InputError::Io(err),
        csv::ErrorKind::Utf8 { .. } => InputError::Malformed(format!(
            "line {} of the CSV is not valid UTF-8",
            line.unwrap_or_default()
        )),
        other => InputError::Malformed(format!("the CSV could not be read: {other:?}")),
    }
}

/// Reads `{"emails": [...], "webhook_url": "..."}`, handing the addresses
/// to `sink` in batches as they are parsed. Returns the webhook URL.
pub fn read_json<R: Read>(
    input: R,
    sink: impl FnMut(Vec<String>) -> bool,
) -> Result<Option<String>, InputError> {
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    let mut body = JobBody {
        sink: Box::new(sink),
        batch: Vec::with_capacity(BATCH),
        stopped: false,
    };
    let parsed = (&mut body)
        .deserialize(&mut deserializer)
        .and_then(|webhook_url| {
            deserializer.end()?;
            Ok(webhook_url)
        });
    match parsed {
        Ok(webhook_url) => {
            let rest = std::mem::take(&mut body.batch);
            if !rest.is_empty() && !(body.sink)(rest) {
                return Err(InputError::Stopped);
            }
            Ok(webhook_url)
        }
        Err(_) if body.stopped => Err(InputError::Stopped),
        Err(err) => Err(match err.classify() {
            serde_json::error::Category::Io => InputError::Io(std::io::Error::from(err)),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                InputError::Malformed(format!("the body is not valid JSON: {err}"))
            }
            serde_json::error::Category::Data => InputError::Invalid(err.to_string()),
        }),
    }
}

struct JobBody<'a> {
    sink: Box<dyn FnMut(Vec<String>) -> bool + 'a>,
    batch: Vec<String>,
    stopped: bool,
}

impl<'de> DeserializeSeed<'de> for &mut JobBody<'_> {
    /// The webhook URL.
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut JobBody<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"emails": [...], "webhook_url": "..."}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut emails = false;
        let mut webhook_url = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "emails" if emails => return Err(de::Error::duplicate_field("emails")),
                "emails" => {
                    map.next_value_seed(Emails(&mut *self))?;
                    emails = true;
                }
                "webhook_url" => webhook_url = map.next_value::<Option<String>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !emails {
            return Err(de::Error::missing_field("emails"));
        }
        Ok(webhook_url)
    }
}

struct Emails<'b, 'a>(&'b mut JobBody<'a>);

impl<'de> DeserializeSeed<'de> for Emails<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Emails<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of email addresses (strings)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let body = self.0;
        while let Some(email) = seq.next_element::<String>()? {
            let email = email.trim();
            if email.is_empty() {
                continue;
            }
            body.batch.push(email.to_owned());
            if body.batch.len() == BATCH {
                let batch = std::mem::replace(&mut body.batch, Vec::with_capacity(BATCH));
                if !(body.sink)(batch) {
                    body.stopped = true;
                    return Err(de::Error::custom("the upload was stopped"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<Vec<String>, InputError> {
        let mut all = Vec::new();
        read_csv(text.as_bytes(), |batch| {
            all.extend(batch);
            true
        })?;
        Ok(all)
    }

    fn json(text: &str) -> Result<(Vec<String>, Option<String>), InputError> {
        let mut all = Vec::new();
        let url = read_json(text.as_bytes(), |batch| {
            all.extend(batch);
            true
        })?;
        Ok((all, url))
    }

    #[test]
    fn a_csv_column_named_email_is_used_wherever_it_is() {
        let found =
            csv("name,Email\r\nAlice,alice@example.test\r\nBob, bob@example.test \r\n,\r\n")
                .expect("reads");
        assert_eq!(found, ["alice@example.test", "bob@example.test"]);
    }

    #[test]
    fn without_an_email_column_the_first_column_is_used() {
        assert_eq!(
            csv("a@example.test,x\nb@example.test,y\n").expect("reads"),
            ["a@example.test", "b@example.test"],
            "a first row with an @ is data"
        );
        assert_eq!(
            csv("address\na@example.test\n").expect("reads"),
            ["a@example.test"],
            "a first row without one is a header"
        );
        assert_eq!(
            csv("\u{feff}email\na@example.test\n").expect("reads"),
            ["a@example.test"],
            "a byte-order mark does not hide the header"
        );
    }

    #[test]
    fn csv_batches_are_bounded_and_in_order() {
        let text: String = (0..2500).map(|n| format!("u{n}@example.test\n")).collect();
        let mut sizes = Vec::new();
        let mut last = String::new();
        read_csv(text.as_bytes(), |batch| {
            sizes.push(batch.len());
            last = batch.last().cloned().unwrap_or_default();
            true
        })
        .expect("reads");
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(last, "u2499@example.test");
    }

    #[test]
    fn a_sink_can_stop_the_upload() {
        let text: String = (0..2500).map(|n| format!("u{n}@example.test\n")).collect();
        let stopped = read_csv(text.as_bytes(), |_| false);
        assert!(matches!(stopped, Err(InputError::Stopped)), "{stopped:?}");
        let body = format!(
            r#"{{"emails": [{}]}}"#,
            (0..1500)
                .map(|n| format!("\"u{n}@x.test\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let stopped = read_json(body.as_bytes(), |_| false);
        assert!(matches!(stopped, Err(InputError::Stopped)), "{stopped:?}");
    }

    #[test]
    fn invalid_utf8_in_a_csv_is_malformed() {
        let bytes = b"email\na@example.test\n\xff\xfe@x.test\n";
        let mut seen = 0;
        let err = read_csv(&bytes[..], |batch| {
            seen += batch.len();
            true
        })
        .expect_err("not UTF-8");
        assert!(
            matches!(err, InputError::Malformed(ref text) if text.contains("line 3")),
            "{err}"
        );
    }

    #[test]
    fn json_takes_emails_and_the_webhook_in_any_order() {
        let (emails, url) = json(
            r#"{"webhook_url": "https://crm.example.test/hook", "extra": {"a": [1]}, "emails": ["a@x.test", " ", "b@x.test"]}"#,
        )
        .expect("reads");
        assert_eq!(emails, ["a@x.test", "b@x.test"]);
        assert_eq!(url.as_deref(), Some("https://crm.example.test/hook"));
        let (emails, url) =
            json(r#"{"emails": ["a@x.test"], "webhook_url": null}"#).expect("reads");
        assert_eq!((emails.len(), url), (1, None));
    }

    #[test]
    fn json_errors_tell_syntax_from_shape() {
        assert!(matches!(
            json(r#"{"emails": ["a@x.test""#),
            Err(InputError::Malformed(_))
        ));
        assert!(matches!(
            json(r#"{"emails": ["a"]} trailing"#),
            Err(InputError::Malformed(_))
        ));
        let err = json(r#"{"webhook_url": null}"#).expect_err("no emails");
        assert!(
            matches!(err, InputError::Invalid(ref text) if text.contains("emails")),
            "{err}"
        );
        assert!(matches!(
            json(r#"{"emails": [1, 2]}"#),
            Err(InputError::Invalid(_))
        ));
        assert!(matches!(
            json(r#"["a@x.test"]"#),
            Err(InputError::Invalid(_))
        ));
    }
}
