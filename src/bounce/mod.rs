//! Bounce reports: what a delivery failure says about a recipient.
//!
//! Reports come in many shapes — RFC 3464 DSNs, human-readable bounces,
//! ARF complaints, ESP webhooks — and each is first read into
//! [`ReportedRecipient`]s, then classified with the same classifier as the
//! verification engine.

pub mod arf;
pub mod autoreply;
pub mod classify;
pub mod dsn;
pub mod intake;
pub mod message;
pub mod notice;
mod parts;
pub mod signature;
pub mod sns_mail;
pub mod text;
pub mod webhooks;

use crate::smtp::EnhancedCode;
use crate::vocab::BounceKind;

/// What a report says about one recipient, before classification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedRecipient {
    /// The recipient's address as the report gives it.
    pub email: String,
    /// The DSN `Action` (`failed`, `delayed`, `delivered` …), lower case;
    /// `None` when the report is not a DSN.
    pub action: Option<String>,
    /// The RFC 3463 status (`5.1.1`), when the report gives one.
    pub status: Option<EnhancedCode>,
    /// The SMTP reply code, when the report gives one.
    pub smtp_code: Option<u16>,
    /// The remote server's reply text or the report's explanation.
    pub diagnostic: Option<String>,
    /// The server that refused the message.
    pub remote_mta: Option<String>,
    /// A spam complaint rather than a bounce.
    pub complaint: bool,
    /// The sending provider's own hard/soft verdict, when it gives one
    /// (SES `Permanent`/`Transient`, Postmark `HardBounce`/`SoftBounce` …).
    pub provider_kind: Option<BounceKind>,
}
