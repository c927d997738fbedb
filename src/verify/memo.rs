//! Recent answers kept in memory, so that an address asked about again (a
//! signup form's retries, a list checked twice) is answered without a
//! database round trip.
//!
//! An entry is only as good as the suppression list it was read against,
//! so each is stamped with the list's version (`SuppressionList::version`)
//! read before the answer was made, and is served only under that same
//! version: any change to the list — made by this process, or seen when
//! another replica made it — retires every entry at once. Entries also
//! expire with the verdict they copy, and after [`MEMO_TTL`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use super::VerifyResult;

/// The longest an answer is kept in memory.
pub const MEMO_TTL: Duration = Duration::from_secs(300);
/// The most answers kept.
pub const MEMO_CAPACITY: u64 = 100_000;

#[derive(Debug)]
struct Entry {
    result: VerifyResult,
    until: Instant,
    version: u64,
    /// The answer's JSON after its `email` (which each caller writes as it
    /// asked), made at the first hit that wants JSON.
    json_tail: OnceLock<Option<Box<[u8]>>>,
    /// The counters a hit moves, looked up once rather than at each hit.
    hits: metrics::Counter,
    verdicts: metrics::Counter,
}

/// An answer kept in memory, as [`Memo::get`] finds it.
#[derive(Debug, Clone)]
pub struct Remembered(Arc<Entry>);

/// How the JSON of a [`VerifyResult`] starts when its `email` is empty:
/// `email` is the struct's first field.
const EMPTY_EMAIL_PREFIX: &[u8] = br#"{"email":"""#;

impl Remembered {
    /// The answer as it was kept.
    pub fn result(&self) -> &VerifyResult {
        &self.0.result
    }

    /// Counts the answer being given: a cache hit and its verdict.
    pub fn count(&self) {
        self.0.hits.increment(1);
        self.0.verdicts.increment(1);
    }

    /// The answer's JSON with `email` set to `email`: byte for byte what
    /// serializing the answer with that `email` gives, without
    /// serializing it again.
    pub fn json_for(&self, email: &str) -> Vec<u8> {
        let tail = self.0.json_tail.get_or_init(|| {
            let blank = VerifyResult {
                email: String::new(),
                ..self.0.result.clone()
            };
            let json = serde_json::to_vec(&blank).ok()?;
            json.strip_prefix(EMPTY_EMAIL_PREFIX).map(Box::from)
        });
        let Some(tail) = tail else {
            return serde_json::to_vec(&VerifyResult {
                email: email.to_owned(),
                ..self.0.result.clone()
            })
            .unwrap_or_default();
        };
        let mut json = Vec::with_capacity(email.len() + 16 + tail.len());
        json.extend_from_slice(br#"{"email":"#);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut json, email);
        json.extend_from_slice(tail);
        json
    }
}

/// Answers by address key.
#[derive(Debug)]
pub struct Memo {
    entries: Cache<String, Arc<Entry>>,
    /// The list version the entries were last checked against.
    version: AtomicU64,
}

impl Default for Memo {
    fn default() -> Self {
        Self::new()
    }
}

impl Memo {
    pub fn new() -> Self {
        Memo {
            entries: Cache::builder()
                .max_capacity(MEMO_CAPACITY)
                .time_to_live(MEMO_TTL)
                .build(),
            version: AtomicU64::new(0),
        }
    }

    /// The answer kept for `key`, if it is still good under the list's
    /// `version`.
    pub fn get(&self, key: &str, version: u64) -> Option<Remembered> {
        self.forget_if_changed(version);
        let entry = self.entries.get(key)?;
        if entry.version == version && entry.until > Instant::now() {
            return Some(Remembered(entry));
        }
        self.entries.invalidate(key);
        None
    }

    /// Keeps an answer made under the list's `version` until `expires_at`
    /// (the verdict's own expiry), at most [`MEMO_TTL`].
    pub fn put(&self, key: String, result: VerifyResult, expires_at: DateTime<Utc>, version: u64) {
        let left = (expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MEMO_TTL);
        if left.is_zero() || self.forget_if_changed(version) > version {
            // Expired already, or made under a list that has changed since.
            return;
        }
        let entry = Entry {
            hits: metrics::counter!("mailvet_verify_cache_hits_total"),
            verdicts: result.verdict_counter(),
            result,
            until: Instant::now() + left,
            version,
            json_tail: OnceLock::new(),
        };
        self.entries.insert(key, Arc::new(entry));
    }

    /// Drops every entry once the list has moved on to `version`: they
    /// could no longer be served, and need not wait for their time to run
    /// out. Returns the newest version seen (versions only grow).
    fn forget_if_changed(&self, version: u64) -> u64 {
        let before = self.version.fetch_max(version, Ordering::AcqRel);
        if before < version {
            self.entries.invalidate_all();
        }
        before.max(version)
    }

    /// How many answers are kept (approximately: the cache counts lazily).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Reason;

    fn result() -> VerifyResult {
        VerifyResult::new(
            "a@example.test",
            Some("a@example.test".into()),
            Reason::Accepted,
        )
    }

    fn in_an_hour() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    #[test]
    fn answers_are_kept_until_their_verdict_expires_or_the_list_changes() {
        let memo = Memo::new();
        memo.put("a@example.test".into(), result(), in_an_hour(), 7);
        assert!(memo.get("a@example.test", 7).is_some());
        memo.put(
            "b@example.test".into(),
            result(),
            Utc::now() - chrono::Duration::seconds(1),
            7,
        );
        assert!(
            memo.get("b@example.test", 7).is_none(),
            "an expired verdict is not kept"
        );
        assert!(
            memo.get("a@example.test", 8).is_none(),
            "a change of the list retires every answer"
        );
    }

    #[test]
    fn the_kept_json_is_what_serializing_the_answer_gives() {
        let memo = Memo::new();
        let mut kept = result();
        kept.cached = true;
        kept.message = Some("a \"quoted\" message".into());
        kept.transcript = vec![super::super::result::SmtpExchange {
            host: "mx.example.test".into(),
            sent: "RCPT TO:<a@example.test>".into(),
            code: Some(250),
            enhanced_code: Some("2.1.5".into()),
            message: "ok".into(),
        }];
        memo.put("a@example.test".into(), kept.clone(), in_an_hour(), 1);
        let found = memo.get("a@example.test", 1).expect("kept");
        for email in [
            "a@example.test",
            "  A@Example.TEST ",
            "\"odd\"\\@example.test",
            "ü@例子.广告",
        ] {
            let expected = serde_json::to_vec(&VerifyResult {
                email: email.to_owned(),
                ..kept.clone()
            })
            .expect("serializable");
            assert_eq!(
                String::from_utf8(found.json_for(email)).expect("UTF-8"),
                String::from_utf8(expected).expect("UTF-8"),
                "{email}"
            );
        }
    }

    #[test]
    fn an_answer_made_before_a_change_is_never_served_after_it() {
        let memo = Memo::new();
        // Read against version 3, stored after the list moved to 4.
        memo.get("late@example.test", 4);
        memo.put("late@example.test".into(), result(), in_an_hour(), 3);
        assert!(memo.get("late@example.test", 4).is_none());
    }
}
