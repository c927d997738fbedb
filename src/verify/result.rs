//! The answer to "can this address receive mail?", as the API serves it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::vocab::{Reason, SmtpEvidence, Status, SuppressionReason, bounded_text};

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
    #[serde(with = "crate::rfc3339")]
    pub checked_at: DateTime<Utc>,
    pub message: Option<String>,
    /// Every exchange with the mail servers that led to the verdict, in
    /// order, when one address was verified on its own (batches and jobs
    /// leave it empty, and it is then left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<SmtpExchange>,
}

/// One exchange with a mail server: what mailvet sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpExchange {
    /// The mail host.
    pub host: String,
    /// The command (`EHLO …`, `MAIL FROM:<…>`, `RCPT TO:<…>`), or
    /// `connect <address>` for the connection and the greeting.
    pub sent: String,
    /// The reply's code, when a reply came.
    pub code: Option<u16>,
    pub enhanced_code: Option<String>,
    /// The reply's text, or why no reply came.
    pub message: String,
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
            transcript: Vec::new(),
        }
    }

    /// Sets the reason (and with it the status).
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self.status = reason.status();
        self
    }

    /// Sets the message, cleaned and cut like any text that may quote a
    /// server (see [`bounded_text`]).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(bounded_text(&message.into()));
        self
    }
}

impl VerifyResult {
    /// The counter of this result's verdict (`mailvet_verdicts_total`).
    pub(super) fn verdict_counter(&self) -> metrics::Counter {
        metrics::counter!(
            "mailvet_verdicts_total",
            "status" => self.status.as_str(),
            "reason" => self.reason.as_str(),
        )
    }
}
