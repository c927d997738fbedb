//! Email verification: address syntax and the verdict taxonomy (DESIGN §2).

pub mod classify;
pub mod dns;
mod engine;
pub mod export;
pub mod guard;
pub mod lists;
pub mod memo;
pub mod probe;
pub mod result;
pub mod smtp;
mod syntax;
mod verdict;

pub(crate) use verdict::snake_case_enum;

pub use classify::{Stage, classify_reply};
pub use engine::{Answer, CacheTtl, Verifier, VerifierSettings};
pub use result::VerifyResult;
pub use smtp::SmtpReply;
pub use syntax::{EmailAddress, SyntaxError};
pub use verdict::{Reason, Status, UnknownVariant};
