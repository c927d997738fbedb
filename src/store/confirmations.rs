//! What the store keeps for signup confirmations (double opt-in), and the
//! operations on it.
//!
//! A confirmation's life: `reserve_confirmation` counts the abuse limits
//! and, within them, records the request (state pending); the message is
//! sent, or, when the relay refuses it, `discard_confirmation` forgets the
//! request. `confirm` marks the address confirmed once, giving it a place
//! in the change feed that `confirmation_changes` reads.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::StoreResult;

/// A request for a confirmation message, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConfirmation {
    /// The id the signed link carries.
    pub id: Uuid,
    pub address_key: String,
    pub email: String,
    pub redirect_url: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// Who asked (see the migration): the per-client limit counts by it.
    pub client: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How many requests an address, and a client, may make in their windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmationLimits {
    pub per_address: u32,
    pub address_window: Duration,
    pub per_client: u32,
    pub client_window: Duration,
}

/// A confirmation request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    pub id: Uuid,
    pub email: String,
    pub redirect_url: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Its place in the change feed, once confirmed.
    pub seq: Option<i64>,
}

/// What became of a request for a confirmation message.
#[derive(Debug, Clone, PartialEq)]
pub enum Reserved {
    /// Recorded: the message may be sent.
    Created(Confirmation),
    /// The address is confirmed already (this confirmation); nothing was
    /// recorded.
    AlreadyConfirmed(Confirmation),
    /// Over the address's limit, until `retry_at`; nothing was recorded.
    AddressLimited { retry_at: DateTime<Utc> },
    /// Over the client's limit, until `retry_at`; nothing was recorded.
    ClientLimited { retry_at: DateTime<Utc> },
}

/// What following a confirmation link did.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// The address is confirmed now, by this link.
    Now(Confirmation),
    /// The address was confirmed before (by this link or another one);
    /// nothing changed. The confirmation that confirmed it.
    Already(Confirmation),
    /// The link's time ran out before it was followed; nothing changed.
    Expired(Confirmation),
    /// No such request (discarded, or never made).
    Unknown,
}

#[async_trait]
pub trait ConfirmationStore: Send + Sync {
    /// Records a request for a confirmation message unless the address is
    /// confirmed already or a limit is reached: requests of the address in
    /// the last `address_window`, and of the client in the last
    /// `client_window`, are counted. One request at a time is counted,
    /// whichever replica takes it.
    async fn reserve_confirmation(
        &self,
        request: &NewConfirmation,
        limits: &ConfirmationLimits,
    ) -> StoreResult<Reserved>;

    /// Forgets a request whose message could not be sent.
    async fn discard_confirmation(&self, id: Uuid) -> StoreResult<()>;

    /// Follows the link of request `id` at `now`: confirms its address,
    /// the first time, with the next change sequence.
    async fn confirm(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Confirmed>;

    /// The state of an address: the request that confirmed it, else its
    /// latest request; `None` when none was made.
    async fn confirmation_of(&self, address_key: &str) -> StoreResult<Option<Confirmation>>;

    /// Confirmations whose sequence comes after `after_seq`, in sequence
    /// order, at most `limit` of them.
    async fn confirmation_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Confirmation>>;
}
