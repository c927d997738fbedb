//! SMTP replies (RFC 5321 §4.2) and their RFC 3463 enhanced status codes.

use std::fmt;
use std::str::FromStr;

/// An RFC 3463 enhanced status code, `class.subject.detail` (`5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Reads a code at the start of `text`; returns it and the rest of the
    /// text after the white space that follows it.
    fn split_off(text: &str) -> Option<(EnhancedCode, &str)> {
        let end = text.find(|c: char| c.is_whitespace()).unwrap_or(text.len());
        let code = text[..end].parse().ok()?;
        Some((code, text[end..].trim_start()))
    }
}

impl FromStr for EnhancedCode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(());
        };
        let digits = |part: &str, max_len: usize| {
            !part.is_empty() && part.len() <= max_len && part.bytes().all(|b| b.is_ascii_digit())
        };
        if !(matches!(class, "2" | "4" | "5") && digits(subject, 3) && digits(detail, 3)) {
            return Err(());
        }
        Ok(EnhancedCode {
            class: class.parse().map_err(|_| ())?,
            subject: subject.parse().map_err(|_| ())?,
            detail: detail.parse().map_err(|_| ())?,
        })
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply: its code, the enhanced code of its first line if any,
/// and its text lines (code, separator and enhanced code removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    /// Shared: one reply may stand for every recipient of a batch.
    lines: std::sync::Arc<[String]>,
}

/// The most text a reply keeps, over all its lines: the rest is read (the
/// reply must be well-formed to its end) and dropped. EHLO keywords fit
/// many times over; a server's prose beyond it says nothing more.
pub const MAX_REPLY_TEXT_BYTES: usize = 8 * 1024;

/// Why bytes from a server are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("empty reply")]
    Empty,
    #[error("not an SMTP reply line: {0:?}")]
    BadLine(String),
    #[error("reply lines disagree on the code ({first} then {then})")]
    MixedCodes { first: u16, then: u16 },
    #[error("the reply continues after its last line")]
    TrailingLines,
}

/// One parsed reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    /// `true` for `250-…` (more lines follow), `false` for `250 …`.
    pub more: bool,
    pub text: String,
}

