//! ESP webhooks: Amazon SES (through SNS), SendGrid, Postmark, Mailgun.
//!
//! Each parser reads one webhook body into the [`ReportedRecipient`]s it
//! reports, keeping the provider's own verdict in `provider_kind`; the
//! recipients are classified later, like those of any other report. Events
//! that say nothing about a mailbox (deliveries, opens, clicks,
//! unsubscribes …) yield no recipient.
//!
//! Bodies come from the network, so no type is taken on trust: a field of
//! the wrong type is an error naming the field (an optional field may be
//! absent or null), and no list longer than [`MAX_RECIPIENTS`] is read.
//! Authenticating the sender (SNS signatures, Mailgun's HMAC, SendGrid's
//! signed webhook) is the caller's business.

use serde_json::{Map, Value};

use super::dsn::split_diagnostic;
use super::{BounceKind, ReportedRecipient};
use crate::smtp::EnhancedCode;

/// The most entries read from one list of a body: the recipients of an SES
/// notification, the events of a SendGrid batch (each names at most one
/// recipient).
pub const MAX_RECIPIENTS: usize = 10_000;

/// Why a webhook body cannot be read. The message is for the operator who
/// configured the webhook: it names the field that is missing or has the
/// wrong type, by its path in the body (`bounce.bouncedRecipients[0]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is empty")]
    Empty,
    /// The body, or a field holding JSON text (SNS `Message`), is not JSON.
    #[error("{} is not JSON: {reason}", describe(.field))]
    NotJson { field: String, reason: String },
    /// A required field is absent or null.
    #[error("{} is missing", describe(.0))]
    Missing(String),
    #[error("{} should be {expected}, not {found}", describe(.field))]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "{} holds {count} entries, more than the {max} read from one body",
        describe(.field),
        max = MAX_RECIPIENTS
    )]
    TooMany { field: String, count: usize },
    /// JSON, but not what this provider sends.
    #[error("{0}")]
    Unsupported(String),
}

/// A field's path as an error message names it; the empty path is the body.
fn describe(path: &str) -> String {
    if path.is_empty() {
        "the body".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn wrong_type(field: String, expected: &'static str, found: &Value) -> WebhookError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    WebhookError::WrongType {
        field,
        expected,
        found,
    }
}

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

/// What a provider says of a recipient.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    Bounce(BounceKind),
    Complaint,
}

impl Verdict {
    /// The recipient, with the provider's explanation: a bounce's reply
    /// text, a complaint's feedback type or description.
    fn recipient(self, email: &str, text: Option<&str>) -> ReportedRecipient {
        match self {
            Verdict::Bounce(kind) => {
                let mut recipient = bounced(email, Some(kind));
                if let Some(text) = text {
                    add_reply_text(&mut recipient, text);
                }
                recipient
            }
            Verdict::Complaint => ReportedRecipient {
                email: email.to_owned(),
                diagnostic: text.map(str::to_owned),
                complaint: true,
                provider_kind: Some(BounceKind::Complaint),
                ..ReportedRecipient::default()
            },
        }
    }
}

fn bounced(email: &str, kind: Option<BounceKind>) -> ReportedRecipient {
    ReportedRecipient {
        email: email.to_owned(),
        provider_kind: kind,
        ..ReportedRecipient::default()
    }
}

/// Keeps a reply text (`smtp; 550 5.1.1 user unknown`, `5.1.1 …`, `Bounced
/// Address`) as the diagnostic, without its `smtp;` type, and takes the
/// SMTP code and enhanced status it starts with unless they are known.
fn add_reply_text(recipient: &mut ReportedRecipient, text: &str) {
    let (code, status, text) = split_diagnostic(text);
    recipient.smtp_code = recipient.smtp_code.or(code);
    recipient.status = recipient.status.or(status);
    recipient.diagnostic = Some(text);
}

/// An RFC 3463 status given in a field of its own (`5.1.1`); one that does
/// not parse is no status.
fn parse_status(text: Option<&str>) -> Option<EnhancedCode> {
    text?.split_whitespace().next()?.parse().ok()
}

/// Parses JSON text; `field` names it in errors (empty for the body).
fn parse_json(text: &[u8], field: &str) -> Result<Value, WebhookError> {
    if field.is_empty() && text.trim_ascii().is_empty() {
        return Err(WebhookError::Empty);
    }
    serde_json::from_slice(text).map_err(|err| WebhookError::NotJson {
        field: field.to_owned(),
        reason: err.to_string(),
    })
}

/// The objects of a JSON array at `path`, at most [`MAX_RECIPIENTS`].
fn objects_of<'a>(items: &'a [Value], path: &str) -> Result<Vec<Object<'a>>, WebhookError> {
    if items.len() > MAX_RECIPIENTS {
        return Err(WebhookError::TooMany {
            field: path.to_owned(),
            count: items.len(),
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| Object::new(item, format!("{path}[{index}]")))
        .collect()
}

/// A JSON object read field by field; each error names the field's path.
struct Object<'a> {
    fields: &'a Map<String, Value>,
    /// Where the object sits in the body (`bounce`, `[3]`); empty at the top.
    path: String,
}

