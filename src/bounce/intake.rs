//! Recording a bounce report: classify each recipient, record the bounces
//! and apply the suppressions they call for, in one transaction.

use chrono::Utc;
use serde::Serialize;

use super::ReportedRecipient;
use super::classify::{classify, evidence_reply};
use crate::address::EmailAddress;
use crate::patterns::{self, BouncePatterns, Pattern};
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

/// Classifies and records the recipients of one report; their rejections
/// go to the bounce patterns too.
pub async fn record(
    suppressions: &SuppressionList,
    patterns: &BouncePatterns,
    origin: BounceOrigin,
    recipients: Vec<ReportedRecipient>,
) -> StoreResult<BounceReport> {
    let now = Utc::now();
    let mut outcomes = Vec::with_capacity(recipients.len());
    let mut bounces = Vec::new();
    // For each bounce to record, the index of its outcome.
    let mut recorded_at = Vec::new();
    let mut sightings = Vec::new();
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
            sightings.extend(sighting(&recipient, address, classified.reason, now));
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
    if let Err(err) = patterns.record(sightings).await {
        // The bounces are recorded; the patterns are a signal on top.
        tracing::warn!(error = %crate::error::error_chain(&err), "recording bounce patterns failed");
    }
    for outcome in &outcomes {
        metrics::counter!("mailvet_bounces_total", "kind" => outcome.kind.as_str(), "origin" => origin.as_str())
            .increment(1);
    }
    Ok(BounceReport {
        recipients: outcomes,
    })
}

/// A bounce's rejection as a pattern sighting: a failed delivery with a
/// reply code (given, or implied by its status) of 4xx or 5xx; not a
/// complaint.
fn sighting(
    recipient: &ReportedRecipient,
    address: &EmailAddress,
    reason: Option<Reason>,
    now: chrono::DateTime<Utc>,
) -> Option<crate::store::Sighting> {
    if recipient.complaint {
        return None;
    }
    // A diagnostic that starts with its reply code gives the code a report
    // left out (a JSON bounce's `diagnostic` often does).
    let code = recipient.smtp_code.or_else(|| {
        recipient
            .diagnostic
            .as_deref()
            .and_then(|diagnostic| super::dsn::split_diagnostic(diagnostic).0)
    });
    let reply = evidence_reply(&ReportedRecipient {
        smtp_code: code,
        ..recipient.clone()
    })
    .filter(|reply| reply.code() >= 400)?;
    let enhanced = reply.enhanced().map(|code| code.to_string());
    let pattern = Pattern::of(reply.code(), enhanced.as_deref(), &reply.message());
    Some(patterns::sighting(
        patterns::bounce_provider(recipient.remote_mta.as_deref(), address.domain()),
        pattern,
        reason.is_some_and(patterns::is_sender_side),
        &address.key(),
        now,
    ))
}
