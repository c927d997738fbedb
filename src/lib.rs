//! mailvet: a self-hosted email verification and bounce suppression
//! service. See `docs/ARCHITECTURE.md` for how the parts fit together.

pub mod bounce;
pub mod check;
pub mod http;
pub mod settings;
pub mod startup;
pub mod store;
pub mod suppress;
pub mod telemetry;
pub mod verify;

pub use settings::{Cli, Command, Settings};
pub use startup::Application;
