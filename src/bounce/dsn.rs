//! The fields of an RFC 3464 `message/delivery-status` body (and of an
//! RFC 5965 `message/feedback-report`, which has the same syntax): blocks
//! of `Name: value` lines separated by blank lines, values folded onto
//! indented continuation lines.

use super::ReportedRecipient;
use crate::smtp::EnhancedCode;

/// Most field blocks read from one body (one per recipient, plus one).
const MAX_BLOCKS: usize = 1000;

/// One block of fields, names lower-cased, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// Every non-empty value of a field, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(field, value)| field == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits a body into blocks of fields.
pub fn field_blocks(body: &str) -> Vec<Fields> {
    let mut blocks = Vec::new();
    let mut current = Fields::default();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
                if blocks.len() >= MAX_BLOCKS {
                    return blocks;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A folded continuation of the previous field.
            if let Some((_, value)) = current.0.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            // A recipient's fields that follow another's without a blank
            // line between them begin a block of their own.
            let repeated = matches!(name.as_str(), "final-recipient" | "original-recipient")
                && current.0.iter().any(|(field, _)| *field == name);
            if repeated {
                blocks.push(std::mem::take(&mut current));
                if blocks.len() >= MAX_BLOCKS {
                    return blocks;
                }
            }
            current.0.push((name, value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// `rfc822; <user@example.com>` → `user@example.com`.
/// When the value holds more than an address (a pipe command quoting one),
/// its first word with an `@` is taken.
pub fn typed_address(value: &str) -> Option<String> {
    let value = value.split_once(';').map_or(value, |(_, rest)| rest).trim();
    value
        .split_whitespace()
        .map(|word| {
            word.trim_start_matches(['<', '"', '('])
                .trim_end_matches(['>', '"', ')', ','])
        })
        .find(|word| word.contains('@') && !word.starts_with('@') && !word.ends_with('@'))
        .map(str::to_owned)
}

/// `dns; mx.example.com` → `mx.example.com`.
fn typed_value(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, rest)| rest)
        .trim()
        .to_owned()
}

/// Reads an SMTP reply code and enhanced code at the start of a diagnostic
/// such as `smtp; 550 5.1.1 <x@example.com>: User unknown`; returns them and
/// the text with the `smtp;` type removed.
pub fn split_diagnostic(value: &str) -> (Option<u16>, Option<EnhancedCode>, String) {
    let text = match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(char::is_whitespace) && kind.len() <= 12 => {
            rest.trim()
        }
        _ => value.trim(),
    };
    let bytes = text.as_bytes();
    let code = (bytes.len() >= 3
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && matches!(bytes[0], b'2' | b'4' | b'5')
        && bytes.get(3).is_none_or(|b| matches!(b, b' ' | b'-')))
    .then(|| text[..3].parse().ok())
    .flatten();
    let after_code = if code.is_some() {
        text[3..].trim_start_matches(['-', ' '])
    } else {
        text
    };
    let enhanced = after_code.split_whitespace().next().and_then(|token| {
        token
            .trim_start_matches('#')
            .trim_end_matches([',', ';', ')'])
            .parse()
            .ok()
    });
    (code, enhanced, text.to_owned())
}

/// The recipients of a delivery-status body.
pub fn recipients(body: &str) -> Vec<ReportedRecipient> {
    field_blocks(body)
        .iter()
        .filter(|fields| {
            fields.get("final-recipient").is_some() || fields.get("original-recipient").is_some()
        })
        .filter_map(recipient)
        .collect()
}

fn recipient(fields: &Fields) -> Option<ReportedRecipient> {
    // The original recipient is the address the sender used (before any
    // forwarding or alias expansion), when the report gives it: that is
    // the address on the sender's list.
    let email = fields
        .get("original-recipient")
        .and_then(typed_address)
        .or_else(|| fields.get("final-recipient").and_then(typed_address))?;
    let (smtp_code, diagnostic_status, diagnostic) = match fields.get("diagnostic-code") {
        Some(value) => {
            let (code, enhanced, text) = split_diagnostic(value);
            (code, enhanced, Some(text))
        }
        None => (None, None, None),
    };
    let status: Option<EnhancedCode> = fields
        .get("status")
        .and_then(|value| value.split_whitespace().next())
        .and_then(|token| token.parse().ok());
    // A generic status (`5.0.0`) gives way to the reply's own, more
    // specific one (`550 #5.1.0 Address rejected`).
    let status = match (status, diagnostic_status) {
        (Some(generic), Some(specific))
            if generic.subject == 0 && generic.detail == 0 && specific.class == generic.class =>
        {
            Some(specific)
        }
        (status, diagnostic) => status.or(diagnostic),
    };
    Some(ReportedRecipient {
        email,
        action: fields.get("action").map(|action| {
            action
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        }),
        status,
        smtp_code,
        diagnostic,
        remote_mta: fields.get("remote-mta").map(typed_value),
        complaint: false,
        provider_kind: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX_DSN: &str = "Reporting-MTA: dns; mx.example.jp\n\
        X-Postfix-Queue-ID: 00000000000\n\
        Arrival-Date: Thu, 29 Apr 2013 23:45:41 +0900 (JST)\n\
        \n\
        Final-Recipient: rfc822; r@mx.example.jp\n\
        Original-Recipient: rfc822;kijitora@example.org\n\
        Action: failed\n\
        Status: 5.1.1\n\
        Remote-MTA: dns; mx.example.org\n\
        Diagnostic-Code: smtp; 550 5.1.1 <kijitora@example.org>: Recipient address\n    rejected: User unknown in local recipient table\n\
        \n\
        Final-Recipient: rfc822; <neko@example.net>\n\
        Action: delayed\n\
        Status: 4.4.1\n";

    #[test]
    fn recipients_come_with_action_status_and_the_unfolded_diagnostic() {
        let found = recipients(POSTFIX_DSN);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].email, "kijitora@example.org");
        assert_eq!(found[0].action.as_deref(), Some("failed"));
        assert_eq!(found[0].status, Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(found[0].smtp_code, Some(550));
        assert_eq!(found[0].remote_mta.as_deref(), Some("mx.example.org"));
        assert_eq!(
            found[0].diagnostic.as_deref(),
            Some(
                "550 5.1.1 <kijitora@example.org>: Recipient address rejected: User unknown in local recipient table"
            )
        );
        assert_eq!(found[1].email, "neko@example.net");
        assert_eq!(found[1].action.as_deref(), Some("delayed"));
        assert_eq!(found[1].smtp_code, None);
    }

    #[test]
    fn diagnostics_are_split_into_code_status_and_text() {
        assert_eq!(
            split_diagnostic("smtp; 550-5.1.1 The email account does not exist"),
            (
                Some(550),
                Some(EnhancedCode::new(5, 1, 1)),
                "550-5.1.1 The email account does not exist".into()
            )
        );
        assert_eq!(
            split_diagnostic("X-Unix; procmail failed"),
            (None, None, "procmail failed".into())
        );
        assert_eq!(
            split_diagnostic("554 delivery error"),
            (Some(554), None, "554 delivery error".into())
        );
        assert_eq!(split_diagnostic("5000 nonsense").0, None);
    }

    #[test]
    fn odd_input_yields_nothing_rather_than_failing() {
        assert!(recipients("").is_empty());
        assert!(recipients("garbage without fields\n\n\n").is_empty());
        assert!(recipients("Final-Recipient: rfc822; not an address\nAction: failed\n").is_empty());
        let piped = recipients(
            "Final-Recipient: rfc822;|/usr/bin/neko kijitora@example.com /home/x\nStatus: 5.0.0\n",
        );
        assert_eq!(piped[0].email, "kijitora@example.com");
    }
}
