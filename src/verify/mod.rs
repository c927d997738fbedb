//! Email verification: the verdict taxonomy of DESIGN §2.

mod verdict;

pub(crate) use verdict::snake_case_enum;

pub use verdict::{Reason, Status, UnknownVariant};
