//! Times as the API writes them: RFC 3339, UTC, millisecond precision
//! (`2026-11-28T10:00:00.000Z`). Use with `#[serde(with = "crate::rfc3339")]`,
//! or `serialize_with = "crate::rfc3339::serialize"`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The text of a time as the API shows it.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(at))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00.123456Z")
            .expect("a time")
            .with_timezone(&Utc);
        let text = format(&at);
        assert_eq!(text, "2026-11-28T10:00:00.123Z");
        let json = serde_json::Value::String(text);
        let back = deserialize(json).expect("parses");
        assert_eq!(back.timestamp_millis(), at.timestamp_millis());
    }
}
