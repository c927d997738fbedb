//! Raw bounce messages (`message/rfc822`): RFC 3464 DSNs, RFC 5965 ARF
//! complaints, and human-readable bounces with no machine-readable part.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::ReportedRecipient;
use super::dsn;
use crate::vocab::BounceKind;

/// What a raw message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// An RFC 3464 delivery status notification.
    Dsn,
    /// An RFC 5965 feedback (complaint) report.
    Arf,
    /// A bounce written for people; recipients and replies found in text.
    HumanReadable,
}

/// The recipients a raw message reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMessage {
    pub kind: MessageKind,
    pub recipients: Vec<ReportedRecipient>,
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not an email message (no header fields)")]
    NotAMessage,
    #[error("the message's MIME structure cannot be read")]
    Unreadable,
}

/// Longest text scanned for human-readable bounces.
const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Most recipients taken from one human-readable bounce.
const MAX_TEXT_RECIPIENTS: usize = 100;

/// Reads a raw bounce message.
pub fn parse(raw: &[u8]) -> Result<ParsedMessage, MessageError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(MessageError::Empty);
    }
    // An mbox "From " envelope line may precede the header.
    let raw = match raw.strip_prefix(b"From ") {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&rest[rest.len()..], |end| &rest[end + 1..]),
        None => raw,
    };
    if !starts_with_header_field(raw) {
        return Err(MessageError::NotAMessage);
    }
    // mail-parser can panic on some malformed MIME structures (a debug
    // assertion, found by fuzzing); such a message is refused rather than
    // allowed to take the request down with it.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
        .map_err(|_| MessageError::Unreadable)?;
    let message = parsed
        .filter(|message| !message.headers().is_empty())
        .ok_or(MessageError::NotAMessage)?;

    let mut delivery_status = Vec::new();
    let mut feedback = None;
    scan(&message, 0, &mut delivery_status, &mut feedback);
    if delivery_status.is_empty() && feedback.is_none() {
        // MIME that does not hold together (a boundary that differs from
        // the declared one, a missing Content-Type) still carries its
        // delivery-status fields in plain sight.
        delivery_status = raw_delivery_status(raw);
    }
    if let Some(report) = feedback {
        return Ok(ParsedMessage {
            kind: MessageKind::Arf,
            recipients: complaint_recipients(&message, &report),
        });
    }
    if !delivery_status.is_empty() {
        return Ok(ParsedMessage {
            kind: MessageKind::Dsn,
            recipients: delivery_status,
        });
    }
    Ok(ParsedMessage {
        kind: MessageKind::HumanReadable,
        recipients: human_readable_recipients(&message),
    })
}

/// How deep reports are looked for inside forwarded messages.
const MAX_NESTING: usize = 3;

/// Finds delivery-status and feedback-report parts; when a message has none,
/// looks inside the messages it carries (a bounce forwarded as an
/// attachment).
fn scan(
    message: &Message<'_>,
    depth: usize,
    delivery_status: &mut Vec<ReportedRecipient>,
    feedback: &mut Option<String>,
) {
    for part in &message.parts {
        let Some(content_type) = part.content_type() else {
            continue;
        };
        if !content_type.ctype().eq_ignore_ascii_case("message") {
            continue;
        }
        match content_type
            .subtype()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "delivery-status" | "global-delivery-status" => {
                delivery_status.extend(dsn::recipients(&part_text(message, part)));
            }
            "feedback-report" => *feedback = Some(part_text(message, part)),
            _ => {}
        }
    }
    if !delivery_status.is_empty() || feedback.is_some() || depth >= MAX_NESTING {
        return;
    }
    for part in &message.parts {
        if let PartType::Message(inner) = &part.body {
            scan(inner, depth + 1, delivery_status, feedback);
            if !delivery_status.is_empty() || feedback.is_some() {
                return;
            }
        }
    }
}

/// Delivery-status fields found by reading the raw text: the body after a
/// `Content-Type: message/delivery-status` header, up to the next boundary.
fn raw_delivery_status(raw: &[u8]) -> Vec<ReportedRecipient> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.lines();
    let mut found = Vec::new();
    while let Some(line) = lines.next() {
        let lower = line.trim_start().to_ascii_lowercase();
        if !(lower.starts_with("content-type:")
            && lower.contains("delivery-status")
            && lower.contains("message/"))
        {
            continue;
        }
        // The part's remaining header fields, then its body.
        for header in lines.by_ref() {
            if header.trim().is_empty() {
                break;
            }
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|line| !line.starts_with("--"))
            .collect();
        found.extend(dsn::recipients(&body.join("\n")));
    }
    found
}

