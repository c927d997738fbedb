//! Postmark's bounce and spam-complaint webhooks: one JSON object.
//!
//! `RecordType` (`Bounce` or `SpamComplaint`; older bounce webhooks have
//! none) and `Type` give the verdict, `Email` the recipient, and `Details`,
//! else `Description`, the explanation.

use super::{Object, Verdict, WebhookError, parse_json};
use crate::bounce::ReportedRecipient;
use crate::vocab::BounceKind;

/// Reads a Postmark bounce or spam-complaint webhook (one JSON object).
pub fn parse_postmark(body: &[u8]) -> Result<Vec<ReportedRecipient>, WebhookError> {
    let body = parse_json(body, "")?;
    let record = Object::new(&body, String::new())?;
    // Other records (Delivery, Open, Click …) say nothing about the mailbox;
    // bounce webhooks older than `RecordType` carry none and are read.
    if record
        .optional_text("RecordType")?
        .is_some_and(|kind| !matches!(kind, "Bounce" | "SpamComplaint"))
    {
        return Ok(Vec::new());
    }
    let verdict = match record.text("Type")? {
        "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated" => {
            Verdict::Bounce(BounceKind::Hard)
        }
        "SoftBounce" | "Transient" | "DnsError" => Verdict::Bounce(BounceKind::Soft),
        // The receiving server refused the sender, not the mailbox.
        "Blocked" => Verdict::Bounce(BounceKind::Undetermined),
        "SpamComplaint" | "SpamNotification" => Verdict::Complaint,
        // Auto-responders, (un)subscribe requests, challenges, open-relay
        // tests …: nothing about the mailbox.
        _ => return Ok(Vec::new()),
    };
    let email = record.text("Email")?;
    let details = match record.optional_text("Details")? {
        Some(details) => Some(details),
        None => record.optional_text("Description")?,
    };
    Ok(vec![verdict.recipient(email, details)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::webhooks::tests::{error_message, status};

    // source: https://postmarkapp.com/developer/webhooks/bounce-webhook
    #[test]
    fn a_postmark_hard_bounce_yields_a_hard_recipient_with_its_details() {
        let found = parse_postmark(include_bytes!(
            "../../../tests/fixtures/webhooks/postmark-hard-bounce.json"
        ))
        .expect("a readable Postmark webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "john@example.com".into(),
                diagnostic: Some("Test bounce details".into()),
                provider_kind: Some(BounceKind::Hard),
                ..ReportedRecipient::default()
            }]
        );
    }

    // source: https://postmarkapp.com/developer/webhooks/bounce-webhook, with the
    // SoftBounce type of https://postmarkapp.com/developer/api/bounce-api#bounce-types and
    // the details of https://postmarkapp.com/support/article/1159-how-to-fix-soft-bounces
    #[test]
    fn a_postmark_soft_bounce_yields_a_soft_recipient_with_the_codes_of_its_details() {
        let found = parse_postmark(include_bytes!(
            "../../../tests/fixtures/webhooks/postmark-soft-bounce.json"
        ))
        .expect("a readable Postmark webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "john@example.com".into(),
                status: status("4.2.2"),
                smtp_code: Some(452),
                diagnostic: Some(
                    "452 4.2.2 The email account that you tried to reach is over quota. \
                     Please direct the recipient to - gsmtp"
                        .into()
                ),
                provider_kind: Some(BounceKind::Soft),
                ..ReportedRecipient::default()
            }]
        );
    }

    // source: https://postmarkapp.com/developer/webhooks/spam-complaint-webhook
    #[test]
    fn a_postmark_spam_complaint_yields_a_complaint() {
        let found = parse_postmark(include_bytes!(
            "../../../tests/fixtures/webhooks/postmark-spam-complaint.json"
        ))
        .expect("a readable Postmark webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "john@example.com".into(),
                diagnostic: Some("Test spam complaint details".into()),
                complaint: true,
                provider_kind: Some(BounceKind::Complaint),
                ..ReportedRecipient::default()
            }]
        );
    }

    #[test]
    fn postmark_types_map_to_verdicts_and_those_not_about_the_mailbox_are_skipped() {
        let read = |record: &str, kind: &str, details: &str| {
            let body = serde_json::json!({"RecordType": record, "Type": kind, "Email": "a@example.test",
                "Description": "The description.", "Details": details});
            parse_postmark(body.to_string().as_bytes()).expect("a readable webhook")
        };
        let kind_of = |kind: &str| read("Bounce", kind, "")[0].provider_kind;
        assert_eq!(kind_of("BadEmailAddress"), Some(BounceKind::Hard));
        assert_eq!(kind_of("ManuallyDeactivated"), Some(BounceKind::Hard));
        assert_eq!(kind_of("Transient"), Some(BounceKind::Soft));
        assert_eq!(kind_of("DnsError"), Some(BounceKind::Soft));
        assert_eq!(kind_of("Blocked"), Some(BounceKind::Undetermined));
        assert!(read("Bounce", "SpamNotification", "")[0].complaint);
        // Empty details: the description explains.
        assert_eq!(
            read("Bounce", "HardBounce", "")[0].diagnostic.as_deref(),
            Some("The description.")
        );
        for skipped in [
            "AutoResponder",
            "Unsubscribe",
            "Subscribe",
            "ChallengeVerification",
            "OpenRelayTest",
        ] {
            assert_eq!(read("Bounce", skipped, "x"), vec![], "{skipped}");
        }
        assert_eq!(read("Delivery", "HardBounce", "x"), vec![]);
    }

    // source: https://postmarkapp.com/email-webhooks (a bounce webhook without RecordType)
    #[test]
    fn a_postmark_bounce_without_record_type_is_still_a_bounce() {
        let body = br#"{"ID": 42, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "Test bounce details", "Email": "john@example.com"}"#;
        let found = parse_postmark(body).expect("a readable webhook");
        assert_eq!(found[0].provider_kind, Some(BounceKind::Hard));
        assert_eq!(
            error_message(parse_postmark(
                br#"{"RecordType": "Bounce", "Type": "HardBounce"}"#
            )),
            "`Email` is missing"
        );
    }
}
