//! Amazon SES bounce and complaint notifications, delivered through SNS or
//! posted bare.
//!
//! SNS sends a `Type`: a `SubscriptionConfirmation` (its `TopicArn` and
//! `SubscribeURL` are read) or a `Notification` whose `Message` holds the SES
//! notification as JSON text. An SES notification has a `notificationType`
//! (`eventType` for event publishing); of a `bounce`, the `bounceType`, the
//! `remoteMtaIp` or `reportingMTA`, and each of the `bouncedRecipients`'
//! `emailAddress`, `action`, `status` and `diagnosticCode` are read; of a
//! `complaint`, the `complaintFeedbackType` and each of the
//! `complainedRecipients`' `emailAddress`.

use super::{Object, Verdict, WebhookError, add_reply_text, bounced, parse_json, parse_status};
use crate::bounce::ReportedRecipient;
use crate::vocab::BounceKind;

/// What an Amazon SNS delivery (for SES) asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SesNotice {
    /// SNS `SubscriptionConfirmation`: the subscriber must GET
    /// `subscribe_url` to confirm.
    SubscriptionConfirmation {
        topic_arn: String,
        subscribe_url: String,
    },
    /// A bounce or complaint notification: its recipients.
    Recipients(Vec<ReportedRecipient>),
    /// Anything else SES/SNS sends (delivery notifications,
    /// `UnsubscribeConfirmation` …): acknowledged, nothing to record. The
    /// text says what it was.
    Ignored(String),
}

/// Reads an SNS message for an SES topic (`Type` `Notification`,
/// `SubscriptionConfirmation` …), or an SES notification posted without the
/// SNS envelope (`notificationType`, or `eventType` for event publishing).
pub fn parse_ses(body: &[u8]) -> Result<SesNotice, WebhookError> {
    let body = parse_json(body, "")?;
    let message = Object::new(&body, String::new())?;
    if message.has("Type") {
        sns_message(&message)
    } else if message.has("notificationType") || message.has("eventType") {
        ses_notification(&message)
    } else {
        Err(WebhookError::Unsupported(
            "the body is neither an SNS message (it has no `Type`) nor an SES notification \
             (it has no `notificationType` or `eventType`)"
                .to_owned(),
        ))
    }
}

/// An SNS message: a subscription to confirm, or a notification carrying an
/// SES notification as JSON text in `Message`.
fn sns_message(message: &Object<'_>) -> Result<SesNotice, WebhookError> {
    match message.text("Type")? {
        "SubscriptionConfirmation" => Ok(SesNotice::SubscriptionConfirmation {
            topic_arn: message.text("TopicArn")?.to_owned(),
            subscribe_url: message.text("SubscribeURL")?.to_owned(),
        }),
        "Notification" => {
            let notification = parse_json(message.text("Message")?.as_bytes(), "Message")?;
            ses_notification(&Object::new(&notification, "Message".to_owned())?)
        }
        other => Ok(SesNotice::Ignored(format!("an SNS {other} message"))),
    }
}

fn ses_notification(notification: &Object<'_>) -> Result<SesNotice, WebhookError> {
    let kind = match notification.optional_text("notificationType")? {
        Some(kind) => kind,
        None => notification.text("eventType")?,
    };
    match kind {
        "Bounce" => ses_bounce(&notification.object("bounce")?).map(SesNotice::Recipients),
        "Complaint" => ses_complaint(&notification.object("complaint")?).map(SesNotice::Recipients),
        other => Ok(SesNotice::Ignored(format!("an SES {other} notification"))),
    }
}

