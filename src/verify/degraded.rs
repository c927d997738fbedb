//! Answers given without the database. A verification is worth answering
//! even when the database fails: the engine then works from the network
//! alone, and the answer says so.

use std::cell::Cell;

use crate::error::error_chain;
use crate::store::StoreError;

tokio::task_local! {
    /// Set when the store failed during the current verification.
    static STORE_TROUBLE: Cell<bool>;
}

/// An answer, and whether it was given without the database (no cache, no
/// suppression list) because the database failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub value: T,
    pub degraded: bool,
}

/// Runs `work`, noting any store failure inside it.
pub(super) async fn noting_store_trouble<T>(work: impl Future<Output = T>) -> (T, bool) {
    STORE_TROUBLE
        .scope(Cell::new(false), async move {
            let value = work.await;
            (value, STORE_TROUBLE.with(Cell::get))
        })
        .await
}

/// Logs a store failure and notes it for the current verification.
pub(super) fn warn_store(what: &str, err: &StoreError) {
    let _ = STORE_TROUBLE.try_with(|trouble| trouble.set(true));
    tracing::warn!(error = %error_chain(err), "{what} failed; answering without the database");
}
