//! The verification engine. The pipeline (`engine.rs`) gathers evidence —
//! local lists (`lists.rs`), DNS (`dns.rs`) and the suggestions it backs
//! (`suggest.rs`), the SMTP probe (`probe.rs`,
//! over the session pool in `hosts.rs`, within the budget of `budget.rs`)
//! — and one pure function (`verdict.rs`, reading replies with
//! `classify.rs`) turns it into a verdict, which `record.rs` keeps.

mod budget;
pub mod classify;
mod cluster;
mod degraded;
pub mod dns;
pub mod egress;
mod engine;
pub mod evidence;
pub mod export;
pub mod guard;
pub mod health;
mod hosts;
pub mod lists;
pub mod memo;
pub mod probe;
mod record;
pub mod resolver_watch;
pub mod result;
pub mod suggest;
pub mod verdict;

pub use budget::Requester;
pub use classify::classify_reply;
pub use degraded::Answer;
pub use engine::{Verifier, VerifierSettings};
pub use evidence::Stage;
pub use record::CacheTtl;
pub use result::VerifyResult;
