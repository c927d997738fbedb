//! The notice of a bounce — the words written for people — read from a
//! parsed message: its text parts (or the raw body when MIME hides them),
//! each cut where the returned message begins. `text.rs` reads recipients
//! and diagnostics from it; this module decides which text to give it and
//! what to fall back on: an `X-Failed-Recipients` header, the returned
//! message's `To`.

use mail_parser::{Message, PartType};

use super::ReportedRecipient;
use super::{arf, dsn, text};

/// Longest text scanned for human-readable bounces.
const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Most recipients taken from one human-readable bounce.
const MAX_TEXT_RECIPIENTS: usize = 100;

/// The notice of a human-readable bounce: its text parts (HTML made text),
/// up to the returned message.
pub fn notice_text(message: &Message<'_>) -> String {
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
pub fn explain_from_notice(
    message: &Message<'_>,
    raw: &[u8],
    recipients: &mut [ReportedRecipient],
) {
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
pub fn human_readable_recipients(message: &Message<'_>, raw: &[u8]) -> Vec<ReportedRecipient> {
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
        .take(MAX_TEXT_RECIPIENTS)
        .collect();
    // The postmaster of the bounce's own host is a contact, not a recipient
    // ("For further assistance, please send mail to postmaster@…").
    let mut own = own;
    let from_domains: Vec<String> = own
        .iter()
        .filter_map(|email| email.rsplit_once('@').map(|(_, domain)| domain.to_owned()))
        .collect();
    own.extend(
        from_domains
            .iter()
            .map(|domain| format!("postmaster@{domain}")),
    );
    let mut notice = notice_text(message);
    let lower_notice = notice.to_ascii_lowercase();
    // An X-Failed-Recipients header (Exim) names the recipients, when the
    // notice mentions them; some name an address the notice never shows.
    let named_in_notice = named
        .iter()
        .any(|email| lower_notice.contains(&email.to_ascii_lowercase()));
    let mut found = if named_in_notice {
        text::recipients(&notice, &own, &named)
    } else {
        text::recipients(&notice, &own, &[])
    };
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