fn ses_bounce(bounce: &Object<'_>) -> Result<Vec<ReportedRecipient>, WebhookError> {
    let kind = match bounce.text("bounceType")? {
        "Permanent" => Some(BounceKind::Hard),
        "Transient" => Some(BounceKind::Soft),
        "Undetermined" => Some(BounceKind::Undetermined),
        _ => None,
    };
    let remote_mta = match bounce.optional_text("remoteMtaIp")? {
        Some(address) => Some(address.to_owned()),
        // `dns; mta.example.com` → `mta.example.com`.
        None => bounce.optional_text("reportingMTA")?.map(|mta| {
            mta.split_once(';')
                .map_or(mta, |(_, name)| name)
                .trim()
                .to_owned()
        }),
    };
    bounce
        .objects("bouncedRecipients")?
        .iter()
        .map(|entry| {
            let mut recipient = bounced(entry.text("emailAddress")?, kind);
            recipient.action = entry.optional_text("action")?.map(str::to_ascii_lowercase);
            recipient.status = parse_status(entry.optional_text("status")?);
            recipient.remote_mta.clone_from(&remote_mta);
            if let Some(diagnostic) = entry.optional_text("diagnosticCode")? {
                add_reply_text(&mut recipient, diagnostic);
            }
            Ok(recipient)
        })
        .collect()
}

