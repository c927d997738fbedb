//! A MIME part's body as text, for the readers of raw messages.

use mail_parser::{Message, PartType};

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
