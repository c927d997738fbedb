//! Verdicts as flat rows: the CSV that job results and `mailvet check
//! --file` write, with every `VerifyResult` field.

use std::io::Write;

use super::VerifyResult;

/// The columns of a results CSV, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "email",
    "normalized",
    "status",
    "reason",
    "suggestion",
    "mx",
    "smtp_host",
    "smtp_code",
    "smtp_enhanced_code",
    "smtp_message",
    "disposable",
    "role_account",
    "free_provider",
    "catch_all",
    "suppressed",
    "suppression_reason",
    "cached",
    "checked_at",
    "message",
];

/// One result as CSV cells, in `CSV_COLUMNS` order. Lists (`mx`) are
/// joined with spaces; absent values are empty.
pub fn csv_cells(result: &VerifyResult) -> [String; 19] {
    let smtp = result.smtp.as_ref();
    let flag = |value: bool| if value { "true" } else { "false" }.to_owned();
    [
        result.email.clone(),
        result.normalized.clone().unwrap_or_default(),
        result.status.to_string(),
        result.reason.to_string(),
        result.suggestion.clone().unwrap_or_default(),
        result.mx.join(" "),
        smtp.map(|smtp| smtp.host.clone()).unwrap_or_default(),
        smtp.map(|smtp| smtp.code.to_string()).unwrap_or_default(),
        smtp.and_then(|smtp| smtp.enhanced_code.clone())
            .unwrap_or_default(),
        smtp.map(|smtp| smtp.message.clone()).unwrap_or_default(),
        flag(result.flags.disposable),
        flag(result.flags.role_account),
        flag(result.flags.free_provider),
        flag(result.flags.catch_all),
        flag(result.suppressed),
        result
            .suppression_reason
            .map(|reason| reason.to_string())
            .unwrap_or_default(),
        flag(result.cached),
        crate::rfc3339::format(&result.checked_at),
        result.message.clone().unwrap_or_default(),
    ]
}

/// Writes results as CSV, header first when `header` is set.
#[derive(Debug)]
pub struct CsvResults<W: Write> {
    writer: csv::Writer<W>,
}

impl<W: Write> CsvResults<W> {
    /// A writer that starts with the header row.
    pub fn new(out: W) -> csv::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        writer.write_record(CSV_COLUMNS)?;
        Ok(CsvResults { writer })
    }

    /// A writer without a header row (for continuing a stream).
    pub fn without_header(out: W) -> Self {
        CsvResults {
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out),
        }
    }

    /// Writes one row; cells a spreadsheet would run as formulas are
    /// neutralised (see `spreadsheet.rs`).
    pub fn write(&mut self, result: &VerifyResult) -> csv::Result<()> {
        self.writer
            .write_record(csv_cells(result).map(crate::spreadsheet::safe_cell))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.writer
            .into_inner()
            .map_err(|err| std::io::Error::other(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Reason;
    use crate::vocab::SmtpEvidence;

    #[test]
    fn a_row_has_every_column_and_quotes_what_needs_it() {
        let mut result = VerifyResult::new(
            "Bob@Example.test",
            Some("Bob@example.test".into()),
            Reason::MailboxNotFound,
        );
        result.mx = vec!["mx1.example.test".into(), "mx2.example.test".into()];
        result.smtp = Some(SmtpEvidence {
            host: "mx1.example.test".into(),
            code: 550,
            enhanced_code: Some("5.1.1".into()),
            message: "user unknown, \"bob\"".into(),
        });
        let mut out = CsvResults::new(Vec::new()).expect("header");
        out.write(&result).expect("row");
        let text = String::from_utf8(out.into_inner().expect("flush")).expect("utf-8");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().expect("headers").clone();
        assert_eq!(headers.iter().collect::<Vec<_>>(), CSV_COLUMNS);
        let row = reader.records().next().expect("a row").expect("valid");
        let cell = |name: &str| {
            let index = CSV_COLUMNS
                .iter()
                .position(|column| *column == name)
                .expect("column");
            row[index].to_owned()
        };
        assert_eq!(cell("status"), "undeliverable");
        assert_eq!(cell("reason"), "mailbox_not_found");
        assert_eq!(cell("mx"), "mx1.example.test mx2.example.test");
        assert_eq!(cell("smtp_code"), "550");
        assert_eq!(cell("smtp_message"), "user unknown, \"bob\"");
        assert_eq!(cell("suggestion"), "");
        assert_eq!(cell("cached"), "false");
    }
}
