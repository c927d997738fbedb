//! `mailvet check EMAIL…`: the verification engine from the command line.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::settings::Settings;
use crate::startup;
use crate::verify::VerifyResult;

/// Verifies the addresses and prints a table (or JSON lines) on stdout.
pub async fn run(
    settings: &Settings,
    emails: &[String],
    json: bool,
    fresh: bool,
) -> anyhow::Result<()> {
    let store = startup::open_store(settings).await?;
    let verifier = startup::build_verifier(settings, store.clone())?;
    let results = verifier.verify_batch(emails, fresh).await.value;
    store.close().await;
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
    use crate::verify::Reason;

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