/// Whether the bytes open with a header field (`Name: value`, the name
/// printable ASCII without a colon), as every message does (RFC 5322 §2.2).
fn starts_with_header_field(raw: &[u8]) -> bool {
    let start = raw
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(raw.len());
    let line = &raw[start..];
    let name_len = line
        .iter()
        .take_while(|&&b| b.is_ascii_graphic() && b != b':')
        .count();
    name_len > 0 && line.get(name_len) == Some(&b':')
}

/// A part's body as text, whatever mail-parser made of it.
fn part_text(message: &Message<'_>, part: &mail_parser::MessagePart<'_>) -> String {
    match &part.body {
        PartType::Text(text) | PartType::Html(text) => text.to_string(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        // Parsed as a nested message: read the raw bytes instead.
        PartType::Message(_) | PartType::Multipart(_) => {
            let raw = message.raw_message();
            let start = (part.raw_body_offset() as usize).min(raw.len());
            let end = (part.raw_end_offset() as usize).clamp(start, raw.len());
            String::from_utf8_lossy(&raw[start..end]).into_owned()
        }
    }
}

/// The complaining recipients of an ARF report: `Original-Rcpt-To` or
/// `Removal-Recipient`, else the `To` of the returned message.
fn complaint_recipients(message: &Message<'_>, report: &str) -> Vec<ReportedRecipient> {
    let fields = dsn::field_blocks(report)
        .into_iter()
        .next()
        .unwrap_or_default();
    let feedback_type = fields.get("feedback-type").map(str::to_owned);
    let mut emails: Vec<String> = ["original-rcpt-to", "removal-recipient"]
        .iter()
        .filter_map(|name| fields.get(name).and_then(dsn::typed_address))
        .collect();
    if emails.is_empty() {
        emails = returned_message_recipients(message);
    }
    emails.dedup();
    emails
        .into_iter()
        .map(|email| ReportedRecipient {
            email,
            diagnostic: feedback_type.clone(),
            complaint: true,
            provider_kind: Some(BounceKind::Complaint),
            ..ReportedRecipient::default()
        })
        .collect()
}

/// The `To` addresses of the message returned inside a report.
fn returned_message_recipients(message: &Message<'_>) -> Vec<String> {
    for part in &message.parts {
        let returned = match &part.body {
            PartType::Message(inner) => inner.to().map(|to| {
                to.iter()
                    .filter_map(|address| address.address().map(str::to_owned))
                    .collect::<Vec<_>>()
            }),
            _ => {
                let is_headers = part.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("text")
                        && ct
                            .subtype()
                            .is_some_and(|sub| sub.eq_ignore_ascii_case("rfc822-headers"))
                });
                is_headers.then(|| {
                    let text = part_text(message, part);
                    dsn::field_blocks(&text)
                        .first()
                        .and_then(|fields| fields.get("to").map(addresses_in))
                        .unwrap_or_default()
                })
            }
        };
        if let Some(found) = returned.filter(|found| !found.is_empty()) {
            return found;
        }
    }
    Vec::new()
}

/// Addresses found in free text: tokens with one `@`, a dotted domain.
fn addresses_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for token in text.split(|c: char| c.is_whitespace() || "<>()[]\"',;:".contains(c)) {
        let token = token.trim_matches(|c: char| c == '.' || c == '`');
        let Some((local, domain)) = token.split_once('@') else {
            continue;
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.ends_with('.')
        {
            continue;
        }
        if crate::address::EmailAddress::parse(token).is_ok()
            && !found.iter().any(|f: &String| f.eq_ignore_ascii_case(token))
        {
            found.push(token.to_owned());
        }
    }
    found
}

