//! mailvet: a self-hosted email verification and bounce suppression
//! service. See `docs/ARCHITECTURE.md` for how the parts fit together.
//!
//! Modules, bottom to top (a module uses only those below it):
//! 1. the vocabulary and plain helpers, which use nothing above them:
//!    [`vocab`], [`address`], [`smtp`] (the wire protocol), [`error`],
//!    [`secret`], [`rfc3339`], [`spreadsheet`], [`telemetry`], [`tls`],
//!    [`token`] (signed verdict tokens);
//! 2. persistence, [`store`];
//! 3. the suppression list and its owner, [`suppress`]; bounce patterns
//!    (rejections grouped by provider and reply), [`patterns`];
//! 4. the verification engine, [`verify`];
//! 5. reading and recording bounce reports, [`bounce`];
//! 6. guarded outbound HTTP, [`outbound`];
//! 7. bulk verification, [`jobs`];
//! 8. the API, [`http`];
//! 9. the command line and the service: [`settings`], [`preflight`] (start-up
//!    warnings), [`startup`], [`check`], [`doctor`].

pub mod address;
pub mod bounce;
pub mod check;
pub mod confirm;
pub mod doctor;
pub mod error;
pub mod http;
pub mod jobs;
pub mod outbound;
pub mod patterns;
pub mod preflight;
pub mod rfc3339;
pub mod secret;
pub mod settings;
pub mod smtp;
pub mod spreadsheet;
pub mod startup;
pub mod store;
pub mod suppress;
pub mod telemetry;
#[cfg(test)]
mod test_log;
pub mod tls;
pub mod token;
pub mod verify;
pub mod vocab;

pub use settings::{Cli, Command, Settings};
pub use startup::Application;
