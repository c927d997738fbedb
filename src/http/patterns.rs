//! Bounce patterns as `GET /stats` and the dashboard show them.

use serde::Serialize;

use super::{ApiError, AppState};
use crate::store::PatternGroup;

/// A normalised reply.
#[derive(Debug, Clone, Serialize)]
pub struct PatternReply {
    pub code: u16,
    pub enhanced_code: Option<String>,
    pub text: String,
}

/// A pattern that stands out: many recipients at one provider refused
/// with one reply.
#[derive(Debug, Clone, Serialize)]
pub struct BouncePattern {
    pub provider: String,
    pub pattern: PatternReply,
    /// Distinct recipients within the window.
    pub count: u64,
    #[serde(with = "crate::rfc3339")]
    pub first_seen: chrono::DateTime<chrono::Utc>,
    #[serde(with = "crate::rfc3339")]
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// Whether the reply is about the sender rather than the recipients.
    pub sender_side: bool,
}

impl From<PatternGroup> for BouncePattern {
    fn from(group: PatternGroup) -> Self {
        BouncePattern {
            provider: group.provider,
            pattern: PatternReply {
                code: group.code,
                enhanced_code: group.enhanced_code,
                text: group.text,
            },
            count: group.recipients,
            first_seen: group.first_seen,
            last_seen: group.last_seen,
            sender_side: group.sender_side,
        }
    }
}

/// The patterns that stand out now, sender-side first.
pub(super) async fn standing_out(state: &AppState) -> Result<Vec<BouncePattern>, ApiError> {
    Ok(state
        .verifier
        .bounce_patterns()
        .standing_out()
        .await?
        .into_iter()
        .map(BouncePattern::from)
        .collect())
}