fn ses_complaint(complaint: &Object<'_>) -> Result<Vec<ReportedRecipient>, WebhookError> {
    let feedback_type = complaint.optional_text("complaintFeedbackType")?;
    complaint
        .objects("complainedRecipients")?
        .iter()
        .map(|entry| Ok(Verdict::Complaint.recipient(entry.text("emailAddress")?, feedback_type)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::webhooks::tests::{error_message, status};

    fn ses_recipients(body: &[u8]) -> Vec<ReportedRecipient> {
        match parse_ses(body).expect("a readable SES body") {
            SesNotice::Recipients(recipients) => recipients,
            other => panic!("expected recipients, got {other:?}"),
        }
    }

    // source: https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html
    // ("Bounce notification with a DSN") in the envelope of
    // https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html
    #[test]
    fn a_permanent_ses_bounce_yields_hard_recipients_with_their_status() {
        let found = ses_recipients(include_bytes!(
            "../../../tests/fixtures/webhooks/ses-bounce-permanent.json"
        ));
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "jane@example.com".into(),
                action: Some("failed".into()),
                status: status("5.1.1"),
                smtp_code: Some(550),
                diagnostic: Some("550 5.1.1 <jane@example.com>... User".into()),
                remote_mta: Some("127.0.2.0".into()),
                complaint: false,
                provider_kind: Some(BounceKind::Hard),
            }]
        );
    }

    // source: https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html
    // ("Bounce record", made transient: see tests/fixtures/webhooks/README.md)
    #[test]
    fn a_transient_ses_bounce_event_posted_without_envelope_yields_soft_recipients() {
        let found = ses_recipients(include_bytes!(
            "../../../tests/fixtures/webhooks/ses-bounce-transient.json"
        ));
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "recipient@example.com".into(),
                action: Some("failed".into()),
                status: status("4.2.2"),
                smtp_code: Some(452),
                diagnostic: Some(
                    "452 4.2.2 The email account that you tried to reach is over quota".into()
                ),
                remote_mta: Some("mta.example.com".into()),
                complaint: false,
                provider_kind: Some(BounceKind::Soft),
            }]
        );
    }

    // source: https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html
    // ("Complaint notification with a feedback report"), in an SNS envelope
    #[test]
    fn an_ses_complaint_yields_complaints_with_the_feedback_type() {
        let found = ses_recipients(include_bytes!(
            "../../../tests/fixtures/webhooks/ses-complaint.json"
        ));
        assert_eq!(
            found,
            vec![ReportedRecipient {
                email: "richard@example.com".into(),
                diagnostic: Some("abuse".into()),
                complaint: true,
                provider_kind: Some(BounceKind::Complaint),
                ..ReportedRecipient::default()
            }]
        );
    }

    // source: https://docs.aws.amazon.com/sns/latest/dg/http-subscription-confirmation-json.html
    #[test]
    fn an_sns_subscription_confirmation_asks_for_its_subscribe_url() {
        let notice = parse_ses(include_bytes!(
            "../../../tests/fixtures/webhooks/ses-subscription-confirmation.json"
        ))
        .expect("a readable SNS message");
        assert_eq!(
            notice,
            SesNotice::SubscriptionConfirmation {
                topic_arn: "arn:aws:sns:us-west-2:123456789012:MyTopic".into(),
                subscribe_url: "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\
                    &TopicArn=arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37fb687f5d5\
                    1e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad0\
                    2428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7\
                    849e05798d2d2785c03b0879594eeac82c01f235d0e717736"
                    .into(),
            }
        );
    }

    // source: https://docs.aws.amazon.com/ses/latest/dg/notification-examples.html
    // ("Amazon SNS delivery notification example"), in an SNS envelope
    #[test]
    fn ses_delivery_notifications_are_acknowledged_and_ignored() {
        let notice = parse_ses(include_bytes!(
            "../../../tests/fixtures/webhooks/ses-delivery.json"
        ))
        .expect("a readable SNS message");
        assert_eq!(
            notice,
            SesNotice::Ignored("an SES Delivery notification".into())
        );
        let unsubscribed = br#"{"Type": "UnsubscribeConfirmation", "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic"}"#;
        assert!(matches!(parse_ses(unsubscribed), Ok(SesNotice::Ignored(_))));
    }

    #[test]
    fn an_ses_bounce_without_a_dsn_yields_bare_recipients_of_the_ses_verdict() {
        let body = br#"{"notificationType": "Bounce", "bounce": {"bounceType": "Undetermined",
            "bouncedRecipients": [{"emailAddress": "jane@example.com"}, {"emailAddress": "Richard@Example.com"}]}}"#;
        let bare = |email: &str| ReportedRecipient {
            email: email.into(),
            provider_kind: Some(BounceKind::Undetermined),
            ..ReportedRecipient::default()
        };
        assert_eq!(
            ses_recipients(body),
            vec![bare("jane@example.com"), bare("Richard@Example.com")]
        );
    }

    // source: https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html
    #[test]
    fn an_sns_notification_whose_message_is_not_json_is_an_error_naming_message() {
        let body = br#"{"Type" : "Notification", "MessageId" : "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn" : "arn:aws:sns:us-west-2:123456789012:MyTopic", "Subject" : "My First Message",
            "Message" : "Hello world!", "Timestamp" : "2012-05-02T00:54:06.655Z"}"#;
        let error = parse_ses(body).expect_err("an error");
        assert!(matches!(&error, WebhookError::NotJson { field, .. } if field == "Message"));
        assert!(error.to_string().starts_with("`Message` is not JSON: "));
    }

    #[test]
    fn an_ses_bounce_without_bounced_recipients_is_an_error_naming_the_field() {
        let message = r#"{"notificationType": "Bounce", "bounce": {"bounceType": "Permanent"}}"#;
        let body = serde_json::json!({"Type": "Notification", "Message": message}).to_string();
        assert_eq!(
            error_message(parse_ses(body.as_bytes())),
            "`Message.bounce.bouncedRecipients` is missing"
        );
    }

    #[test]
    fn ses_fields_of_the_wrong_type_are_errors_naming_them() {
        let body = br#"{"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
            "bouncedRecipients": [{"emailAddress": 42}]}}"#;
        assert_eq!(
            error_message(parse_ses(body)),
            "`bounce.bouncedRecipients[0].emailAddress` should be a string, not a number"
        );
        let body = br#"{"Type": "Notification", "Message": {"notificationType": "Bounce"}}"#;
        assert_eq!(
            error_message(parse_ses(body)),
            "`Message` should be a string, not an object"
        );
    }

    #[test]
    fn json_that_is_not_from_sns_or_ses_is_unsupported() {
        assert!(matches!(
            parse_ses(br#"{"event": "bounce"}"#),
            Err(WebhookError::Unsupported(_))
        ));
    }
}
