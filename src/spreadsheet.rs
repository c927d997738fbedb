//! CSV cells that a spreadsheet will not run. A cell that begins with `=`,
//! `+`, `-` or `@` (or a tab or carriage return before one) is read as a
//! formula by Excel, LibreOffice and Google Sheets, and an address or a
//! mail server's reply text is chosen by someone else. As OWASP advises
//! for CSV injection, such a cell is written with a leading `'`, which the
//! spreadsheet shows as text and does not display.

/// `cell`, with a leading `'` when a spreadsheet would read it as a formula.
pub fn safe_cell(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        let mut safe = String::with_capacity(cell.len() + 1);
        safe.push('\'');
        safe.push_str(&cell);
        safe
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_quoted_and_the_rest_kept() {
        for (cell, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("bob@example.test", "bob@example.test"),
            ("550 5.1.1 user unknown", "550 5.1.1 user unknown"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(safe_cell(cell.to_owned()), expected, "{cell:?}");
        }
    }
}
