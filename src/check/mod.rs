//! `mailvet check EMAIL…` and `mailvet check --file list.csv`: the
//! verification engine from the command line.
//!
//! `mod.rs` has the two entry points; `input.rs` reads the list (with the
//! CSV reader that `POST /jobs` uses), `output.rs` writes the results and
//! the summary.

mod input;
mod output;

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use self::input::{Input, read_chunks, same_file};
use self::output::{Sink, Tally, json_lines, progress_bar, summary};
use crate::settings::CheckSettings;
use crate::startup::{self, Engine};
use crate::store::Database;
use crate::suppress::SoftBouncePolicy;
use crate::vocab::Status;

pub use self::output::table;

/// The exit status of `mailvet check` when a result has a status that
/// `--fail-on` names. 1 is an error of mailvet's (a database it cannot
/// open, a file it cannot read) and 2 a usage error, so a script tells
/// "addresses failed" from "the check failed".
pub const FAIL_ON_EXIT_CODE: u8 = 3;

/// Results with a status that `--fail-on` names: the run itself succeeded,
/// but the caller asked for a failure. `main` exits with
/// [`FAIL_ON_EXIT_CODE`] on it.
#[derive(Debug, thiserror::Error)]
#[error("{count} of {total} addresses are {statuses} (--fail-on)")]
pub struct FailOnMatched {
    count: u64,
    total: u64,
    statuses: String,
}

/// Succeeds unless a result has one of the `fail_on` statuses.
fn check_fail_on(tally: &Tally, fail_on: &[Status]) -> Result<(), FailOnMatched> {
    let mut named: Vec<Status> = Vec::new();
    for status in Status::ALL {
        if fail_on.contains(status) && tally.count(*status) > 0 {
            named.push(*status);
        }
    }
    let count: u64 = named.iter().map(|status| tally.count(*status)).sum();
    if count == 0 {
        return Ok(());
    }
    let statuses = named
        .iter()
        .map(|status| status.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    Err(FailOnMatched {
        count,
        total: tally.total,
        statuses,
    })
}

/// Verifies the addresses and prints a table (or JSON lines) on stdout.
/// Fails with [`FailOnMatched`] when a result has a status in `fail_on`.
pub async fn run(
    settings: &CheckSettings,
    emails: &[String],
    json: bool,
    fresh: bool,
    fail_on: &[Status],
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
    let mut tally = Tally::default();
    tally.add(&results);
    check_fail_on(&tally, fail_on)?;
    Ok(())
}

/// The service's engine, on its database, with check's settings. `check`
/// records no bounces, so the soft-bounce policy is never consulted.
fn engine(settings: &CheckSettings, db: Arc<dyn Database>) -> anyhow::Result<Engine> {
    crate::preflight::warn_smtp(&settings.smtp);
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
/// ([`CsvAddresses`](crate::jobs::input::CsvAddresses)): the column named `email` (`E-mail`, `Email
/// Address`…), or else the first column, whose first row is a header unless
/// it holds an `@`; blank rows are skipped, and so are rows whose address
/// cell is empty (counted in the summary); a file that is not UTF-8, is
/// empty or has no usable column is refused, before the database is
/// opened when it is a regular file. When a result has a status in
/// `fail_on`, fails with [`FailOnMatched`] after the summary. The input is
/// streamed, `CHUNK_SIZE`
/// rows at a time; a regular file is read once beforehand to count its
/// addresses for the progress bar. Duplicates are folded within a chunk; a
/// later repetition is answered from the cache (unless `fresh`).
pub async fn run_file(
    settings: &CheckSettings,
    file: &Path,
    output: Option<&Path>,
    json: bool,
    fresh: bool,
    fail_on: &[Status],
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
    check_fail_on(&tally, fail_on)?;
    Ok(())
}
