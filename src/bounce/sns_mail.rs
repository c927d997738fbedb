//! Amazon SES notifications delivered by email: an SNS topic with an email
//! subscription sends each notification as a plain-text message whose body
//! is the SNS JSON (`"Type" : "Notification"`, the SES notification as JSON
//! text in `Message`). Bounces and complaints are read as the SES webhook
//! reads them; a delivery notification names recipients that were
//! delivered to.

use serde_json::Value;

use super::ReportedRecipient;
use super::webhooks::{SesNotice, parse_ses};

/// The recipients of an SES notification sent by email, if the body is
/// one.
pub fn recipients(body: &str) -> Option<Vec<ReportedRecipient>> {
    let start = body.find('{')?;
    // SNS appends a signature ("--" and an unsubscribe link) after the JSON.
    let json = &body[start..];
    let json = json.find("\n--").map_or(json, |end| &json[..end]);
    let json = &json[..=json.rfind('}')?];
    // Mail transport may fold long lines: a line break and a space.
    let unfolded;
    let json = if serde_json::from_str::<Value>(json).is_ok() {
        json
    } else {
        unfolded = json.replace("\r\n ", "").replace("\n ", "");
        unfolded.as_str()
    };
    match parse_ses(json.as_bytes()) {
        Ok(SesNotice::Recipients(found)) => Some(found),
        Ok(SesNotice::Ignored(_)) => Some(delivered(json)),
        Ok(SesNotice::SubscriptionConfirmation { .. }) | Err(_) => None,
    }
}

/// The recipients of an SES `Delivery` notification.
fn delivered(json: &str) -> Vec<ReportedRecipient> {
    let Ok(envelope) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let notification = match envelope.get("Message").and_then(Value::as_str) {
        Some(inner) => serde_json::from_str::<Value>(inner).unwrap_or(Value::Null),
        None => envelope,
    };
    let kind = notification
        .get("notificationType")
        .or_else(|| notification.get("eventType"))
        .and_then(Value::as_str);
    if kind != Some("Delivery") {
        return Vec::new();
    }
    notification["delivery"]["recipients"]
        .as_array()
        .map(|recipients| {
            recipients
                .iter()
                .filter_map(Value::as_str)
                .take(super::webhooks::MAX_RECIPIENTS)
                .map(|email| ReportedRecipient {
                    email: email.to_owned(),
                    action: Some("delivered".to_owned()),
                    diagnostic: notification["delivery"]["smtpResponse"]
                        .as_str()
                        .map(str::to_owned),
                    ..ReportedRecipient::default()
                })
                .collect()
        })
        .unwrap_or_default()
}
