//! Email verification: address syntax and the verdict taxonomy (DESIGN §2).

mod syntax;
mod verdict;

pub(crate) use verdict::snake_case_enum;

pub use syntax::{EmailAddress, SyntaxError};
pub use verdict::{Reason, Status, UnknownVariant};
