//! Human-readable bounces: a notice written for people, with no
//! `message/delivery-status` part (qmail, Exim, Exchange 2003, Lotus Notes,
//! Sendmail transcripts, GMX, Yahoo, Zoho, Mail.ru, OpenSMTPD, iMail,
//! DragonFly and many more).
//!
//! Whatever the mailer, the notice has the same shape: an introduction,
//! then for each failed recipient its address near the remote server's
//! reply or an explanation, then the returned message. The reader:
//!
//! 1. keeps the notice only, cutting it where the returned message begins
//!    (a marker line such as qmail's "--- Below this line is a copy of the
//!    message." or the first `Received:` header);
//! 2. takes the addresses it names, leaving out the bounce's own sender and
//!    recipient, mailer daemons, and addresses that are a quoted header or
//!    the envelope sender (`MAIL FROM:<…>`);
//! 3. gives each recipient its own diagnostic: a reply on a line that names
//!    it, else the first reply in the lines that follow a mention of it (up
//!    to the next recipient), else the explanation written next to it.
//!
//! Each line is split into words once; every step is linear in the size
//! of the notice.

use super::ReportedRecipient;
use crate::smtp::EnhancedCode;

/// Most recipients taken from one notice.
const MAX_RECIPIENTS: usize = 100;
/// Mentions of one recipient looked at for its diagnostic.
const MAX_MENTIONS: usize = 8;
/// Lines after a mention that may hold its reply.
const MAX_BLOCK_LINES: usize = 40;
/// Longest diagnostic kept.
const MAX_DIAGNOSTIC_CHARS: usize = 1000;

/// Lines (lower case, trimmed) where the returned message begins.
const RETURNED_MESSAGE_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "this is a copy of the headers",
    "copy of the original message",
    "message headers follow",
    "unsent message follows",
    "original message follows",
    "original message:",
    "header of the original message",
    "headers of the original message",
    "original message header",
    "below is a copy of the original message",
    "the text you sent follows",
    "included is a copy of the message",
    "your original message",
    "below is a copy of the message",
    "the first part of the original message",
];

/// Names of the returned message that end the notice only on a line of
/// their own, set off by dashes or stars ("------- Returned Message
/// --------"), as the words also occur in sentences.
const DECORATED_MARKERS: &[&str] = &["returned message", "original message", "end of message"];

/// Header fields whose presence at the start of a line means the returned
/// message's header has begun.
const RETURNED_HEADER_FIELDS: &[&str] = &["received:", "return-path:", "x-original-to:"];

/// Header fields quoted in a notice ("Your message To: … Subject: …"):
/// their addresses are the returned message's, not the failed recipients.
const QUOTED_FIELDS: &[&str] = &[
    "to:",
    "from:",
    "cc:",
    "bcc:",
    "sender:",
    "reply-to:",
    "subject:",
    "date:",
    "sent:",
    "message-id:",
    "references:",
    "in-reply-to:",
    "errors-to:",
    "envelope-from",
];

/// What a notice that only delays the message says.
const DELAY_MARKERS: &[&str] = &[
    "will continue trying",
    "will continue to try",
    "will keep trying",
    "will retry",
    "will be retried",
    "still trying",
    "not yet been delivered",
    "has been delayed",
    "delivery delayed",
    "is delayed",
    "warning: could not send message",
    "this is a warning",
    "no action is required on your part",
    "message will be sent again",
    "will try again",
    "will be retried",
    "warning message only",
];

/// Words before an address that make it the envelope sender.
const SENDER_PREFIXES: &[&str] = &["mail from:", "envelope-from", "from:"];

/// An address in a line, with its byte range.
struct Mention {
    line: usize,
    start: usize,
    end: usize,
}

