//! SMTP on the wire: replies and enhanced status codes (RFC 5321, RFC 3463),
//! and a client session that asks and never sends `DATA`, with TLS, directly
//! or through a SOCKS5 proxy. Used by
//! the prober and by bounce parsing; of mailvet's, depends only on `secret`.

mod proxy;
mod reply;
mod session;
mod tls;

pub use proxy::{ProxyError, ProxyUrlError, Socks5Proxy};
pub use reply::{EnhancedCode, ReplyError, ReplyLine, SmtpReply};
pub use session::{Extensions, Phase, Session, SessionConfig, SessionError};
pub use tls::probe_tls_config;
