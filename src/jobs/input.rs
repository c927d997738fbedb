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
fn is_email_header(cell: &[u8]) -> bool {
    let name: Vec<u8> = cell
        .iter()
        .filter(|byte| !matches!(byte, b' ' | b'-' | b'_'))
        .map(u8::to_ascii_lowercase)
        .collect();
    name == b"email" || name == b"emailaddress"
}

/// The addresses of a CSV, one by one: the one reader of address lists,
/// for `POST /jobs` and `mailvet check --file` alike.
///
/// Which column holds the addresses is decided on the first non-blank row:
/// - a cell named as [`is_email_header`] accepts makes that row the header
///   and that cell's column the addresses;
/// - otherwise the first column holds the addresses, and the first row is
///   a header only when its first cell has no `@` (a list without a header
///   starts with an address). Such a header must be followed by an address
///   with an `@` in the first column, or the file is refused as having no
///   usable column.
///
/// Cells are trimmed of white space and of byte order marks (as
/// spreadsheets write at the start of a file); rows may have different
/// lengths; blank rows are skipped, and so are rows whose address cell is
/// empty or missing ([`CsvAddresses::skipped`] counts them). An empty file
/// (no header and no address) is refused; a header alone is an empty list.
/// The input must be UTF-8: other bytes are refused with the line they are
/// on, rather than read as an address nobody wrote.
#[derive(Debug)]
pub struct CsvAddresses<R: Read> {
    rows: csv::Reader<R>,
    record: csv::StringRecord,
    /// How messages name the input: a path, `standard input`, `the CSV`.
    name: String,
    /// Set once the first non-blank row has been looked at.
    column: Option<usize>,
    /// The first row, when it held an address rather than a header.
    first: Option<String>,
    /// The header named no `email` column: the first address must have an
    /// `@`, or the first column holds something else.
    header_without_email: Option<String>,
    /// Non-blank rows without an address.
    skipped: u64,
}

impl<R: Read> CsvAddresses<R> {
    /// A reader of `input`, which messages call `name`.
    pub fn new(input: R, name: impl Into<String>) -> Self {
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(input);
        CsvAddresses {
            rows,
            record: csv::StringRecord::new(),
            name: name.into(),
            column: None,
            first: None,
            header_without_email: None,
            skipped: 0,
        }
    }

    /// Non-blank rows without an address, so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next address, or `None` at the end.
    pub fn next_address(&mut self) -> Result<Option<String>, InputError> {
        let column = match self.column {
            Some(column) => column,
            None => self.start()?,
        };
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        loop {
            if !self.read_row()? {
                if let Some(header) = self.header_without_email.take() {
                    return Err(InputError::Invalid(format!(
                        "{} has no usable column: no column is named `email`, and no address follows the first column's header `{header}`",
                        self.name
                    )));
                }
                return Ok(None);
            }
            match self.record.get(column).map(clean) {
                Some(cell) if !cell.is_empty() => {
                    if let Some(header) = self.header_without_email.take()
                        && !cell.contains('@')
                    {
                        return Err(InputError::Invalid(format!(
                            "{} has no usable column: no column is named `email`, and the first column (`{header}`) holds no address at line {}",
                            self.name,
                            self.line()
                        )));
                    }
                    return Ok(Some(cell.to_owned()));
                }
                _ if is_blank(&self.record) => {}
                _ => self.skipped += 1,
            }
        }
    }

    /// Up to `size` addresses; empty at the end.
    pub fn next_batch(&mut self, size: usize) -> Result<Vec<String>, InputError> {
        let mut batch = Vec::with_capacity(size);
        while batch.len() < size {
            match self.next_address()? {
                Some(address) => batch.push(address),
                None => break,
            }
        }
        Ok(batch)
    }

    /// How many addresses there are (reads to the end).
    pub fn count(mut self) -> Result<u64, InputError> {
        let mut count = 0;
        while self.next_address()?.is_some() {
            count += 1;
        }
        Ok(count)
    }

    /// Reads the next row; false at the end.
    fn read_row(&mut self) -> Result<bool, InputError> {
        self.rows
            .read_record(&mut self.record)
            .map_err(|err| csv_error(err, &self.name))
    }

    fn line(&self) -> u64 {
        self.record.position().map_or(0, csv::Position::line)
    }

    /// Finds the address column on the first non-blank row.
    fn start(&mut self) -> Result<usize, InputError> {
        loop {
            if !self.read_row()? {
                return Err(InputError::Invalid(format!(
                    "{} is empty: no header and no addresses",
                    self.name
                )));
            }
            if !is_blank(&self.record) {
                break;
            }
        }
        let named = self
            .record
            .iter()
            .position(|cell| is_email_header(clean(cell).as_bytes()));
        let column = match named {
            Some(column) => column,
            None => {
                let first = clean(self.record.get(0).unwrap_or_default()).to_owned();
                if first.contains('@') {
                    self.first = Some(first);
                } else {
                    self.header_without_email = Some(first);
                }
                0
            }
        };
        self.column = Some(column);
        Ok(column)
    }
}

