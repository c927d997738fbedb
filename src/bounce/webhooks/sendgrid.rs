//! SendGrid's Event Webhook: a batch of events, a JSON array of objects.
//!
//! Each event's `event` says what happened and `email` names the
//! recipient. Read: `bounce` (its `type` and `reason`), `dropped` when the
//! `reason` says the address is dead, `deferred` (its `response`) and
//! `spamreport`, with the `status` of each; other events are skipped.

use super::{Object, Verdict, WebhookError, objects_of, parse_json, parse_status, wrong_type};
use crate::bounce::ReportedRecipient;
use crate::vocab::BounceKind;

/// Reads a SendGrid Event Webhook batch (a JSON array of events): bounces,
/// drops of dead addresses, deferrals and spam reports.
pub fn parse_sendgrid(body: &[u8]) -> Result<Vec<ReportedRecipient>, WebhookError> {
    let body = parse_json(body, "")?;
    let events = body
        .as_array()
        .ok_or_else(|| wrong_type(String::new(), "an array of events", &body))?;
    objects_of(events, "")?
        .iter()
        .filter_map(|event| sendgrid_event(event).transpose())
        .collect()
}

/// One SendGrid event, when it names a recipient worth recording.
fn sendgrid_event(event: &Object<'_>) -> Result<Option<ReportedRecipient>, WebhookError> {
    let (verdict, text) = match event.text("event")? {
        "bounce" => {
            let kind = match event.optional_text("type")? {
                None | Some("bounce") => BounceKind::Hard,
                // `blocked`: the receiving server refused the sender, not
                // the mailbox; newer types are no more certain.
                Some(_) => BounceKind::Undetermined,
            };
            (Verdict::Bounce(kind), event.optional_text("reason")?)
        }
        // Only these drop reasons are about the mailbox; the others
        // (unsubscribed, spam-reporting address, invalid SMTPAPI header …)
        // are about our list or our message.
        "dropped" => match event.optional_text("reason")? {
            Some(reason)
                if reason.eq_ignore_ascii_case("Bounced Address")
                    || reason.eq_ignore_ascii_case("Invalid") =>
            {
                (Verdict::Bounce(BounceKind::Hard), Some(reason))
            }
            _ => return Ok(None),
        },
        "deferred" => (
            Verdict::Bounce(BounceKind::Soft),
            event.optional_text("response")?,
        ),
        "spamreport" => (Verdict::Complaint, None),
        _ => return Ok(None),
    };
    let mut recipient = verdict.recipient(event.text("email")?, text);
    recipient.status = parse_status(event.optional_text("status")?).or(recipient.status);
    Ok(Some(recipient))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::webhooks::tests::{error_message, status};
    use proptest::prelude::*;

    // source: https://github.com/sendgrid/docs/blob/develop/content/docs/for-developers/tracking-events/event.md
    // (now https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event)
    #[test]
    fn sendgrid_bounces_dead_address_drops_deferrals_and_spam_reports_are_read_and_the_rest_skipped()
     {
        let found = parse_sendgrid(include_bytes!(
            "../../../tests/fixtures/webhooks/sendgrid-events.json"
        ))
        .expect("a readable SendGrid batch");
        let bounce = |email: &str, kind| ReportedRecipient {
            email: email.into(),
            status: status("5.0.0"),
            smtp_code: Some(500),
            diagnostic: Some("500 unknown recipient".into()),
            provider_kind: Some(kind),
            ..ReportedRecipient::default()
        };
        assert_eq!(
            found,
            vec![
                ReportedRecipient {
                    email: "deferred@example.test".into(),
                    smtp_code: Some(400),
                    diagnostic: Some("400 try again later".into()),
                    provider_kind: Some(BounceKind::Soft),
                    ..ReportedRecipient::default()
                },
                bounce("bounce@example.test", BounceKind::Hard),
                ReportedRecipient {
                    email: "dropped@example.test".into(),
                    status: status("5.0.0"),
                    diagnostic: Some("Bounced Address".into()),
                    provider_kind: Some(BounceKind::Hard),
                    ..ReportedRecipient::default()
                },
                ReportedRecipient {
                    email: "spamreport@example.test".into(),
                    complaint: true,
                    provider_kind: Some(BounceKind::Complaint),
                    ..ReportedRecipient::default()
                },
                bounce("typed-bounce@example.test", BounceKind::Hard),
                bounce("blocked@example.test", BounceKind::Undetermined),
            ]
        );
    }

    #[test]
    fn sendgrid_drops_count_only_when_the_address_is_dead() {
        let dropped = |reason: &str| {
            let body = serde_json::json!([{"email": "a@example.test", "event": "dropped", "reason": reason}]);
            parse_sendgrid(body.to_string().as_bytes()).expect("a readable batch")
        };
        assert_eq!(dropped("Invalid")[0].provider_kind, Some(BounceKind::Hard));
        for reason in [
            "Unsubscribed Address",
            "Spam Reporting Address",
            "Invalid SMTPAPI header",
            "Spam Content (if Spam Checker app is enabled)",
        ] {
            assert_eq!(dropped(reason), vec![], "{reason}");
        }
    }

    #[test]
    fn a_sendgrid_body_that_is_an_object_is_an_error() {
        let body = br#"{"email": "a@example.test", "event": "bounce"}"#;
        assert_eq!(
            error_message(parse_sendgrid(body)),
            "the body should be an array of events, not an object"
        );
    }

    #[test]
    fn sendgrid_events_without_an_address_are_errors_naming_the_event() {
        let body =
            br#"[{"event": "open"}, {"event": "bounce", "reason": "550 5.1.1 no such user"}]"#;
        assert_eq!(
            error_message(parse_sendgrid(body)),
            "`[1].email` is missing"
        );
        let body = br#"[{"event": "bounce", "email": "a@example.test", "status": 550}]"#;
        assert_eq!(
            error_message(parse_sendgrid(body)),
            "`[0].status` should be a string, not a number"
        );
    }

    proptest! {
        #[test]
        fn no_reply_text_makes_a_parser_panic(text in "\\PC{0,40}") {
            let body = serde_json::json!([{"event": "bounce", "email": "a@example.test", "reason": text}]);
            let found = parse_sendgrid(body.to_string().as_bytes());
            prop_assert!(found.is_ok());
        }
    }
}
