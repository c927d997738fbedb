//! Writing `mailvet check`'s results: the table, JSON lines, the CSV or
//! JSON-lines sink of a file run, its progress bar and its summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::verify::VerifyResult;
use crate::verify::export::CsvResults;
use crate::vocab::{Reason, Status};

/// Where the results go.
pub(super) struct Sink {
    format: Format,
    path: Option<PathBuf>,
}

enum Format {
    Csv(Box<CsvResults<Box<dyn Write + Send>>>),
    Json(BufWriter<Box<dyn Write + Send>>),
}

impl Sink {
    pub(super) fn open(output: Option<&Path>, json: bool) -> anyhow::Result<Self> {
        let path = output.filter(|path| path.as_os_str() != "-");
        let out: Box<dyn Write + Send> = match path {
            Some(path) => Box::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let format = if json {
            Format::Json(BufWriter::new(out))
        } else {
            let out =
                CsvResults::new(out).map_err(|err| sink_error(&sink_name(path), err.into()))?;
            Format::Csv(Box::new(out))
        };
        Ok(Sink {
            format,
            path: path.map(Path::to_owned),
        })
    }

    fn name(&self) -> String {
        sink_name(self.path.as_deref())
    }

    /// Writes the results and flushes them, so that a reader of the output
    /// sees each chunk as it is done.
    pub(super) fn write(&mut self, results: &[VerifyResult]) -> anyhow::Result<()> {
        let outcome = match &mut self.format {
            Format::Csv(out) => results
                .iter()
                .try_for_each(|result| out.write(result))
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(out.flush()?)),
            Format::Json(out) => results
                .iter()
                .try_for_each(|result| {
                    serde_json::to_writer(&mut *out, result)?;
                    out.write_all(b"\n")?;
                    anyhow::Ok(())
                })
                .and_then(|()| Ok(out.flush()?)),
        };
        outcome.map_err(|err| sink_error(&self.name(), err))
    }

    /// Flushes everything; the output file, if there is one.
    pub(super) fn finish(self) -> anyhow::Result<Option<PathBuf>> {
        let name = self.name();
        let flushed = match self.format {
            Format::Csv(out) => out.into_inner().and_then(|mut out| out.flush()),
            Format::Json(out) => out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)
                .and_then(|mut out| out.flush()),
        };
        flushed.map_err(|err| sink_error(&name, err.into()))?;
        Ok(self.path)
    }
}

fn sink_name(path: Option<&Path>) -> String {
    path.map_or_else(
        || "standard output".to_owned(),
        |path| path.display().to_string(),
    )
}

fn sink_error(name: &str, err: anyhow::Error) -> anyhow::Error {
    err.context(format!("cannot write the results to {name}"))
}

/// A bar with done/total, rate and ETA on standard error; a counter when
/// the total is unknown. Hidden when standard error is not a terminal.
pub(super) fn progress_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} {human_pos}/{human_len} [{wide_bar}] {per_sec:1}, ETA {eta}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {human_pos} addresses, {per_sec:1}, {elapsed}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// What a file run found.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) total: u64,
    statuses: HashMap<Status, u64>,
    reasons: HashMap<Reason, u64>,
    /// Non-blank rows without an address.
    pub(super) skipped: u64,
    /// Some verdicts were reached without the database.
    pub(super) degraded: bool,
}

impl Tally {
    pub(super) fn add(&mut self, results: &[VerifyResult]) {
        for result in results {
            self.total += 1;
            *self.statuses.entry(result.status).or_default() += 1;
            *self.reasons.entry(result.reason).or_default() += 1;
        }
    }

    /// Results with `status`.
    pub(super) fn count(&self, status: Status) -> u64 {
        self.statuses.get(&status).copied().unwrap_or_default()
    }
}

