//! Complaints: RFC 5965 feedback reports (ARF) and the reports of
//! mailbox providers that send the complained-of message without a
//! `message/feedback-report` part (Microsoft's JMRP names the recipient in
//! an `X-HmXmrOriginalRecipient` header of the returned message).
//!
//! The complaining recipient is, in order of preference: every
//! `Original-Rcpt-To` field of the report, its `Removal-Recipient`, the
//! provider's own header in the returned message, and the `To` of the
//! returned message.

use mail_parser::{Message, MimeHeaders, PartType};

use super::ReportedRecipient;
use super::dsn;
use crate::vocab::BounceKind;

/// The header in which Microsoft's junk-mail reports name the recipient.
const JMRP_RECIPIENT: &str = "X-HmXmrOriginalRecipient";

/// The complaining recipients of a message with a feedback-report part
/// (`report` is that part's text).
pub fn feedback_report_recipients(message: &Message<'_>, report: &str) -> Vec<ReportedRecipient> {
    let fields = dsn::field_blocks(report)
        .into_iter()
        .next()
        .unwrap_or_default();
    let feedback_type = fields.get("feedback-type").map(str::to_owned);
    let mut emails: Vec<String> = fields
        .get_all("original-rcpt-to")
        .filter_map(dsn::typed_address)
        .collect();
    if emails.is_empty() {
        emails = fields
            .get_all("removal-recipient")
            .filter_map(dsn::typed_address)
            .collect();
    }
    if emails.is_empty() {
        emails = returned_message_recipients(message);
    }
    complaints(emails, feedback_type)
}

/// The recipients of a provider's complaint without a feedback-report part,
/// if the message is one.
pub fn provider_complaint_recipients(message: &Message<'_>) -> Option<Vec<ReportedRecipient>> {
    for part in &message.parts {
        if let PartType::Message(inner) = &part.body
            && let Some(value) = inner.header_raw(JMRP_RECIPIENT)
        {
            let emails = dsn::typed_address(value).into_iter().collect();
            return Some(complaints(emails, Some("abuse".to_owned())));
        }
    }
    None
}

fn complaints(mut emails: Vec<String>, feedback_type: Option<String>) -> Vec<ReportedRecipient> {
    let mut seen = std::collections::HashSet::new();
    emails.retain(|email| seen.insert(email.to_ascii_lowercase()));
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
pub fn returned_message_recipients(message: &Message<'_>) -> Vec<String> {
    for part in &message.parts {
        let returned = match &part.body {
            PartType::Message(inner) => inner.to().map(|to| {
                to.iter()
                    .filter_map(|address| address.address().map(str::to_owned))
                    .filter(|address| address.contains('@'))
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
                    let text = super::parts::part_text(message, part);
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

fn addresses_in(text: &str) -> Vec<String> {
    super::text::addresses_in_line(text)
        .into_iter()
        .map(|(start, end)| text[start..end].to_owned())
        .collect()
}
