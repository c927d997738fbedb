//! Printing doctor's rows: a table whose columns fit their contents, with
//! a summary line, or a JSON array.

use std::fmt::Write as _;

use super::{Outcome, Row};

const HEADERS: [&str; 4] = ["CHECK", "RESULT", "DETAIL", "WHAT TO DO"];

/// The table and its summary line, ready to print.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[&str; 4]> = rows
        .iter()
        .map(|row| {
            [
                row.check.as_str(),
                row.result.as_str(),
                row.detail.as_str(),
                row.advice.as_deref().unwrap_or(""),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|header| header.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&HEADERS).chain(&cells) {
        let mut text = String::new();
        for (index, cell) in line.iter().enumerate() {
            if index + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&summary(rows));
    out.push('\n');
    out
}

/// `N passed, N warnings, N failed`.
pub fn summary(rows: &[Row]) -> String {
    let count = |outcome: Outcome| rows.iter().filter(|row| row.result == outcome).count();
    format!(
        "{} passed, {} warnings, {} failed",
        count(Outcome::Pass),
        count(Outcome::Warn),
        count(Outcome::Fail)
    )
}

/// The rows as a pretty-printed JSON array.
pub fn json(rows: &[Row]) -> String {
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let rows = vec![
            Row::pass("database", "sqlite at sqlite://x.db: reachable"),
            Row::fail("smtp gmail.com (direct)", "refused", "use --proxy"),
        ];
        let printed = table(&rows);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(
            lines[0],
            format!("{:<25}RESULT  {:<36}WHAT TO DO", "CHECK", "DETAIL")
        );
        assert!(
            lines[1].starts_with("database                 pass    sqlite"),
            "{printed}"
        );
        assert!(
            lines[2].ends_with("refused                             use --proxy"),
            "{printed}"
        );
        assert_eq!(lines.last(), Some(&"1 passed, 0 warnings, 1 failed"));
    }

    #[test]
    fn json_is_an_array_of_rows() {
        let rows = vec![Row::warn("public address", "unknown", "give --public-ip")];
        let value: serde_json::Value = serde_json::from_str(&json(&rows)).expect("JSON");
        assert_eq!(value[0]["check"], "public address");
        assert_eq!(value[0]["result"], "warn");
        assert_eq!(value[0]["advice"], "give --public-ip");
    }
}
