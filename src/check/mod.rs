//! `mailvet check EMAIL…` and `mailvet check --file list.csv`: the
//! verification engine from the command line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::input::{CsvAddresses, InputError};
use crate::settings::CheckSettings;
use crate::startup::{self, Engine};
use crate::suppress::SoftBouncePolicy;
use crate::verify::VerifyResult;
use crate::verify::export::CsvResults;
use crate::vocab::{Reason, Status};

/// Verifies the addresses and prints a table (or JSON lines) on stdout.
pub async fn run(
    settings: &CheckSettings,
    emails: &[String],
    json: bool,
    fresh: bool,
) -> anyhow::Result<()> {
    let db = startup::open_database(&settings.database).await?;
    let engine = engine(settings, db.clone())?;
    let results = engine.verifier.verify_batch(emails, fresh).await.value;
    db.close().await;
    let output = if json {
        json_lines(&results)?
    } else {
        table(&results)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The service's engine, on its database, with check's settings. `check`
/// records no bounces, so the soft-bounce policy is never consulted.
fn engine(settings: &CheckSettings, db: Arc<dyn crate::store::Database>) -> anyhow::Result<Engine> {
    let verifier = settings.verify.verifier(&settings.dns, &settings.smtp)?;
    Engine::build(db, verifier, SoftBouncePolicy::default())
}

/// Addresses verified at once: one `verify_batch`, so that a chunk's
/// addresses at one domain share a DNS lookup and SMTP sessions.
const CHUNK_SIZE: usize = 500;

/// Verifies the addresses of a CSV file (`-`: standard input) with the
/// service's engine, settings and database, and writes one result per
/// address, in input order: CSV with every `VerifyResult` field
/// (`CsvResults`), or JSON lines with `json`; to `output`, or standard
/// output when it is absent or `-`. A progress bar and, at the end, a
/// summary go to standard error.
///
/// The addresses are read as `POST /jobs` reads an upload
/// ([`CsvAddresses`]): the column named `email` (`E-mail`, `Email
/// Address`…), or else the first column, whose first row is a header unless
/// it holds an `@`; blank rows are skipped, and so are rows whose address
/// cell is empty (counted in the summary); a file that is not UTF-8, is
/// empty or has no usable column is refused, before the database is
/// opened when it is a regular file. The input is streamed, `CHUNK_SIZE`
/// rows at a time; a regular file is read once beforehand to count its
/// addresses for the progress bar. Duplicates are folded within a chunk; a
/// later repetition is answered from the cache (unless `fresh`).
pub async fn run_file(
    settings: &CheckSettings,
    file: &Path,
    output: Option<&Path>,
    json: bool,
    fresh: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let input = Input::new(file);
    if let (Input::File(input), Some(output)) = (&input, output)
        && same_file(input, output)
    {
        anyhow::bail!(
            "--output {} would overwrite the input file",
            output.display()
        );
    }
    // The cheap pass: the total for the progress bar, and any problem with
    // the file found before the database is touched.
    let total = match &input {
        Input::File(path) if std::fs::metadata(path).is_ok_and(|meta| meta.is_file()) => {
            let reader = input.open()?;
            Some(tokio::task::spawn_blocking(move || reader.count()).await??)
        }
        _ => None,
    };
    let mut chunks = read_chunks(input.open()?);
    // The first chunk (header checks included) before any side effect.
    let first = chunks.recv().await.transpose()?;
    let mut sink = Sink::open(output, json)?;

    let db = startup::open_database(&settings.database).await?;
    let outcome = async {
        let verifier = engine(settings, db.clone())?.verifier;
        let progress = progress_bar(total);
        let mut tally = Tally::default();
        let mut next = first;
        while let Some(chunk) = next {
            let answer = verifier.verify_batch(&chunk, fresh).await;
            tally.degraded |= answer.degraded;
            tally.add(&answer.value);
            // The bar steps aside while results go to a terminal too.
            progress.suspend(|| sink.write(&answer.value))?;
            progress.inc(answer.value.len() as u64);
            next = chunks.recv().await.transpose()?;
        }
        progress.finish_and_clear();
        anyhow::Ok(tally)
    }
    .await;
    db.close().await;
    let mut tally = outcome?;
    tally.skipped = chunks.skipped();
    let written = sink.finish()?;

    let mut report = summary(&tally, started.elapsed());
    if let Some(path) = written {
        let _ = writeln!(report, "results written to {}", path.display());
    }
    let mut stderr = std::io::stderr().lock();
    stderr
        .write_all(report.as_bytes())
        .and_then(|()| stderr.flush())
        .context("writing the summary to standard error")?;
    Ok(())
}

/// Where the addresses come from.
#[derive(Debug, Clone)]
enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn new(path: &Path) -> Self {
        if path.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::File(path.to_owned())
        }
    }

    fn name(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_owned(),
            Input::File(path) => path.display().to_string(),
        }
    }

    fn open(&self) -> anyhow::Result<Addresses> {
        let reader: Box<dyn Read + Send> = match self {
            Input::Stdin => Box::new(std::io::stdin()),
            Input::File(path) => Box::new(
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
        };
        Ok(Addresses {
            reader: CsvAddresses::new(reader, self.name()),
            name: self.name(),
        })
    }
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The addresses of the input, read by the one CSV reader of address
/// lists; its errors name the input.
struct Addresses {
    reader: CsvAddresses<Box<dyn Read + Send>>,
    name: String,
}

impl Addresses {
    /// Up to `size` addresses; empty at the end.
    fn next_chunk(&mut self, size: usize) -> anyhow::Result<Vec<String>> {
        let name = &self.name;
        self.reader
            .next_batch(size)
            .map_err(|err| read_error(err, name))
    }

    /// How many addresses there are (reads to the end).
    fn count(self) -> anyhow::Result<u64> {
        let name = self.name;
        self.reader.count().map_err(|err| read_error(err, &name))
    }
}

/// A reading error as `check` reports it: the reader's own messages name
/// the input already; a failed read says which input failed.
fn read_error(err: InputError, name: &str) -> anyhow::Error {
    match err {
        InputError::Io(err) => anyhow::Error::new(err).context(format!("cannot read {name}")),
        other => anyhow::Error::new(other),
    }
}

/// Chunks of addresses read on a thread of their own, at most two ahead of
/// the verifier: memory stays bounded whatever the input's size, and a
/// stalled standard input never holds up the runtime's shutdown.
struct Chunks {
    receiver: tokio::sync::mpsc::Receiver<anyhow::Result<Vec<String>>>,
    skipped: Arc<AtomicU64>,
}

impl Chunks {
    /// The next chunk; `None` at the end.
    async fn recv(&mut self) -> Option<anyhow::Result<Vec<String>>> {
        self.receiver.recv().await
    }

    /// Rows without an address, so far.
    fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::SeqCst)
    }
}