/// The end-of-run table: every status, the reasons that occurred, the
/// total and the time taken.
pub(super) fn summary(tally: &Tally, elapsed: Duration) -> String {
    let mut rows: Vec<(&str, String)> = vec![("STATUS", "COUNT".to_owned())];
    for status in Status::ALL {
        let count = tally.statuses.get(status).copied().unwrap_or_default();
        rows.push((status.as_str(), count.to_string()));
    }
    rows.push(("", String::new()));
    rows.push(("REASON", "COUNT".to_owned()));
    for reason in Reason::ALL {
        if let Some(count) = tally.reasons.get(reason) {
            rows.push((reason.as_str(), count.to_string()));
        }
    }
    rows.push(("", String::new()));
    rows.push(("TOTAL", tally.total.to_string()));
    let label = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let count = rows.iter().map(|(_, count)| count.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, value) in &rows {
        let line = format!("{name:<label$}  {value:>count$}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let seconds = elapsed.as_secs_f64();
    let time = if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        humantime::format_duration(Duration::from_secs(elapsed.as_secs())).to_string()
    };
    let rate = if seconds > 0.0 {
        tally.total as f64 / seconds
    } else {
        0.0
    };
    let _ = writeln!(out, "elapsed {time} ({rate:.1} addresses/s)");
    if tally.skipped > 0 {
        let rows = if tally.skipped == 1 { "row" } else { "rows" };
        let _ = writeln!(out, "skipped {} {rows} without an address", tally.skipped);
    }
    if tally.degraded {
        out.push_str(
            "warning: the database failed during the run; some verdicts were reached without the cache and the suppression list\n",
        );
    }
    out
}

pub(super) fn json_lines(results: &[VerifyResult]) -> anyhow::Result<String> {
    let mut out = String::new();
    for result in results {
        out.push_str(&serde_json::to_string(result)?);
        out.push('\n');
    }
    Ok(out)
}

/// A plain-text table: one row per address, columns padded to fit.
pub fn table(results: &[VerifyResult]) -> String {
    let header = ["EMAIL", "STATUS", "REASON", "SMTP", "NOTE"];
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|result| {
            let smtp = result.smtp.as_ref().map_or_else(String::new, |smtp| {
                let enhanced = smtp.enhanced_code.as_deref().unwrap_or_default();
                format!("{} {enhanced}", smtp.code).trim_end().to_owned()
            });
            let note = match (&result.suggestion, &result.message) {
                (Some(suggestion), _) => format!("did you mean {suggestion}?"),
                (None, Some(message)) => message.clone(),
                (None, None) if result.cached => "cached".to_owned(),
                (None, None) => String::new(),
            };
            [
                result.email.clone(),
                result.status.to_string(),
                result.reason.to_string(),
                smtp,
                note,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_every_status_and_the_reasons_seen() {
        let mut tally = Tally::default();
        tally.add(&[
            VerifyResult::new("a@example.test", None, Reason::Accepted),
            VerifyResult::new("b@example.test", None, Reason::MailboxNotFound),
            VerifyResult::new("c@example.test", None, Reason::MailboxNotFound),
            VerifyResult::new("nope", None, Reason::InvalidSyntax),
        ]);
        tally.skipped = 1;
        let text = summary(&tally, Duration::from_secs(2));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        let count = |name: &str| {
            rows.iter()
                .find(|row| row.first() == Some(&name))
                .map(|row| row[1])
        };
        assert_eq!(count("deliverable"), Some("1"), "{text}");
        assert_eq!(count("undeliverable"), Some("3"), "{text}");
        assert_eq!(count("risky"), Some("0"), "{text}");
        assert_eq!(count("mailbox_not_found"), Some("2"), "{text}");
        assert_eq!(count("invalid_syntax"), Some("1"), "{text}");
        assert_eq!(count("timeout"), None, "only the reasons seen: {text}");
        assert_eq!(count("TOTAL"), Some("4"), "{text}");
        assert!(text.contains("elapsed 2.0s (2.0 addresses/s)"), "{text}");
        assert!(text.contains("skipped 1 row without an address"), "{text}");
    }

    #[test]
    fn the_table_aligns_columns_and_shows_suggestions() {
        let mut typo = VerifyResult::new(
            "bob@gmial.com",
            Some("bob@gmial.com".into()),
            Reason::DnsError,
        );
        typo.suggestion = Some("bob@gmail.com".into());
        let invalid = VerifyResult::new("nope", None, Reason::InvalidSyntax)
            .with_message("the address has no @");
        let table = table(&[typo, invalid]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("EMAIL          STATUS         REASON"),
            "{table}"
        );
        assert!(lines[1].contains("did you mean bob@gmail.com?"));
        assert!(
            lines[2].starts_with("nope           undeliverable  invalid_syntax"),
            "{table}"
        );
        assert!(lines[2].ends_with("the address has no @"));
    }
}