/// A cell without surrounding white space or byte order marks.
fn clean(cell: &str) -> &str {
    cell.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

fn is_blank(record: &csv::StringRecord) -> bool {
    record.iter().all(|cell| clean(cell).is_empty())
}

/// Reads the addresses of a CSV upload (see [`CsvAddresses`]), handing
/// them to `sink` in batches of at most [`BATCH`]. `sink` returns `false`
/// to stop.
pub fn read_csv<R: Read>(
    input: R,
    mut sink: impl FnMut(Vec<String>) -> bool,
) -> Result<(), InputError> {
    let mut addresses = CsvAddresses::new(input, "the CSV");
    loop {
        let batch = addresses.next_batch(BATCH)?;
        if batch.is_empty() {
            return Ok(());
        }
        if !sink(batch) {
            return Err(InputError::Stopped);
        }
    }
}

fn csv_error(err: csv::Error, name: &str) -> InputError {
    let line = err.position().map(csv::Position::line);
    match err.into_kind() {
        csv::ErrorKind::Io(err) => InputError::Io(err),
        csv::ErrorKind::Utf8 { .. } => InputError::Malformed(format!(
            "line {} of {name} is not valid UTF-8",
            line.unwrap_or_default()
        )),
        other => InputError::Malformed(format!("{name} could not be read: {other:?}")),
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

    /// Every address of a CSV, read in batches of two.
    fn addresses(text: &[u8]) -> Result<Vec<String>, InputError> {
        let mut reader = CsvAddresses::new(text, "list.csv");
        let mut all = Vec::new();
        loop {
            let batch = reader.next_batch(2)?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    #[test]
    fn a_column_named_email_is_read_wherever_it_is() {
        let text = b"name,EMAIL,city\nAlice, alice@example.test ,Paris\n\n,,\nBob,bob@example.test\nNobody,,Rome\nShort\n";
        assert_eq!(
            addresses(text).expect("read"),
            ["alice@example.test", "bob@example.test"]
        );
        let mut reader = CsvAddresses::new(&text[..], "list.csv");
        assert_eq!(reader.next_batch(10).expect("read").len(), 2);
        assert_eq!(
            reader.skipped(),
            2,
            "the rows without an address, not the blank ones"
        );
    }

    #[test]
    fn spreadsheet_headers_with_a_bom_and_other_spellings_count() {
        for header in ["\u{feff}Email", "E-mail", "Email Address", "email_address"] {
            let text = format!("{header},name\nalice@example.test,Alice\n");
            assert_eq!(
                addresses(text.as_bytes()).expect("read"),
                ["alice@example.test"],
                "{header}"
            );
        }
    }

    #[test]
    fn without_an_email_column_the_first_column_is_read() {
        // No header: the first row is an address.
        let text = b"alice@example.test,Alice\nnot-an-address,Nobody\nbob@example.test\n";
        assert_eq!(
            addresses(text).expect("read"),
            ["alice@example.test", "not-an-address", "bob@example.test"]
        );
        // A header of another name: skipped.
        let text = b"address\nalice@example.test\n";
        assert_eq!(addresses(text).expect("read"), ["alice@example.test"]);
        // A BOM before a first address does not stick to it.
        let text = b"\xEF\xBB\xBFalice@example.test\n";
        assert_eq!(addresses(text).expect("read"), ["alice@example.test"]);
    }

    #[test]
    fn a_file_without_a_usable_column_is_refused() {
        for (text, expected) in [
            (&b""[..], "list.csv is empty"),
            (b"\n,,\n", "list.csv is empty"),
            (b"name,phone\nAlice,555 0100\n", "no usable column"),
            (b"name,phone\n", "no usable column"),
        ] {
            let err = addresses(text).expect_err("refused");
            assert!(
                matches!(err, InputError::Invalid(ref message) if message.contains(expected)),
                "{err}"
            );
        }
        // A header named email with no rows is an empty list, not an error.
        assert_eq!(addresses(b"email\n").expect("read"), Vec::<String>::new());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_with_their_line() {
        let text = b"email,name\nbob@example.test,Bob\nal\xE9@example.test,Ren\xE9\n";
        let err = addresses(text).expect_err("not UTF-8");
        assert!(
            matches!(err, InputError::Malformed(ref message) if message == "line 3 of list.csv is not valid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn counting_agrees_with_reading() {
        let text = b"name,email\nA,a@example.test\nB,\n\nC,c@example.test\n";
        let count = CsvAddresses::new(&text[..], "list.csv")
            .count()
            .expect("count");
        assert_eq!(count, 2);
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
