//! Recording a bounce report: classify each recipient, record the bounces
//! and apply the suppressions they call for, in one transaction.

use chrono::Utc;
use serde::Serialize;

use super::ReportedRecipient;
use super::classify::classify;
use crate::address::EmailAddress;
use crate::store::{NewBounce, NewBounceEvent, StoreResult};
use crate::suppress::SuppressionList;
use crate::vocab::Reason;
use crate::vocab::{BounceKind, BounceOrigin, Diagnosis};

/// What became of one recipient of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BounceOutcome {
    pub email: String,
    pub kind: BounceKind,
    pub reason: Option<Reason>,
    pub status: Option<String>,
    pub smtp_code: Option<u16>,
    pub diagnostic: Option<String>,
    pub suppressed: bool,
}

/// The answer to a bounce report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BounceReport {
    pub recipients: Vec<BounceOutcome>,
}

/// A report's text as it is kept: cleaned and cut at 1 KiB.
fn truncate(text: &str) -> String {
    crate::vocab::bounded_text(text)
}

/// Classifies and records the recipients of one report.
pub async fn record(
    suppressions: &SuppressionList,
    origin: BounceOrigin,
    recipients: Vec<ReportedRecipient>,
) -> StoreResult<BounceReport> {
    let now = Utc::now();
    let mut outcomes = Vec::with_capacity(recipients.len());
    let mut bounces = Vec::new();
    // For each bounce to record, the index of its outcome.
    let mut recorded_at = Vec::new();
    for recipient in recipients {
        let classified = classify(&recipient);
        let is_bounce = recipient
            .action
            .as_deref()
            .is_none_or(|action| action == "failed")
            || recipient.complaint;
        let diagnostic = recipient.diagnostic.as_deref().map(truncate);
        let status = recipient.status.map(|status| status.to_string());
        let address = EmailAddress::parse(&recipient.email).ok();
        if let (true, Some(address)) = (is_bounce, &address) {
            recorded_at.push(outcomes.len());
            bounces.push(NewBounce {
                event: NewBounceEvent {
                    address_key: address.key(),
                    email: address.normalized(),
                    kind: classified.kind,
                    origin,
                    evidence: Diagnosis {
                        smtp_code: recipient.smtp_code,
                        enhanced_code: status.clone(),
                        diagnostic: diagnostic.clone(),
                        mx_host: recipient.remote_mta.clone(),
                    },
                    received_at: now,
                },
                suppress_as: classified.suppress_as,
            });
        }
        outcomes.push(BounceOutcome {
            email: address.map_or(recipient.email, |address| address.normalized()),
            kind: classified.kind,
            reason: classified.reason,
            status,
            smtp_code: recipient.smtp_code,
            diagnostic,
            suppressed: false,
        });
    }
    if !bounces.is_empty() {
        let suppressed = suppressions.record_bounces(&bounces).await?;
        for (index, suppressed) in recorded_at.into_iter().zip(suppressed) {
            outcomes[index].suppressed = suppressed;
        }
    }
    for outcome in &outcomes {
        metrics::counter!("mailvet_bounces_total", "kind" => outcome.kind.as_str(), "origin" => origin.as_str())
            .increment(1);
    }
    Ok(BounceReport {
        recipients: outcomes,
    })
}