fn read_chunks(mut addresses: Addresses) -> Chunks {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let skipped = Arc::new(AtomicU64::new(0));
    let counter = skipped.clone();
    std::thread::spawn(move || {
        loop {
            let chunk = addresses.next_chunk(CHUNK_SIZE);
            counter.store(addresses.reader.skipped(), Ordering::SeqCst);
            match chunk {
                Ok(chunk) if chunk.is_empty() => return,
                Ok(chunk) => {
                    if sender.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = sender.blocking_send(Err(err));
                    return;
                }
            }
        }
    });
    Chunks { receiver, skipped }
}

/// Where the results go.
struct Sink {
    format: Format,
    path: Option<PathBuf>,
}

enum Format {
    Csv(Box<CsvResults<Box<dyn Write + Send>>>),
    Json(BufWriter<Box<dyn Write + Send>>),
}

impl Sink {
    fn open(output: Option<&Path>, json: bool) -> anyhow::Result<Self> {
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
    fn write(&mut self, results: &[VerifyResult]) -> anyhow::Result<()> {
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
    fn finish(self) -> anyhow::Result<Option<PathBuf>> {
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
fn progress_bar(total: Option<u64>) -> ProgressBar {
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
struct Tally {
    total: u64,
    statuses: HashMap<Status, u64>,
    reasons: HashMap<Reason, u64>,
    /// Non-blank rows without an address.
    skipped: u64,
    /// Some verdicts were reached without the database.
    degraded: bool,
}

impl Tally {
    fn add(&mut self, results: &[VerifyResult]) {
        for result in results {
            self.total += 1;
            *self.statuses.entry(result.status).or_default() += 1;
            *self.reasons.entry(result.reason).or_default() += 1;
        }
    }
}

/// The end-of-run table: every status, the reasons that occurred, the
/// total and the time taken.
fn summary(tally: &Tally, elapsed: Duration) -> String {
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

fn json_lines(results: &[VerifyResult]) -> anyhow::Result<String> {
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