/// Text in ISO-2022-JP that no part header declares (the delivery-status
/// part of a Japanese Domino bounce), decoded; other text as it is.
pub fn decode_undeclared_japanese(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("\u{1b}$B") {
        return std::borrow::Cow::Borrowed(text);
    }
    match mail_parser::decoders::charsets::map::charset_decoder(b"iso-2022-jp") {
        Some(decode) => std::borrow::Cow::Owned(decode(text.as_bytes())),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// The notice of a human-readable bounce: its text up to the returned
/// message.
pub fn notice(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.trim().to_ascii_lowercase();
        let starts_header = RETURNED_HEADER_FIELDS
            .iter()
            .any(|field| line.to_ascii_lowercase().starts_with(field));
        let decorated = ["--", "**", "=="].iter().any(|d| lower.contains(d));
        let marker = lower.len() < 120
            && (RETURNED_MESSAGE_MARKERS
                .iter()
                .any(|marker| lower.contains(marker))
                || decorated
                    && DECORATED_MARKERS
                        .iter()
                        .any(|marker| lower.contains(marker)));
        if (marker || starts_header) && offset > 0 {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// Whether a notice reports a delay rather than a failure.
pub fn is_delay_notice(notice: &str) -> bool {
    let lower = notice.to_lowercase();
    DELAY_MARKERS.iter().any(|marker| lower.contains(marker))
}

/// The failed recipients a notice names, each with its own diagnostic.
/// `ignore` holds addresses that are never recipients (the bounce's sender
/// and recipient); `named` the addresses a header such as
/// `X-Failed-Recipients` names, which are then the only recipients.
pub fn recipients(notice: &str, ignore: &[String], named: &[String]) -> Vec<ReportedRecipient> {
    let lines: Vec<&str> = notice.lines().collect();
    // Every address mention, in order, and the recipients by first mention.
    let mut mentions: Vec<(usize, Mention)> = Vec::new();
    let mut emails: Vec<String> = Vec::new();
    let mut quoted: Vec<String> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let lower_line = line.trim_start().to_ascii_lowercase();
        let is_quoted = QUOTED_FIELDS.iter().any(|f| lower_line.starts_with(f));
        for (start, end) in addresses_in_line(line) {
            let email = &line[start..end];
            let lower = email.to_ascii_lowercase();
            if is_ignored(&lower, ignore) || is_sender_position(line, start) {
                continue;
            }
            if is_quoted {
                if !quoted.contains(&lower) {
                    quoted.push(lower);
                }
                continue;
            }
            if !named.is_empty() && !named.iter().any(|n| n.eq_ignore_ascii_case(email)) {
                continue;
            }
            let id = match emails.iter().position(|e| *e == lower) {
                Some(id) => id,
                None if emails.len() < MAX_RECIPIENTS => {
                    emails.push(lower);
                    emails.len() - 1
                }
                None => continue,
            };
            mentions.push((
                id,
                Mention {
                    line: index,
                    start,
                    end,
                },
            ));
        }
    }
    for email in named {
        let lower = email.to_ascii_lowercase();
        if !emails.contains(&lower) && emails.len() < MAX_RECIPIENTS {
            emails.push(lower);
        }
    }
    if emails.is_empty() {
        // The notice names the recipient only in a quoted header.
        emails = quoted;
    }

    // For each line, the recipients it mentions (to end a block where
    // another recipient begins).
    let mut line_owner: Vec<Option<usize>> = vec![None; lines.len()];
    let mut by_recipient: Vec<Vec<&Mention>> = vec![Vec::new(); emails.len()];
    for (id, mention) in &mentions {
        match line_owner[mention.line] {
            None => line_owner[mention.line] = Some(*id),
            Some(owner) if owner != *id => line_owner[mention.line] = Some(usize::MAX),
            Some(_) => {}
        }
        if by_recipient[*id].len() < MAX_MENTIONS {
            by_recipient[*id].push(mention);
        }
    }

    let delayed = is_delay_notice(notice);
    let single = emails.len() == 1;
    emails
        .iter()
        .enumerate()
        .map(|(id, email)| {
            let mut found = diagnose(&lines, &line_owner, id, &by_recipient[id]);
            if single && found.as_ref().is_none_or(|found| found.code.is_none()) {
                // The only recipient: the notice's reply is its reply,
                // wherever it stands ("Could not be delivered because of
                // 550 5.1.1 User unknown. The following recipients were
                // affected: …").
                if let Some(reply) = first_reply(&lines, &line_owner, id) {
                    found = Some(reply);
                }
            }
            let original = named
                .iter()
                .find(|n| n.eq_ignore_ascii_case(email))
                .cloned()
                .unwrap_or_else(|| email.clone());
            ReportedRecipient {
                email: original,
                action: Some(if delayed { "delayed" } else { "failed" }.to_owned()),
                status: found.as_ref().and_then(|r| r.status),
                smtp_code: found.as_ref().and_then(|r| r.code),
                diagnostic: found.map(|r| r.text).filter(|text| !text.is_empty()),
                ..ReportedRecipient::default()
            }
        })
        .collect()
}

fn is_ignored(lower: &str, ignore: &[String]) -> bool {
    let local = lower.split('@').next().unwrap_or_default();
    ignore.iter().any(|own| own == lower)
        || matches!(
            local,
            "mailer-daemon" | "mail.delivery.system" | "mailer_daemon"
        )
}

/// Whether the words before an address make it the envelope sender.
fn is_sender_position(line: &str, start: usize) -> bool {
    let before = line[..start].trim_end_matches(['<', ' ', '"']);
    let tail_start = before.len().saturating_sub(16);
    let tail_start = (tail_start..=before.len())
        .find(|&at| before.is_char_boundary(at))
        .unwrap_or(before.len());
    let tail = before[tail_start..].to_ascii_lowercase();
    SENDER_PREFIXES.iter().any(|prefix| tail.ends_with(prefix))
}

/// A reply found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundReply {
    pub code: Option<u16>,
    pub status: Option<EnhancedCode>,
    pub text: String,
}

/// The diagnostic of one recipient.
fn diagnose(
    lines: &[&str],
    line_owner: &[Option<usize>],
    id: usize,
    mentions: &[&Mention],
) -> Option<FoundReply> {
    // 1. A reply on a line that names the recipient.
    for mention in mentions {
        let line = lines[mention.line];
        if let Some(at) = code_in(line).or_else(|| enhanced_in(line).map(|(_, at)| at)) {
            let mut found = reply_from(lines, line_owner, id, mention.line, at);
            // A transcript may explain the reply on the line before it
            // ("mail.local: unknown user: x" above "554 <x>... Service
            // unavailable").
            let mut context = String::new();
            if let Some(before) = mention.line.checked_sub(1) {
                let line_before = lines[before].trim();
                let explains = !line_before.is_empty()
                    && line_owner[before].is_none()
                    && code_in(line_before) != Some(0)
                    && !line_before.starts_with("---")
                    && !line_before.ends_with(':');
                if explains {
                    push_words(&mut context, line_before);
                }
            }
            push_words(&mut context, &line[..at]);
            prefix_context(&mut found, &context);
            return Some(found);
        }
    }
    // 2. The first reply in the lines after a mention, up to another
    // recipient's line, with the lines between (they say where in the
    // session it came: "SMTP error from remote mail server after MAIL
    // FROM:").
    for mention in mentions {
        let end = block_end(lines, line_owner, id, mention.line);
        for index in mention.line + 1..end {
            if let Some(at) = reply_in(lines[index]) {
                let mut found = reply_from(lines, line_owner, id, index, at);
                let mut context = String::new();
                for between in &lines[mention.line + 1..index] {
                    push_words(&mut context, between);
                }
                push_words(&mut context, &lines[index][..at]);
                prefix_context(&mut found, &context);
                return Some(found);
            }
        }
    }
    // 3. The explanation written with the mentions: their lines and the
    // lines after them up to a blank line, or, when a mention stands
    // alone, the line before it ("The user(s) account is disabled.").
    let mut text = String::new();
    for mention in mentions {
        let end = block_end(lines, line_owner, id, mention.line);
        let line = lines[mention.line];
        let mut own = String::new();
        own.push_str(line[..mention.start].trim_matches(|c: char| c.is_whitespace() || c == '<'));
        push_words(
            &mut own,
            line[mention.end..].trim_start_matches(['>', ':', '"']),
        );
        let mut index = mention.line + 1;
        // The paragraph after the mention; past blank lines when the
        // mention's own line ends its paragraph ("There was an error
        // delivering your mail to <x>." and, apart, the reason).
        let mut paragraphs = 0;
        while paragraphs < 2 && index < end {
            while index < end && lines[index].trim().is_empty() {
                index += 1;
            }
            let mut added = false;
            while index < end && !lines[index].trim().is_empty() {
                push_words(&mut own, lines[index]);
                index += 1;
                added = true;
            }
            paragraphs += 1;
            if added {
                break;
            }
        }
        let before = lines[..mention.line]
            .iter()
            .rposition(|line| !line.trim().is_empty())
            .filter(|&index| explains(lines[index], line_owner[index]));
        if own.trim().is_empty()
            && let Some(before) = before
        {
            own.push_str(lines[before].trim());
        }
        if !text.contains(own.trim()) {
            push_words(&mut text, &own);
        }
    }
    let text = clip(text.trim());
    let status = enhanced_in(&text).map(|(code, _)| code);
    Some(FoundReply {
        code: None,
        status,
        text,
    })
}

/// Whether a line may explain the mention after it: not a separator,
/// and naming no recipient.
fn explains(line: &str, owner: Option<usize>) -> bool {
    owner.is_none() && line.trim().chars().any(char::is_alphanumeric)
}

/// The first reply anywhere in the notice, with the line before it.
fn first_reply(lines: &[&str], line_owner: &[Option<usize>], id: usize) -> Option<FoundReply> {
    let (index, at) = lines
        .iter()
        .enumerate()
        .find_map(|(index, line)| code_in(line).map(|at| (index, at)))?;
    let mut found = reply_from(lines, line_owner, id, index, at);
    let mut context = String::new();
    if let Some(before) = index.checked_sub(1).map(|i| lines[i]) {
        push_words(&mut context, before);
    }
    push_words(&mut context, &lines[index][..at]);
    prefix_context(&mut found, &context);
    Some(found)
}

/// Where the lines that may explain a mention end: at another recipient's
/// line, or after `MAX_BLOCK_LINES`.
fn block_end(lines: &[&str], line_owner: &[Option<usize>], id: usize, from: usize) -> usize {
    let limit = lines.len().min(from + 1 + MAX_BLOCK_LINES);
    (from + 1..limit)
        .find(|&index| line_owner[index].is_some_and(|owner| owner != id))
        .unwrap_or(limit)
}

fn push_words(text: &mut String, words: &str) {
    let words = words.trim();
    if words.is_empty() {
        return;
    }
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(words);
}

pub fn clip(text: &str) -> String {
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_DIAGNOSTIC_CHARS {
        let mut cut = MAX_DIAGNOSTIC_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The reply that begins at byte `at` of line `index`, with its
/// continuation: the following lines of text up to a blank line, another
/// recipient's line or another reply, and past blank lines the further
/// lines of a multi-line reply (`550-…`).
fn reply_from(
    lines: &[&str],
    line_owner: &[Option<usize>],
    id: usize,
    index: usize,
    at: usize,
) -> FoundReply {
    let first = &lines[index][at..];
    let code: Option<u16> = first
        .get(..3)
        .and_then(|digits| digits.parse().ok())
        .filter(|code| (400..600).contains(code));
    let mut text = first.trim().to_owned();
    let mut open = first.as_bytes().get(3) == Some(&b'-');
    let mut next = index + 1;
    let limit = lines.len().min(index + 1 + MAX_BLOCK_LINES);
    while next < limit {
        if line_owner[next].is_some_and(|owner| owner != id) {
            break;
        }
        let line = lines[next].trim();
        if line.is_empty() {
            // A multi-line reply may be spread over blank lines.
            let resumes = (next + 1..limit)
                .find(|&i| !lines[i].trim().is_empty())
                .filter(|&i| open && continues_reply(lines[i].trim(), code));
            match resumes {
                Some(resume) => next = resume,
                None => break,
            }
            continue;
        }
        let starts_reply = line.len() >= 3 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit);
        if continues_reply(line, code) {
            if !open {
                break;
            }
            open = line.as_bytes().get(3) == Some(&b'-');
        } else if starts_reply
            || line.starts_with(">>>")
            || line.starts_with("<<<")
            || line.starts_with("---")
            || line.to_ascii_lowercase().starts_with("while talking to")
        {
            break;
        }
        push_words(&mut text, strip_reply_prefix(line, code));
        next += 1;
    }
    let text = clip(&text);
    let status = enhanced_in(&text).map(|(code, _)| code);
    FoundReply { code, status, text }
}

fn continues_reply(line: &str, code: Option<u16>) -> bool {
    code.is_some_and(|code| {
        let prefix = code.to_string();
        line.starts_with(&prefix) && matches!(line.as_bytes().get(3), Some(b'-' | b' '))
    })
}

/// A continuation line without its repeated `550-5.7.26 ` prefix.
fn strip_reply_prefix(line: &str, code: Option<u16>) -> &str {
    if !continues_reply(line, code) {
        return line;
    }
    let rest = line[4..].trim_start();
    match rest.split_whitespace().next() {
        Some(token) if token.parse::<EnhancedCode>().is_ok() => rest[token.len()..].trim_start(),
        _ => rest,
    }
}

/// Puts the words before a reply in front of its text.
fn prefix_context(found: &mut FoundReply, context: &str) {
    let context = context
        .trim()
        .trim_start_matches(['<', '>', ':', '"'])
        .trim();
    if !context.is_empty() {
        found.text = clip(&format!("{context} {}", found.text));
    }
}

/// Where an SMTP reply code (4xx or 5xx standing alone) or, failing one, an
/// enhanced status code begins in a piece of text.
pub fn reply_in(text: &str) -> Option<usize> {
    code_in(text).or_else(|| enhanced_in(text).map(|(_, at)| at))
}

/// Where an SMTP reply code (4xx or 5xx standing alone) begins.
fn code_in(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    for start in 0..bytes.len().saturating_sub(2) {
        if !matches!(bytes[start], b'4' | b'5')
            || !bytes[start + 1].is_ascii_digit()
            || !bytes[start + 2].is_ascii_digit()
        {
            continue;
        }
        let before_ok = start == 0
            || matches!(
                bytes[start - 1],
                b' ' | b'\t' | b'(' | b'[' | b':' | b'"' | b'\'' | b'<' | b'='
            );
        let after_ok = bytes
            .get(start + 3)
            .is_none_or(|b| matches!(b, b' ' | b'-' | b')' | b':' | b'"' | b',' | b']' | b'\t'));
        // `5.1.1` standing alone is an enhanced code, handled below.
        if before_ok && after_ok && bytes.get(start + 3) != Some(&b'.') {
            return Some(start);
        }
    }
    None
}

/// The first RFC 3463 status code (`5.1.1`, `#5.1.0`) in text, and where it
/// begins.
pub fn enhanced_in(text: &str) -> Option<(EnhancedCode, usize)> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start + 5 <= bytes.len() {
        let class = bytes[start];
        let standalone =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'.');
        if matches!(class, b'2' | b'4' | b'5') && standalone && bytes[start + 1] == b'.' {
            let end = start
                + 2
                + bytes[start + 2..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || **b == b'.')
                    .count();
            let candidate = text[start..end].trim_end_matches('.');
            if candidate.matches('.').count() == 2
                && let Ok(code) = candidate.parse::<EnhancedCode>()
            {
                return Some((code, start));
            }
            start = end.max(start + 1);
            continue;
        }
        start += 1;
    }
    None
}

/// The byte ranges of the addresses in a line: words with one `@` between
/// a local part and a dotted domain.
pub fn addresses_in_line(line: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let is_separator = |c: char| c.is_whitespace() || "<>()[]\"',;:".contains(c);
    let mut word_start = None;
    for (at, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        if is_separator(c) {
            if let Some(start) = word_start.take()
                && let Some(range) = address_word(line, start, at)
            {
                found.push(range);
            }
        } else if word_start.is_none() {
            word_start = Some(at);
        }
    }
    found
}

fn address_word(line: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let word = &line[start..end];
    let trimmed_start = word.len() - word.trim_start_matches(['.', '`', '*']).len();
    let word = word.trim_start_matches(['.', '`', '*']);
    let word = word.trim_end_matches(['.', '`', '*']);
    let (local, domain) = word.split_once('@')?;
    // Path and URL pieces ("identity/x@example.org", "a&endpoint=x@example.org",
    // "/home/x/.forward") are valid local parts, but never a recipient
    // written in a notice.
    if local.contains(['/', '&', '=', '?', '|', '!'])
        || local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.ends_with('.')
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        || crate::address::EmailAddress::parse(word).is_err()
    {
        return None;
    }
    let begin = start + trimmed_start;
    Some((begin, begin + word.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_recipient_gets_its_own_diagnostic() {
        let text = "   ----- Transcript of session follows -----\n\
            554 <a@example.edu>... Remote protocol error: Connection reset\n\
            554 <b@example.org>... 550 Host unknown (Authoritative answer from name server)\n\
            While talking to mail.example.co.jp:\n\
            >>> RCPT To:<c@example.co.jp>\n\
            <<< 550 Requested User Mailbox not found. No such user here.\n\
            550 <c@example.co.jp>... User unknown\n\
            \n   ----- Unsent message follows -----\n\
            Received: by example.com\nTo: d@example.org\n";
        let found = recipients(notice(text), &[], &[]);
        let emails: Vec<_> = found.iter().map(|r| r.email.as_str()).collect();
        assert_eq!(
            emails,
            ["a@example.edu", "b@example.org", "c@example.co.jp"]
        );
        assert!(
            found[0]
                .diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("protocol error"))
        );
        assert!(
            found[1]
                .diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("Host unknown"))
        );
        assert!(
            found[2]
                .diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("User unknown"))
        );
        assert!(found.iter().all(|r| r.smtp_code.is_some()));
    }

    #[test]
    fn a_reply_after_the_address_is_found_with_its_continuation() {
        let text = "There was an error delivering your mail to <x@example.com>.\n\n\
            mx.example.com [192.0.2.1] did not like our final DATA:\n\
            550-5.7.26 Unauthenticated email from example.jp is not accepted due to domain's\n\n\
            550 5.7.26 DMARC policy.\n\nMessage headers follow.\nReceived: x\n";
        let found = recipients(notice(text), &[], &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].smtp_code, Some(550));
        assert_eq!(found[0].status, Some(EnhancedCode::new(5, 7, 26)));
        assert!(
            found[0]
                .diagnostic
                .as_deref()
                .expect("a diagnostic")
                .contains("DMARC policy")
        );
    }

    #[test]
    fn quoted_headers_and_the_envelope_sender_are_not_recipients() {
        let text = "Your message\n\n  To:      sender@example.com\n  Subject: Hi\n\n\
            did not reach the following recipient(s):\n\n\
            x@example.jp on Thu, 29 Apr 2010 00:00:00 -0000\n\
            \x20   The recipient name is not recognized\n\
            SMTP error after MAIL FROM:<me@example.net>\n";
        let found = recipients(notice(text), &[], &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].email, "x@example.jp");
        assert_eq!(found[0].smtp_code, None);
        assert!(
            found[0]
                .diagnostic
                .as_deref()
                .expect("a diagnostic")
                .contains("not recognized")
        );
    }

    #[test]
    fn status_codes_are_found_in_text_but_not_in_addresses_or_versions() {
        assert_eq!(
            enhanced_in("(#5.1.1) nope"),
            Some((EnhancedCode::new(5, 1, 1), 2))
        );
        assert_eq!(enhanced_in("host 192.0.2.32 said"), None);
        assert_eq!(enhanced_in("v1.2.3"), None);
        assert_eq!(reply_in("said: 550 Unknown user"), Some(6));
        assert_eq!(reply_in("port 25, id 4500000"), None);
    }

    #[test]
    fn a_long_line_of_addresses_is_read_in_one_pass() {
        let line = "a@example.com ".repeat(20_000);
        assert_eq!(addresses_in_line(&line).len(), 20_000);
        let found = recipients(&line, &[], &[]);
        assert_eq!(found.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn any_notice_yields_only_addresses_it_contains(
            lines in proptest::collection::vec(
                proptest::string::string_regex(
                    "[ <>:()a-z0-9.@#-]{0,12}(x@example\\.org|y@example\\.net|550 5\\.1\\.1 |4\\.2\\.2)?[ a-z:.<>-]{0,12}"
                ).expect("a regex"),
                0..24,
            )
        ) {
            let notice = lines.join("\n");
            for recipient in recipients(&notice, &[], &[]) {
                proptest::prop_assert!(notice.contains(&recipient.email));
                proptest::prop_assert!(
                    recipient.smtp_code.is_none_or(|code| (400..600).contains(&code))
                );
            }
        }

        #[test]
        fn no_text_makes_the_reader_panic(text in "\\PC{0,400}") {
            let _ = recipients(notice(&text), &[], &[]);
            let _ = enhanced_in(&text);
            let _ = reply_in(&text);
        }
    }
}
