//! The confirmation feed's cursor: an opaque token for a position in the
//! confirmations' change sequence (its own format, so that a suppression
//! feed cursor is not taken for one).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const PREFIX: &str = "c1:";

/// A position in the confirmation feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedCursor(pub i64);

impl FeedCursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{}", self.0))
    }

    pub fn decode(token: &str) -> Option<FeedCursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let seq: i64 = text.strip_prefix(PREFIX)?.parse().ok()?;
        (seq >= 0).then_some(FeedCursor(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_cursors_round_trip_and_refuse_suppression_cursors() {
        for seq in [0, 7, i64::MAX] {
            assert_eq!(
                FeedCursor::decode(&FeedCursor(seq).encode()),
                Some(FeedCursor(seq))
            );
        }
        let suppression_cursor = crate::suppress::Cursor(5).encode();
        assert_eq!(FeedCursor::decode(&suppression_cursor), None);
        assert_eq!(FeedCursor::decode("zzz"), None);
    }
}
