//! Raw bounce messages (`message/rfc822`): RFC 3464 DSNs, RFC 5965 ARF
//! complaints, and human-readable bounces with no machine-readable part.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::ReportedRecipient;
use super::{arf, autoreply, dsn, notice, parts, sns_mail, text};

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
        notice::explain_from_notice(&message, raw, &mut delivery_status);
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
    if autoreply::is_auto_reply(&message) {
        return Ok(ParsedMessage {
            kind: MessageKind::AutoReply,
            recipients: autoreply::recipients(&message),
        });
    }
    Ok(ParsedMessage {
        kind: MessageKind::HumanReadable,
        recipients: notice::human_readable_recipients(&message, raw),
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
                let fields = parts::part_text(message, part);
                let fields = text::decode_undeclared_japanese(&fields);
                delivery_status.extend(dsn::recipients(&fields));
            }
            "feedback-report" => *feedback = Some(parts::part_text(message, part)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::BounceKind;

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

    #[test]
    fn every_complainer_of_a_feedback_report_is_found() {
        let raw = "From: fbl@example.net\r\nTo: abuse@example.com\r\nSubject: report\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
            --b\r\nContent-Type: message/feedback-report\r\n\r\n\
            Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: a@example.org\r\nOriginal-Rcpt-To: b@example.org\r\n\r\n\
            --b--\r\n";
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.kind, MessageKind::Arf);
        let emails: Vec<_> = parsed.recipients.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(emails, ["a@example.org", "b@example.org"]);
        assert!(parsed.recipients.iter().all(|r| r.complaint));
    }

    #[test]
    fn a_microsoft_junk_report_names_its_recipient_in_the_returned_message() {
        let raw = "From: staff@hotmail.com\r\nTo: abuse@example.com\r\nSubject: complaint about message from 192.0.2.1\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: message/rfc822\r\n\r\n\
            X-HmXmrOriginalRecipient: <kijitora@example.org>\r\nFrom: us@example.com\r\nTo: kijitora@example.org\r\nSubject: hi\r\n\r\nhello\r\n\
            --b--\r\n";
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.kind, MessageKind::Arf);
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.recipients[0].email, "kijitora@example.org");
        assert!(parsed.recipients[0].complaint);
    }

    #[test]
    fn an_automatic_reply_names_a_live_sender_and_is_no_bounce() {
        let raw = "From: Kijitora <kijitora@example.org>\r\nTo: us@example.com\r\n\
            Subject: Automatic reply: hello\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n";
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.kind, MessageKind::AutoReply);
        assert_eq!(parsed.recipients[0].email, "kijitora@example.org");
        let classified = super::super::classify::classify(&parsed.recipients[0]);
        assert_eq!(classified.kind, BounceKind::Undetermined);
        assert_eq!(classified.suppress_as, None);
    }

    #[test]
    fn a_delay_warning_in_words_is_not_a_failure() {
        let raw = "From: MAILER-DAEMON@mx.example.org\r\nTo: us@example.com\r\nSubject: Warning\r\n\r\n\
            THIS IS A WARNING MESSAGE ONLY.\r\n\r\n\
            [Status: Error, Address: <slow@example.net>, ResponseCode 421, , Host not reachable.]\r\n\r\n\
            Message will be retried for 4 more day(s)\r\n";
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.recipients[0].action.as_deref(), Some("delayed"));
    }

    #[test]
    fn an_ses_notification_sent_by_email_is_read_like_the_webhook() {
        let message = r#"{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":\"General\",\"bouncedRecipients\":[{\"emailAddress\":\"gone@example.org\",\"action\":\"failed\",\"status\":\"5.1.1\",\"diagnosticCode\":\"smtp; 550 5.1.1 user unknown\"}],\"timestamp\":\"2016-10-21T06:58:01.000Z\",\"feedbackId\":\"x\"},\"mail\":{\"source\":\"us@example.com\",\"destination\":[\"gone@example.org\"]}}"#;
        let raw = format!(
            "From: no-reply@sns.amazonaws.com\r\nTo: us@example.com\r\nSubject: AWS Notification Message\r\n\
             x-amz-sns-message-id: 1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\
             {{\r\n  \"Type\" : \"Notification\",\r\n  \"MessageId\" : \"1\",\r\n  \"Message\" : \"{message}\"\r\n}}\r\n"
        );
        let parsed = parse(raw.as_bytes()).expect("a message");
        assert_eq!(parsed.recipients.len(), 1);
        assert_eq!(parsed.recipients[0].email, "gone@example.org");
        assert_eq!(
            super::super::classify::classify(&parsed.recipients[0]).kind,
            BounceKind::Hard
        );
    }
}
