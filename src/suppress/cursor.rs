//! The change feed's cursor: an opaque token for a position in the
//! suppression list's change sequence.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in the change feed: every change after it is still to come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor(pub i64);

const PREFIX: &str = "s1:";

impl Cursor {
    /// The token clients keep. Opaque: only its format version and the
    /// sequence are inside, so that the format can change.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{}", self.0))
    }

    pub fn decode(token: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let seq: i64 = text.strip_prefix(PREFIX)?.parse().ok()?;
        (seq >= 0).then_some(Cursor(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(Cursor::decode(&Cursor(seq).encode()), Some(Cursor(seq)));
        }
        for bad in [
            "",
            "zzz",
            "42",
            &URL_SAFE_NO_PAD.encode("s1:-5"),
            &URL_SAFE_NO_PAD.encode("s2:5"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
