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
//!
//! Each provider has its own file (`ses.rs`, `sendgrid.rs`, `postmark.rs`,
//! `mailgun.rs`); this one holds what they share: the error type, the
//! verdict a provider gives, reply-text handling and the field-by-field JSON
//! reader.

mod mailgun;
mod postmark;
mod sendgrid;
mod ses;

pub use mailgun::parse_mailgun;
pub use postmark::parse_postmark;
pub use sendgrid::parse_sendgrid;
pub use ses::{SesNotice, parse_ses};

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

    pub(super) fn status(text: &str) -> Option<EnhancedCode> {
        Some(text.parse().expect("a valid status"))
    }

    pub(super) fn error_message(result: Result<impl std::fmt::Debug, WebhookError>) -> String {
        result.expect_err("an error").to_string()
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
    }
}
