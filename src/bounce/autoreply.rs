//! Automatic replies (RFC 3834): out-of-office and vacation notices. They
//! bounce nothing; they show that their sender's mailbox is alive, and are
//! reported with the action `auto-replied`, which is never a bounce.

use mail_parser::Message;

use super::ReportedRecipient;

/// Whether a message is an automatic reply (RFC 3834: an out-of-office
/// notice, a vacation message), which shows that its sender's mailbox is
/// alive. Mailer daemons mark their bounces `auto-replied` too, so those
/// are left out.
pub fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|value| value.trim().to_ascii_lowercase())
    };
    let marked = header("Auto-Submitted").is_some_and(|value| value.starts_with("auto-replied"))
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Auto-Response-Suppress").is_some_and(|_| subject_says_auto_reply(message));
    let from_daemon = message.header_raw("From").is_some_and(|from| {
        let from = from.to_ascii_lowercase();
        [
            "mailer-daemon",
            "postmaster",
            "mail delivery",
            "mail.delivery",
        ]
        .iter()
        .any(|daemon| from.contains(daemon))
    });
    let subject = message.subject().unwrap_or_default().to_lowercase();
    let says_failure = [
        "error",
        "fail",
        "undeliver",
        "undelivered",
        "delivery",
        "returned",
        "rejected",
        "bounce",
        "not delivered",
    ]
    .iter()
    .any(|word| subject.contains(word));
    (marked || subject_says_auto_reply(message))
        && !from_daemon
        && !says_failure
        && message.header_raw("X-Failed-Recipients").is_none()
}

fn subject_says_auto_reply(message: &Message<'_>) -> bool {
    let subject = message.subject().unwrap_or_default().to_lowercase();
    [
        "auto:",
        "automatic reply",
        "auto reply",
        "auto-reply",
        "autoreply",
        "autorespon",
        "out of office",
        "out of the office",
    ]
    .iter()
    .any(|marker| subject.contains(marker))
}

/// The address in the `From` header, lower case.
fn sender(message: &Message<'_>) -> Option<String> {
    message
        .from()
        .and_then(|from| from.first())
        .and_then(|address| address.address())
        .map(str::to_ascii_lowercase)
}

/// The sender of an automatic reply: a mailbox that answered.
pub fn recipients(message: &Message<'_>) -> Vec<ReportedRecipient> {
    sender(message)
        .filter(|email| email.contains('@'))
        .map(|email| ReportedRecipient {
            email,
            action: Some("auto-replied".to_owned()),
            diagnostic: message.subject().map(str::to_owned),
            ..ReportedRecipient::default()
        })
        .into_iter()
        .collect()
}
