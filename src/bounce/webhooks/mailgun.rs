//! Mailgun's webhooks: `{"signature": …, "event-data": …}`, or the bare
//! event data.
//!
//! Of the event data, `event` (`failed`, with its `severity`, or
//! `complained`), `recipient` and `reason` are read, and of its
//! `delivery-status` the `code`, `enhanced-code`, `mx-host`, `message` and
//! `description`; other events are skipped.

use super::{Object, Verdict, WebhookError, add_reply_text, bounced, parse_json, parse_status};
use crate::bounce::ReportedRecipient;
use crate::vocab::BounceKind;

/// Reads a Mailgun webhook, `{"signature": …, "event-data": …}` or the bare
/// event data: `failed` and `complained` events.
pub fn parse_mailgun(body: &[u8]) -> Result<Vec<ReportedRecipient>, WebhookError> {
    let body = parse_json(body, "")?;
    let root = Object::new(&body, String::new())?;
    let event = if root.has("event-data") {
        root.object("event-data")?
    } else if root.has("event") {
        root
    } else {
        return Err(WebhookError::Missing("event-data".to_owned()));
    };
    let kind = match event.text("event")? {
        "failed" => match event.optional_text("severity")? {
            Some("permanent") => Some(BounceKind::Hard),
            Some("temporary") => Some(BounceKind::Soft),
            _ => None,
        },
        "complained" => {
            return Ok(vec![
                Verdict::Complaint.recipient(event.text("recipient")?, None),
            ]);
        }
        _ => return Ok(Vec::new()),
    };
    let mut recipient = bounced(event.text("recipient")?, kind);
    let (mut message, mut description) = (None, None);
    if let Some(delivery) = event.optional_object("delivery-status")? {
        recipient.smtp_code = delivery
            .optional_integer("code")?
            .and_then(|code| u16::try_from(code).ok())
            .filter(|code| (200..=599).contains(code));
        recipient.status = parse_status(delivery.optional_text("enhanced-code")?);
        recipient.remote_mta = delivery.optional_text("mx-host")?.map(str::to_owned);
        message = delivery.optional_text("message")?;
        description = delivery.optional_text("description")?;
    }
    // Without the server's reply, Mailgun's reason (`suppress-bounce`,
    // `old` …) says why nothing was delivered.
    let diagnostic = match (message, description, event.optional_text("reason")?) {
        (Some(message), _, _) => Some(message.to_owned()),
        (None, Some(description), Some(reason)) => Some(format!("{description} ({reason})")),
        (None, description, reason) => description.or(reason).map(str::to_owned),
    };
    if let Some(diagnostic) = diagnostic {
        add_reply_text(&mut recipient, &diagnostic);
    }
    Ok(vec![recipient])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::webhooks::tests::{error_message, status};

    // source: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
    // ("Permanent Failed Event") in the signed envelope of
    // https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
    #[test]
    fn a_permanent_mailgun_failure_yields_a_hard_recipient_with_the_servers_reply() {
        let found = parse_mailgun(include_bytes!(
            "../../../tests/fixtures/webhooks/mailgun-failed-permanent.json"
        ))
        .expect("a readable Mailgun webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "badrecipient@example.test".into(),
                status: status("5.5.0"),
                smtp_code: Some(550),
                diagnostic: Some(
                    "5.5.0 Requested action not taken: mailbox unavailable (S2017062302). \
                     [BN3PEPF0000B36D.namprd21.prod.outlook.com 2026-02-12T17:42:55.527Z \
                     08DE657A58651558]"
                        .into()
                ),
                remote_mta: Some("802679870.pamx1.hotmail.com".into()),
                provider_kind: Some(BounceKind::Hard),
                ..ReportedRecipient::default()
            }]
        );
    }

    // source: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
    // ("Temporary Failed Event", bare event data)
    #[test]
    fn a_temporary_mailgun_failure_yields_a_soft_recipient() {
        let found = parse_mailgun(include_bytes!(
            "../../../tests/fixtures/webhooks/mailgun-failed-temporary.json"
        ))
        .expect("a readable Mailgun webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "tempfailrecipient@example.test".into(),
                smtp_code: Some(421),
                diagnostic: Some(
                    "Your IP (161.38.194.10) is temporary blacklisted by an anti-troyan rule, \
                     retry later and/or visit http://example.test/"
                        .into()
                ),
                remote_mta: Some("mx1.example.test".into()),
                provider_kind: Some(BounceKind::Soft),
                ..ReportedRecipient::default()
            }]
        );
    }

    // source: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
    // ("Spam Complaint Event") in the signed envelope
    #[test]
    fn a_mailgun_complaint_yields_a_complaint() {
        let found = parse_mailgun(include_bytes!(
            "../../../tests/fixtures/webhooks/mailgun-complained.json"
        ))
        .expect("a readable Mailgun webhook");
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "recipient@example.test".into(),
                complaint: true,
                provider_kind: Some(BounceKind::Complaint),
                ..ReportedRecipient::default()
            }]
        );
    }

    #[test]
    fn a_mailgun_suppressed_send_keeps_the_reason_and_no_pseudo_smtp_code() {
        let body = br#"{"event-data": {"event": "failed", "severity": "permanent", "reason": "suppress-bounce",
            "recipient": "alice@example.test", "delivery-status": {"attempt-no": 1, "message": "", "code": 605,
            "enhanced-code": "", "description": "Not delivering to previously bounced address", "session-seconds": 0}}}"#;
        assert_eq!(
            parse_mailgun(body).expect("a readable webhook"),
            vec![ReportedRecipient {
                email: "alice@example.test".into(),
                diagnostic: Some(
                    "Not delivering to previously bounced address (suppress-bounce)".into()
                ),
                provider_kind: Some(BounceKind::Hard),
                ..ReportedRecipient::default()
            }]
        );
    }

    #[test]
    fn other_mailgun_events_are_skipped_and_malformed_ones_are_errors() {
        let delivered = br#"{"event-data": {"event": "delivered", "recipient": "a@example.test"}}"#;
        assert_eq!(parse_mailgun(delivered), Ok(vec![]));
        let body = br#"{"event-data": {"event": "failed", "recipient": "a@example.test",
            "delivery-status": {"code": "550"}}}"#;
        assert_eq!(
            error_message(parse_mailgun(body)),
            "`event-data.delivery-status.code` should be an integer, not a string"
        );
        assert_eq!(
            error_message(parse_mailgun(br#"{"signature": {}}"#)),
            "`event-data` is missing"
        );
    }
}
