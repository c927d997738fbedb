//! The suppression list: addresses that must not be mailed again. Its
//! owner, [`SuppressionList`], makes every change to it; [`policy`] says
//! when a bounce suppresses; [`Cursor`] is the change feed's position.

mod cursor;
mod list;
pub mod policy;

pub use cursor::Cursor;
pub use list::{ImportEntry, Imported, SuppressionList};
pub use policy::SoftBouncePolicy;
