//! The SMTP side of verification: replies and (soon) the probe client.

mod reply;

pub use reply::{EnhancedCode, ReplyError, ReplyLine, SmtpReply};
