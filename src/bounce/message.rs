//! Raw bounce messages (`message/rfc822`): RFC 3464 DSNs, RFC 5965 ARF
//! complaints, and human-readable bounces with no machine-readable part.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::ReportedRecipient;
use super::{arf, dsn, sns_mail, text};

/// What a raw message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// An RFC 3464 delivery status notification.
    Dsn,
    /// An RFC 5965 feedback (complaint) report.
    Arf,
    /// A bounce written for people; recipients and replies found in text.
    HumanReadable,
    /// An automatic reply (RFC 3834): its sender's mailbox is alive.
    AutoReply,
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
            recipients: arf::feedback_report_recipients(&message, &report),
        });
    }
    if !delivery_status.is_empty() {
        explain_from_notice(&message, raw, &mut delivery_status);
        return Ok(ParsedMessage {
            kind: MessageKind::Dsn,
            recipients: delivery_status,
        });
    }
    if message.header_raw("x-amz-sns-message-id").is_some() {
        let body = message.body_text(0).unwrap_or_default();
        if let Some(recipients) = sns_mail::recipients(&body) {
            return Ok(ParsedMessage {
                kind: MessageKind::Dsn,
                recipients,
            });
        }
    }
    if let Some(recipients) = arf::provider_complaint_recipients(&message) {
        return Ok(ParsedMessage {
            kind: MessageKind::Arf,
            recipients,
        });
    }
    if is_auto_reply(&message) {
        return Ok(ParsedMessage {
            kind: MessageKind::AutoReply,
            recipients: auto_reply_recipient(&message),
        });
    }
    Ok(ParsedMessage {
        kind: MessageKind::HumanReadable,
        recipients: human_readable_recipients(&message, raw),
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
                let fields = part_text(message, part);
                let fields = text::decode_undeclared_japanese(&fields);
                delivery_status.extend(dsn::recipients(&fields));
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
    if found.is_empty() {
        // No part header at all (a multipart whose boundary never comes):
        // the fields stand in the body, perhaps quoted (`> `) in a
        // forwarded bounce.
        let unquoted: String = text
            .lines()
            .map(|line| line.strip_prefix("> ").unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n");
        found = dsn::recipients(&unquoted);
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
pub(super) fn part_text(message: &Message<'_>, part: &mail_parser::MessagePart<'_>) -> String {
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

/// Whether a message is an automatic reply (RFC 3834: an out-of-office
/// notice, a vacation message), which shows that its sender's mailbox is
/// alive. Mailer daemons mark their bounces `auto-replied` too, so those
/// are left out.
fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|value| value.trim().to_ascii_lowercase())
    };
    let marked = header("Auto-Submitted").is_some_and(|value| value.starts_with("auto-replied"))
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Auto-Response-Suppress").is_some_and(|_| subject_says_auto_reply(message));
    let from_daemon = message.header_raw("From").is_some_and(|from| {
        let from = from.to_ascii_lowercase();
        [
            "mailer-daemon",
            "postmaster",
            "mail delivery",
            "mail.delivery",
        ]
        .iter()
        .any(|daemon| from.contains(daemon))
    });
    let subject = message.subject().unwrap_or_default().to_lowercase();
    let says_failure = [
        "error",
        "fail",
        "undeliver",
        "undelivered",
        "delivery",
        "returned",
        "rejected",
        "bounce",
        "not delivered",
    ]
    .iter()
    .any(|word| subject.contains(word));
    (marked || subject_says_auto_reply(message))
        && !from_daemon
        && !says_failure
        && message.header_raw("X-Failed-Recipients").is_none()
}

fn subject_says_auto_reply(message: &Message<'_>) -> bool {
    let subject = message.subject().unwrap_or_default().to_lowercase();
    [
        "auto:",
        "automatic reply",
        "auto reply",
        "auto-reply",
        "autoreply",
        "autorespon",
        "out of office",
        "out of the office",
    ]
    .iter()
    .any(|marker| subject.contains(marker))
}

/// The address in the `From` header, lower case.
fn sender(message: &Message<'_>) -> Option<String> {
    message
        .from()
        .and_then(|from| from.first())
        .and_then(|address| address.address())
        .map(str::to_ascii_lowercase)
}

/// The sender of an automatic reply: a mailbox that answered.
fn auto_reply_recipient(message: &Message<'_>) -> Vec<ReportedRecipient> {
    sender(message)
        .filter(|email| email.contains('@'))
        .map(|email| ReportedRecipient {
            email,
            action: Some("auto-replied".to_owned()),
            diagnostic: message.subject().map(str::to_owned),
            ..ReportedRecipient::default()
        })
        .into_iter()
        .collect()
}

/// The notice of a human-readable bounce: its text parts (HTML made text),
/// up to the returned message.
fn notice_text(message: &Message<'_>) -> String {
    let mut text = String::new();
    // Each text part's notice: a scanner's notice may come first and the
    // MTA's, with the reply, in a part of its own (which mail-parser counts
    // as an attachment).
    for part in &message.parts {
        if let PartType::Text(body) = &part.body {
            text.push_str(text::notice(body));
            text.push('\n');
        }
        if text.len() > MAX_TEXT_BYTES {
            break;
        }
    }
    if text.trim().is_empty() {
        // An HTML-only notice.
        for index in 0..message.text_body_count() {
            if let Some(body) = message.body_text(index) {
                text.push_str(text::notice(&body));
                text.push('\n');
            }
            if text.len() > MAX_TEXT_BYTES {
                break;
            }
        }
    }
    let mut cut = text.len().min(MAX_TEXT_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// Gives the recipients of a DSN that carry no `Diagnostic-Code` the
/// explanation its human-readable part writes for each of them (ezweb,
/// OpenSMTPD and Messaging Server put the reply only there).
fn explain_from_notice(message: &Message<'_>, raw: &[u8], recipients: &mut [ReportedRecipient]) {
    let mut explained = text::recipients(&notice_text(message), &[], &[]);
    if explained.is_empty() {
        // The notice may stand in the MIME preamble, which no part holds.
        explained = text::recipients(&raw_body_notice(raw), &[], &[]);
    }
    for recipient in recipients.iter_mut() {
        let Some(found) = explained
            .iter()
            .find(|found| found.email.eq_ignore_ascii_case(&recipient.email))
        else {
            continue;
        };
        if let Some(diagnostic) = &mut recipient.diagnostic {
            // Postfix says in its notice only where in the session the
            // reply came: "(in reply to end of DATA command)".
            let phrase = found
                .diagnostic
                .as_deref()
                .and_then(|text| text.find("(in reply to ").map(|at| &text[at..]))
                .and_then(|text| text.find(')').map(|end| &text[..=end]));
            if let Some(phrase) = phrase.filter(|_| !diagnostic.contains("in reply to")) {
                diagnostic.push(' ');
                diagnostic.push_str(phrase);
            }
            continue;
        }
        recipient.diagnostic = found.diagnostic.clone();
        if recipient.smtp_code.is_none() {
            recipient.smtp_code = found.smtp_code;
        }
        if recipient.status.is_none() {
            recipient.status = found.status;
        }
    }
}

/// The `To` of a returned message written out in the notice's own text
/// part, after the marker that ends the notice ("----- Unsent message
/// follows -----").
fn inline_returned_recipients(message: &Message<'_>) -> Vec<String> {
    let Some(body) = message.body_text(0) else {
        return Vec::new();
    };
    let notice_len = text::notice(&body).len();
    let returned = &body[notice_len..];
    let header_end = returned
        .find("\n\n")
        .or_else(|| returned.find("\r\n\r\n"))
        .unwrap_or(returned.len());
    // The returned header begins after the marker line.
    let header = returned[..header_end]
        .split_once('\n')
        .map_or("", |(_, rest)| rest);
    dsn::field_blocks(header)
        .first()
        .and_then(|fields| fields.get("to"))
        .map(|to| {
            text::addresses_in_line(to)
                .into_iter()
                .map(|(start, end)| to[start..end].to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The raw body of a message as text, without MIME boundary and part
/// header lines, up to the returned message.
fn raw_body_notice(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_TEXT_BYTES)];
    let text = String::from_utf8_lossy(raw);
    let body = text
        .find("\n\n")
        .or_else(|| text.find("\r\n\r\n"))
        .map_or("", |at| &text[at..]);
    let kept: Vec<&str> = body
        .lines()
        .filter(|line| {
            let lower = line.trim_start().to_ascii_lowercase();
            !(line.starts_with("--")
                || lower.starts_with("content-")
                || lower.starts_with("boundary="))
        })
        .collect();
    let joined = kept.join("\n");
    text::notice(&joined).to_owned()
}

/// A human-readable bounce: the recipients its notice names, each with its
/// own diagnostic (`text.rs`). The bounce's own sender and recipient (the
/// mailer daemon and us) are left out; an `X-Failed-Recipients` header,
/// when there is one, names the recipients. When the notice names none,
/// the returned message's `To` is the recipient.
fn human_readable_recipients(message: &Message<'_>, raw: &[u8]) -> Vec<ReportedRecipient> {
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
    let named: Vec<String> = message
        .header_values("X-Failed-Recipients")
        .filter_map(|value| value.as_text())
        .flat_map(|value| {
            text::addresses_in_line(value)
                .into_iter()
                .map(|(start, end)| value[start..end].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut notice = notice_text(message);
    let mut found = text::recipients(&notice, &own, &[]);
    if found.is_empty() && !named.is_empty() {
        found = text::recipients(&notice, &own, &named);
        let explanation = text::clip(&notice);
        for recipient in found.iter_mut().filter(|r| r.diagnostic.is_none()) {
            recipient.diagnostic = Some(explanation.clone()).filter(|text| !text.is_empty());
        }
    }
    if found.is_empty() {
        // A bounce sent back to the address that failed (a message to
        // oneself): the bounce's recipient counts, when a reply follows it.
        let from_only: Vec<String> = message
            .from()
            .into_iter()
            .flat_map(|address| address.iter())
            .filter_map(|a| a.address().map(str::to_ascii_lowercase))
            .collect();
        found = text::recipients(&notice, &from_only, &[]);
        found.retain(|recipient| recipient.smtp_code.is_some());
    }
    if found.is_empty() {
        // MIME that hides the text (a boundary header split over a line
        // mail-parser does not join): read the raw body.
        notice = raw_body_notice(raw);
        found = text::recipients(&notice, &own, &[]);
    }
    if found.is_empty() {
        let delayed = text::is_delay_notice(&notice);
        let explanation = notice.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut returned = arf::returned_message_recipients(message);
        if returned.is_empty() {
            returned = inline_returned_recipients(message);
        }
        found = returned
            .into_iter()
            .filter(|email| !own.contains(&email.to_ascii_lowercase()))
            .take(MAX_TEXT_RECIPIENTS)
            .map(|email| {
                let status = text::enhanced_in(&explanation).map(|(code, _)| code);
                ReportedRecipient {
                    email,
                    action: Some(if delayed { "delayed" } else { "failed" }.to_owned()),
                    status,
                    diagnostic: (!explanation.is_empty())
                        .then(|| explanation.chars().take(1000).collect()),
                    ..ReportedRecipient::default()
                }
            })
            .collect();
    }
    found
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
