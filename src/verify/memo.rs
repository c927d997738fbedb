//! Recent answers kept in memory, so that an address asked about again (a
//! signup form's retries, a list checked twice) is answered without a
//! database round trip.
//!
//! An entry is only as good as the suppression list it was read against:
//! every change to the list — made by this process, or seen through the
//! list's change sequence when another replica made it — empties the memo.
//! Entries also expire with the verdict they copy, and after [`MEMO_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::VerifyResult;

/// The longest an answer is kept in memory.
pub const MEMO_TTL: Duration = Duration::from_secs(300);
/// The most answers kept.
pub const MEMO_CAPACITY: usize = 100_000;

#[derive(Debug)]
struct Entry {
    result: VerifyResult,
    until: Instant,
}

/// Answers by address key.
#[derive(Debug, Default)]
pub struct Memo {
    entries: Mutex<HashMap<String, Entry>>,
    /// The suppression list's change sequence when the memo was last
    /// emptied for it; `-1` until first seen.
    seen_seq: AtomicI64,
}

impl Memo {
    pub fn new() -> Self {
        Memo {
            entries: Mutex::default(),
            seen_seq: AtomicI64::new(-1),
        }
    }

    /// The answer kept for `key`, if it is still good.
    pub fn get(&self, key: &str) -> Option<VerifyResult> {
        let mut entries = self.entries.lock().expect("memo");
        match entries.get(key) {
            Some(entry) if entry.until > Instant::now() => Some(entry.result.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps an answer until `expires_at` (the verdict's own expiry), at
    /// most [`MEMO_TTL`].
    pub fn put(&self, key: String, result: VerifyResult, expires_at: DateTime<Utc>) {
        let left = (expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MEMO_TTL);
        if left.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("memo");
        if entries.len() >= MEMO_CAPACITY {
            entries.retain(|_, entry| entry.until > now);
            if entries.len() >= MEMO_CAPACITY {
                // Still full of live answers: start over rather than track
                // recency on every read.
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                result,
                until: now + left,
            },
        );
    }

    /// Forgets every answer: the suppression list changed.
    pub fn clear(&self) {
        self.entries.lock().expect("memo").clear();
    }

    /// Notes the suppression list's change sequence; a new one (a change by
    /// any replica) empties the memo.
    pub fn saw_suppression_seq(&self, seq: i64) {
        let before = self.seen_seq.swap(seq, Ordering::SeqCst);
        if before != seq {
            self.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("memo").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Reason;

    fn result() -> VerifyResult {
        VerifyResult::new(
            "a@example.test",
            Some("a@example.test".into()),
            Reason::Accepted,
        )
    }

    #[test]
    fn answers_are_kept_until_their_verdict_expires_or_the_list_changes() {
        let memo = Memo::new();
        memo.put(
            "a@example.test".into(),
            result(),
            Utc::now() + chrono::Duration::hours(1),
        );
        assert!(memo.get("a@example.test").is_some());
        memo.put(
            "b@example.test".into(),
            result(),
            Utc::now() - chrono::Duration::seconds(1),
        );
        assert!(
            memo.get("b@example.test").is_none(),
            "an expired verdict is not kept"
        );

        memo.saw_suppression_seq(7);
        assert!(memo.is_empty(), "the first sequence seen empties the memo");
        memo.put(
            "a@example.test".into(),
            result(),
            Utc::now() + chrono::Duration::hours(1),
        );
        memo.saw_suppression_seq(7);
        assert!(memo.get("a@example.test").is_some(), "no change, no loss");
        memo.saw_suppression_seq(8);
        assert!(
            memo.get("a@example.test").is_none(),
            "a change anywhere empties it"
        );
    }
}