/// A human-readable bounce: every address in the text that is followed,
/// on its line or the next few, by an SMTP reply (`550 5.1.1 …`), or that
/// an `X-Failed-Recipients` header names. The bounce's own sender and
/// recipient (the mailer daemon and us) are left out.
fn human_readable_recipients(message: &Message<'_>) -> Vec<ReportedRecipient> {
    let own: Vec<String> = [message.from(), message.to()]
        .into_iter()
        .flatten()
        .flat_map(|address| {
            address
                .iter()
                .filter_map(|a| a.address().map(str::to_ascii_lowercase))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut text = String::new();
    for part in message.text_bodies() {
        if let Some(body) = part.text_contents() {
            text.push_str(body);
            text.push('\n');
        }
        if text.len() > MAX_TEXT_BYTES {
            break;
        }
    }
    let mut cut = text.len().min(MAX_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);

    let failed_header: Vec<String> = message
        .header_raw("X-Failed-Recipients")
        .map(addresses_in)
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut recipients: Vec<ReportedRecipient> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        for email in addresses_in(line) {
            let lower = email.to_ascii_lowercase();
            if own.contains(&lower)
                || lower.starts_with("mailer-daemon@")
                || lower.starts_with("postmaster@")
                || recipients
                    .iter()
                    .any(|r| r.email.eq_ignore_ascii_case(&email))
            {
                continue;
            }
            let reply = lines[index..lines.len().min(index + 6)]
                .iter()
                .enumerate()
                .find_map(|(offset, candidate)| {
                    smtp_reply_in(if offset == 0 {
                        after(candidate, &email)
                    } else {
                        candidate
                    })
                });
            let named = failed_header.iter().any(|f| f.eq_ignore_ascii_case(&email));
            if reply.is_none() && !named {
                continue;
            }
            let (smtp_code, status, diagnostic) = reply.unwrap_or((None, None, String::new()));
            recipients.push(ReportedRecipient {
                email,
                action: None,
                status,
                smtp_code,
                diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
                remote_mta: None,
                complaint: false,
                provider_kind: None,
            });
            if recipients.len() >= MAX_TEXT_RECIPIENTS {
                return recipients;
            }
        }
    }
    // Addresses the header names but the text never mentions.
    for email in failed_header {
        if !recipients
            .iter()
            .any(|r| r.email.eq_ignore_ascii_case(&email))
        {
            recipients.push(ReportedRecipient {
                email,
                ..ReportedRecipient::default()
            });
        }
    }
    recipients
}

/// The text of a line after an address in it.
fn after<'a>(line: &'a str, email: &str) -> &'a str {
    line.find(email)
        .map_or(line, |at| &line[at + email.len()..])
}

type FoundReply = (Option<u16>, Option<crate::smtp::EnhancedCode>, String);

/// An SMTP reply in a line of text: a 4xx/5xx code standing alone, the
/// text from it on.
fn smtp_reply_in(line: &str) -> Option<FoundReply> {
    let bytes = line.as_bytes();
    for start in 0..bytes.len().saturating_sub(2) {
        let window = &bytes[start..start + 3];
        let standalone_before =
            start == 0 || !bytes[start - 1].is_ascii_alphanumeric() && bytes[start - 1] != b'.';
        let standalone_after = bytes
            .get(start + 3)
            .is_none_or(|b| matches!(b, b' ' | b'-' | b')' | b':' | b'"'));
        if standalone_before
            && standalone_after
            && matches!(window[0], b'4' | b'5')
            && window.iter().all(u8::is_ascii_digit)
        {
            let (code, enhanced, text) =
                dsn::split_diagnostic(line[start..].trim_end_matches([')', '"']));
            if code.is_some() {
                return Some((code, enhanced, text));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_human_readable_bounce_yields_the_recipient_and_reply() {
        let raw = "From: MAILER-DAEMON@mx.example.org\r\n\
            To: sender@example.com\r\n\
            Subject: failure notice\r\n\r\n\
            Hi. This is the qmail-send program at mx.example.org.\r\n\
            I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n\
            <nobody@example.net>:\r\n\
            192.0.2.1 does not like recipient.\r\n\
            Remote host said: 550 5.1.1 <nobody@example.net>... User Unknown\r\n\
            Giving up on 192.0.2.1.\r\n";
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.kind, MessageKind::HumanReadable);
        assert_eq!(parsed.recipients.len(), 1);
        let recipient = &parsed.recipients[0];
        assert_eq!(recipient.email, "nobody@example.net");
        assert_eq!(recipient.smtp_code, Some(550));
        assert_eq!(
            recipient.status.map(|s| s.to_string()).as_deref(),
            Some("5.1.1")
        );
    }

    #[test]
    fn a_structure_that_trips_mail_parser_never_takes_the_request_down() {
        // Found by `cargo fuzz run bounce_message`: mail-parser's debug
        // assertion fires on it (debug builds); release builds read on.
        let raw = include_bytes!("../../tests/fixtures/fuzz/bounce_message-mail-parser-panic.eml");
        let outcome = parse(raw);
        assert!(
            matches!(outcome, Ok(_) | Err(MessageError::Unreadable)),
            "{outcome:?}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(b""), Err(MessageError::Empty));
        assert_eq!(parse(b"   \r\n"), Err(MessageError::Empty));
        assert!(parse(&[0xff, 0xfe, 0x00, 0x12]).is_err());
    }
}
