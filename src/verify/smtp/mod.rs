//! The SMTP side of verification: replies, one session with a server, TLS.

mod reply;
mod session;
mod tls;

pub use reply::{EnhancedCode, ReplyError, ReplyLine, SmtpReply};
pub use session::{Extensions, Phase, Session, SessionConfig, SessionError};
pub use tls::probe_tls_config;
