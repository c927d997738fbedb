//! The answer to "can this address receive mail?", as the API serves it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::smtp::SmtpReply;
use super::{Reason, Status};
use crate::suppress::SuppressionReason;

/// The reply of a mail server that decided a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpEvidence {
    pub host: String,
    pub code: u16,
    pub enhanced_code: Option<String>,
    pub message: String,
}

impl SmtpEvidence {
    pub fn new(host: &str, reply: &SmtpReply) -> Self {
        SmtpEvidence {
            host: host.to_owned(),
            code: reply.code(),
            enhanced_code: reply.enhanced().map(|code| code.to_string()),
            message: reply.message(),
        }
    }
}

/// What the local checks found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub disposable: bool,
    pub role_account: bool,
    pub free_provider: bool,
    pub catch_all: bool,
}

/// The verdict on one address and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub email: String,
    pub normalized: Option<String>,
    pub status: Status,
    pub reason: Reason,
    pub suggestion: Option<String>,
    pub mx: Vec<String>,
    pub smtp: Option<SmtpEvidence>,
    pub flags: Flags,
    pub suppressed: bool,
    pub suppression_reason: Option<SuppressionReason>,
    pub cached: bool,
    #[serde(serialize_with = "to_rfc3339", deserialize_with = "from_rfc3339")]
    pub checked_at: DateTime<Utc>,
    pub message: Option<String>,
}

impl VerifyResult {
    /// A result with a reason and nothing else known yet.
    pub fn new(email: &str, normalized: Option<String>, reason: Reason) -> Self {
        VerifyResult {
            email: email.to_owned(),
            normalized,
            status: reason.status(),
            reason,
            suggestion: None,
            mx: Vec::new(),
            smtp: None,
            flags: Flags::default(),
            suppressed: false,
            suppression_reason: None,
            cached: false,
            checked_at: Utc::now(),
            message: None,
        }
    }

    /// Sets the reason (and with it the status).
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self.status = reason.status();
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// Times in the API: RFC 3339, UTC, millisecond precision.
pub(crate) fn to_rfc3339<S: Serializer>(
    at: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn from_rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}
