//! The step both backends take before writing sightings, and the reading
//! of a pattern group's row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::rows::ColumnTypes;
use crate::store::model::hour_of;
use crate::store::patterns::{PatternGroup, Sighting};
use crate::store::{StoreError, StoreResult};

/// Sightings of one pattern, hour and recipient, folded into one.
#[derive(Debug)]
pub(in crate::store) struct Folded<'a> {
    pub sighting: &'a Sighting,
    pub hour: DateTime<Utc>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub events: i64,
}

/// Folds a batch by (provider, pattern, hour, recipient), so that each
/// row is written once per statement (Postgres refuses to update a row
/// twice in one `insert … on conflict`).
pub(in crate::store) fn fold(sightings: &[Sighting]) -> Vec<Folded<'_>> {
    let mut folded: BTreeMap<(&str, &str, DateTime<Utc>, &str), Folded<'_>> = BTreeMap::new();
    for sighting in sightings {
        let hour = hour_of(sighting.seen_at);
        let key = (
            sighting.provider.as_str(),
            sighting.pattern_key.as_str(),
            hour,
            sighting.recipient.as_str(),
        );
        folded
            .entry(key)
            .and_modify(|row| {
                row.first_seen = row.first_seen.min(sighting.seen_at);
                row.last_seen = row.last_seen.max(sighting.seen_at);
                row.events += 1;
            })
            .or_insert(Folded {
                sighting,
                hour,
                first_seen: sighting.seen_at,
                last_seen: sighting.seen_at,
                events: 1,
            });
    }
    folded.into_values().collect()
}

/// A pattern group as the backends return it.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct GroupRow<DB: ColumnTypes> {
    provider: String,
    code: DB::Int,
    enhanced_code: Option<String>,
    text: String,
    sender_side: bool,
    recipients: i64,
    first_seen: DB::Time,
    last_seen: DB::Time,
}

impl<DB: ColumnTypes> TryFrom<GroupRow<DB>> for PatternGroup {
    type Error = StoreError;

    fn try_from(row: GroupRow<DB>) -> StoreResult<Self> {
        let code: i64 = row.code.into();
        Ok(PatternGroup {
            code: u16::try_from(code)
                .map_err(|_| StoreError::Corrupt(format!("pattern reply code {code}")))?,
            provider: row.provider,
            enhanced_code: row.enhanced_code,
            text: row.text,
            sender_side: row.sender_side,
            recipients: u64::try_from(row.recipients).unwrap_or(0),
            first_seen: DB::time("first_seen", row.first_seen)?,
            last_seen: DB::time("last_seen", row.last_seen)?,
        })
    }
}

/// The columns of a pattern group, over sightings `s` joined to patterns
/// `p`, grouped by pattern.
macro_rules! group_select {
    () => {
        "select p.provider, p.code, p.enhanced_code, p.text, p.sender_side, \
                count(distinct s.recipient) as recipients, \
                min(s.first_seen) as first_seen, max(s.last_seen) as last_seen \
           from bounce_pattern_sightings s \
           join bounce_patterns p on p.provider = s.provider and p.pattern_key = s.pattern_key "
    };
}
pub(in crate::store) use group_select;
