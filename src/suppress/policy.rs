//! When a bounce puts an address on the suppression list.
//!
//! - A hard bounce or a complaint suppresses at once, with the reason its
//!   classification gave.
//! - Soft bounces suppress when `limit` of them (this one included) fall
//!   within `window`, as `soft_bounce_limit`.
//! - A live entry is never overwritten by a bounce: its first evidence
//!   stays.
//! - The entry's evidence is the report that suppressed it (for a soft
//!   bounce limit, the last soft bounce).
//!
//! The store applies these rules inside the transaction that records the
//! bounce, so that the decision and its write are one.

use crate::store::{BouncePlan, BounceRules, Evidence, NewBounce, NewSuppression, Suppression};
use crate::vocab::{BounceKind, SuppressionReason, SuppressionSource};

/// When repeated temporary bounces suppress an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBouncePolicy {
    /// Soft bounces within the window that suppress (the last one counts).
    pub limit: u32,
    pub window: chrono::Duration,
}

impl Default for SoftBouncePolicy {
    fn default() -> Self {
        SoftBouncePolicy {
            limit: 3,
            window: chrono::Duration::days(7),
        }
    }
}

impl BounceRules for SoftBouncePolicy {
    fn soft_window(&self) -> chrono::Duration {
        self.window
    }

    fn plan(
        &self,
        bounce: &NewBounce,
        live: Option<&Suppression>,
        soft_in_window: u64,
    ) -> BouncePlan {
        if live.is_some() {
            return if bounce.suppress_as.is_some() || bounce.event.kind == BounceKind::Soft {
                BouncePlan::AlreadySuppressed
            } else {
                BouncePlan::Nothing
            };
        }
        match (bounce.suppress_as, bounce.event.kind) {
            (Some(reason), _) => BouncePlan::Suppress(entry_for(bounce, reason)),
            (None, BounceKind::Soft) if soft_in_window >= u64::from(self.limit.max(1)) => {
                BouncePlan::Suppress(entry_for(bounce, SuppressionReason::SoftBounceLimit))
            }
            _ => BouncePlan::Nothing,
        }
    }
}

/// The suppression entry a bounce creates.
fn entry_for(bounce: &NewBounce, reason: SuppressionReason) -> NewSuppression {
    NewSuppression {
        address_key: bounce.event.address_key.clone(),
        email: bounce.event.email.clone(),
        reason,
        source: SuppressionSource::Bounce,
        evidence: Evidence::report(
            bounce.event.origin,
            &bounce.event.evidence,
            bounce.event.received_at,
        ),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::NewBounceEvent;
    use crate::vocab::{BounceOrigin, Diagnosis};

    fn bounce(kind: BounceKind, suppress_as: Option<SuppressionReason>) -> NewBounce {
        NewBounce {
            event: NewBounceEvent {
                address_key: "kim@example.test".into(),
                email: "kim@example.test".into(),
                kind,
                origin: BounceOrigin::Json,
                evidence: Diagnosis::default(),
                received_at: Utc::now(),
            },
            suppress_as,
        }
    }

    fn live() -> Suppression {
        Suppression {
            address_key: "kim@example.test".into(),
            email: "kim@example.test".into(),
            reason: SuppressionReason::Manual,
            source: SuppressionSource::Api,
            diagnosis: Diagnosis::default(),
            evidence: None,
            deleted: false,
            seq: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_bounce_suppresses_with_its_report_as_evidence() {
        let mut hard = bounce(BounceKind::Hard, Some(SuppressionReason::MailboxNotFound));
        hard.event.origin = BounceOrigin::Ses;
        hard.event.evidence = Diagnosis {
            smtp_code: Some(550),
            enhanced_code: Some("5.1.1".into()),
            diagnostic: Some("smtp; 550 5.1.1 user unknown".into()),
            mx_host: Some("mx.example.test".into()),
        };
        let BouncePlan::Suppress(entry) = SoftBouncePolicy::default().plan(&hard, None, 0) else {
            panic!("a hard bounce suppresses");
        };
        assert_eq!(entry.source, SuppressionSource::Bounce);
        assert_eq!(
            entry.evidence,
            Evidence::report(
                BounceOrigin::Ses,
                &hard.event.evidence,
                hard.event.received_at
            )
        );
        assert_eq!(entry.evidence.kind, crate::store::EvidenceKind::Dsn);
        assert_eq!(entry.evidence.origin, Some(BounceOrigin::Ses));
        assert_eq!(entry.evidence.diagnosis(), hard.event.evidence);
    }

    #[test]
    fn bounces_suppress_by_kind_and_never_overwrite_a_live_entry() {
        let policy = SoftBouncePolicy::default();
        let hard = bounce(BounceKind::Hard, Some(SuppressionReason::MailboxNotFound));
        let soft = bounce(BounceKind::Soft, None);
        let undetermined = bounce(BounceKind::Undetermined, None);
        let suppressed_as = |plan: BouncePlan| match plan {
            BouncePlan::Suppress(entry) => Some(entry.reason),
            _ => None,
        };

        assert_eq!(
            suppressed_as(policy.plan(&hard, None, 0)),
            Some(SuppressionReason::MailboxNotFound)
        );
        assert_eq!(policy.plan(&soft, None, 2), BouncePlan::Nothing);
        assert_eq!(
            suppressed_as(policy.plan(&soft, None, 3)),
            Some(SuppressionReason::SoftBounceLimit)
        );
        assert_eq!(policy.plan(&undetermined, None, 9), BouncePlan::Nothing);
        assert_eq!(
            policy.plan(&hard, Some(&live()), 0),
            BouncePlan::AlreadySuppressed
        );
        assert_eq!(
            policy.plan(&undetermined, Some(&live()), 0),
            BouncePlan::Nothing
        );
    }
}