impl ReplyLine {
    /// Parses one line, without its line ending.
    pub fn parse(line: &str) -> Result<ReplyLine, ReplyError> {
        let bad = || ReplyError::BadLine(truncate(line, 120));
        let bytes = line.as_bytes();
        if bytes.len() < 3
            || !bytes[..3].iter().all(u8::is_ascii_digit)
            || !(b'2'..=b'5').contains(&bytes[0])
        {
            return Err(bad());
        }
        let code: u16 = line[..3].parse().map_err(|_| bad())?;
        let (more, text) = match bytes.get(3) {
            None => (false, ""),
            Some(b' ') => (false, &line[4..]),
            Some(b'-') => (true, &line[4..]),
            // Some servers omit the space before the text.
            Some(_) => return Err(bad()),
        };
        Ok(ReplyLine {
            code,
            more,
            text: text.trim_end().to_owned(),
        })
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

impl SmtpReply {
    /// Builds a reply from its lines, as read from the wire.
    pub fn from_lines(lines: Vec<ReplyLine>) -> Result<SmtpReply, ReplyError> {
        let first = lines.first().ok_or(ReplyError::Empty)?;
        let code = first.code;
        let enhanced = EnhancedCode::split_off(&first.text)
            .map(|(enhanced, _)| enhanced)
            .filter(|enhanced| u16::from(enhanced.class) == code / 100);
        let last = lines.len() - 1;
        let mut texts = Vec::with_capacity(lines.len());
        let mut kept = 0;
        for (index, line) in lines.into_iter().enumerate() {
            if line.code != code {
                return Err(ReplyError::MixedCodes {
                    first: code,
                    then: line.code,
                });
            }
            if line.more != (index != last) {
                return Err(ReplyError::TrailingLines);
            }
            if kept >= MAX_REPLY_TEXT_BYTES {
                continue;
            }
            let mut text = match (enhanced, EnhancedCode::split_off(&line.text)) {
                (Some(first), Some((this, rest))) if this == first => rest.to_owned(),
                _ => line.text,
            };
            if kept + text.len() > MAX_REPLY_TEXT_BYTES {
                let mut end = MAX_REPLY_TEXT_BYTES - kept;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            kept += text.len();
            texts.push(text);
        }
        Ok(SmtpReply {
            code,
            enhanced,
            lines: texts.into(),
        })
    }

    /// Parses a whole reply, lines separated by CRLF (or LF).
    pub fn parse(raw: &str) -> Result<SmtpReply, ReplyError> {
        let lines = raw
            .trim_end_matches(['\r', '\n'])
            .split('\n')
            .map(|line| ReplyLine::parse(line.trim_end_matches('\r')))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_lines(lines)
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The text of all lines, joined by newlines.
    pub fn message(&self) -> String {
        self.lines.join("\n")
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(enhanced) = self.enhanced {
            write!(f, " {enhanced}")?;
        }
        if let Some(first) = self.lines.first().filter(|line| !line.is_empty()) {
            write!(f, " {first}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_line_reply_keeps_its_text_without_the_codes() {
        let reply = SmtpReply::parse(
            "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table",
        )
        .expect("parse");
        assert_eq!(reply.code(), 550);
        assert_eq!(reply.enhanced(), Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(
            reply.message(),
            "<nobody@example.test>: Recipient address rejected: User unknown in virtual mailbox table"
        );
    }

    #[test]
    fn multi_line_replies_strip_the_repeated_enhanced_code() {
        let reply = SmtpReply::parse(
            "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n\
             550-5.1.1 double-checking the recipient's email address for typos or\r\n\
             550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
        )
        .expect("parse");
        assert_eq!(reply.lines().len(), 3);
        assert!(reply.lines()[1].starts_with("double-checking"));
        assert_eq!(reply.enhanced(), Some(EnhancedCode::new(5, 1, 1)));
    }

    #[test]
    fn a_huge_reply_keeps_a_bounded_text_and_is_still_checked_to_its_end() {
        let line = "é".repeat(2000); // 4000 bytes
        let mut raw: Vec<String> = (0..63).map(|_| format!("550-5.7.1 {line}")).collect();
        raw.push(format!("550 5.7.1 {line}"));
        let reply = SmtpReply::parse(&raw.join("\r\n")).expect("parse");
        let kept: usize = reply.lines().iter().map(String::len).sum();
        assert!(kept <= MAX_REPLY_TEXT_BYTES, "{kept}");
        assert!(kept > MAX_REPLY_TEXT_BYTES - 4, "{kept}");
        assert_eq!(reply.lines().len(), 3);
        // A malformed last line is still refused.
        raw.push("250 other code".into());
        assert!(SmtpReply::parse(&raw.join("\r\n")).is_err());
    }

    #[test]
    fn an_enhanced_code_of_another_class_is_not_taken() {
        let reply = SmtpReply::parse("550 4.2.0 odd server").expect("parse");
        assert_eq!(reply.enhanced(), None);
        assert_eq!(reply.message(), "4.2.0 odd server");
    }

    #[test]
    fn bare_codes_and_texts_without_enhanced_codes_parse() {
        let reply = SmtpReply::parse("250").expect("parse");
        assert_eq!((reply.code(), reply.message().as_str()), (250, ""));
        let reply = SmtpReply::parse("550 No such user here").expect("parse");
        assert_eq!(reply.enhanced(), None);
        assert_eq!(reply.to_string(), "550 No such user here");
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(matches!(
            SmtpReply::parse("hello"),
            Err(ReplyError::BadLine(_))
        ));
        assert!(matches!(
            SmtpReply::parse("999 what"),
            Err(ReplyError::BadLine(_))
        ));
        assert!(matches!(
            SmtpReply::parse("25"),
            Err(ReplyError::BadLine(_))
        ));
        assert!(matches!(
            SmtpReply::parse("250-a\r\n550 b"),
            Err(ReplyError::MixedCodes {
                first: 250,
                then: 550
            })
        ));
        assert!(matches!(
            SmtpReply::parse("250 a\r\n250 b"),
            Err(ReplyError::TrailingLines)
        ));
        assert!(matches!(
            SmtpReply::parse("250-a"),
            Err(ReplyError::TrailingLines)
        ));
        assert!(matches!(SmtpReply::parse(""), Err(ReplyError::BadLine(_))));
    }

    #[test]
    fn enhanced_codes_parse_strictly() {
        assert_eq!("5.7.606".parse(), Ok(EnhancedCode::new(5, 7, 606)));
        assert!("5.1".parse::<EnhancedCode>().is_err());
        assert!("3.1.1".parse::<EnhancedCode>().is_err());
        assert!("5.1.1.1".parse::<EnhancedCode>().is_err());
        assert!("5.x.1".parse::<EnhancedCode>().is_err());
        assert!("5.1000.1".parse::<EnhancedCode>().is_err());
    }
}