impl<'a> Object<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self, WebhookError> {
        match value {
            Value::Object(fields) => Ok(Object { fields, path }),
            other => Err(wrong_type(path, "an object", other)),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn has(&self, key: &str) -> bool {
        self.fields.get(key).is_some_and(|value| !value.is_null())
    }

    /// A field that `read` accepts, or `None` when it is absent or null.
    fn optional<T>(
        &self,
        key: &str,
        expected: &'static str,
        read: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, WebhookError> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => read(value)
                .map(Some)
                .ok_or_else(|| wrong_type(self.path_of(key), expected, value)),
        }
    }

    fn required<T>(
        &self,
        key: &str,
        expected: &'static str,
        read: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<T, WebhookError> {
        self.optional(key, expected, read)?
            .ok_or_else(|| WebhookError::Missing(self.path_of(key)))
    }

    fn text(&self, key: &str) -> Result<&'a str, WebhookError> {
        self.required(key, "a string", Value::as_str)
    }

    /// A string field; a blank one counts as absent.
    fn optional_text(&self, key: &str) -> Result<Option<&'a str>, WebhookError> {
        let text = self.optional(key, "a string", Value::as_str)?;
        Ok(text.filter(|text| !text.trim().is_empty()))
    }

    fn optional_integer(&self, key: &str) -> Result<Option<i64>, WebhookError> {
        self.optional(key, "an integer", Value::as_i64)
    }

    fn object(&self, key: &str) -> Result<Object<'a>, WebhookError> {
        Object::new(self.required(key, "an object", Some)?, self.path_of(key))
    }

    fn optional_object(&self, key: &str) -> Result<Option<Object<'a>>, WebhookError> {
        self.optional(key, "an object", Some)?
            .map(|value| Object::new(value, self.path_of(key)))
            .transpose()
    }

    /// A required array of objects, at most [`MAX_RECIPIENTS`] of them.
    fn objects(&self, key: &str) -> Result<Vec<Object<'a>>, WebhookError> {
        let items = self.required(key, "an array", Value::as_array)?;
        objects_of(items, &self.path_of(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(text: &str) -> Option<EnhancedCode> {
        Some(text.parse().expect("a valid status"))
    }

    fn ses_recipients(body: &[u8]) -> Vec<ReportedRecipient> {
        match parse_ses(body).expect("a readable SES body") {
            SesNotice::Recipients(recipients) => recipients,
            other => panic!("expected recipients, got {other:?}"),
        }
    }

    fn error_message(result: Result<impl std::fmt::Debug, WebhookError>) -> String {
        result.expect_err("an error").to_string()
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

    #[test]
    fn a_body_listing_more_than_the_most_recipients_is_an_error() {
        let events = vec![
            serde_json::json!({"event": "bounce", "email": "a@example.test"});
            MAX_RECIPIENTS + 1
        ];
        let body = serde_json::to_vec(&events).expect("serialisable");
        assert_eq!(
            parse_sendgrid(&body),
            Err(WebhookError::TooMany {
                field: String::new(),
                count: MAX_RECIPIENTS + 1
            })
        );
        let recipients =
            vec![serde_json::json!({"emailAddress": "a@example.test"}); MAX_RECIPIENTS + 1];
        let body = serde_json::json!({"notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": recipients}});
        assert!(
            error_message(parse_ses(body.to_string().as_bytes()))
                .starts_with("`bounce.bouncedRecipients` holds 10001 entries")
        );
    }

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

    #[test]
    fn empty_and_non_json_bodies_are_errors_for_every_provider() {
        type Parse = fn(&[u8]) -> Result<(), WebhookError>;
        let parsers: [(&str, Parse); 4] = [
            ("ses", |body| parse_ses(body).map(drop)),
            ("sendgrid", |body| parse_sendgrid(body).map(drop)),
            ("postmark", |body| parse_postmark(body).map(drop)),
            ("mailgun", |body| parse_mailgun(body).map(drop)),
        ];
        for (name, parse) in parsers {
            assert_eq!(parse(b""), Err(WebhookError::Empty), "{name}");
            assert_eq!(parse(b" \r\n"), Err(WebhookError::Empty), "{name}");
            let error = parse(b"event=failed&recipient=a%40example.test").expect_err("an error");
            assert!(
                error.to_string().starts_with("the body is not JSON: "),
                "{name}: {error}"
            );
        }
    }

    proptest! {
        #[test]
        fn no_body_makes_a_parser_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_ses(&body);
            let _ = parse_sendgrid(&body);
            let _ = parse_postmark(&body);
            let _ = parse_mailgun(&body);
        }

        #[test]
        fn no_reply_text_makes_a_parser_panic(text in "\\PC{0,40}") {
            let body = serde_json::json!([{"event": "bounce", "email": "a@example.test", "reason": text}]);
            let found = parse_sendgrid(body.to_string().as_bytes());
            prop_assert!(found.is_ok());
        }
    }
}
