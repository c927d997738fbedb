//! The steps of requesting and confirming, around the statements each
//! backend writes in its own SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Commit, SqlBackend};
use crate::store::StoreResult;
use crate::store::confirmations::{
    Confirmation, ConfirmationLimits, Confirmed, NewConfirmation, Reserved,
};

/// Which requests a limit counts.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) enum Counted<'a> {
    Address(&'a str),
    Client(&'a str),
}

/// The statements of the confirmation steps.
#[async_trait]
pub(in crate::store) trait ConfirmationStatements: Send {
    /// Holds the confirmations' change sequence until the transaction ends
    /// (without taking a number), so that requests and confirmations are
    /// counted and ordered one at a time.
    async fn lock_confirmations(&mut self) -> StoreResult<()>;

    /// Takes the next number of the confirmations' change sequence.
    async fn next_confirmation_seq(&mut self) -> StoreResult<i64>;

    /// The request that confirmed an address, if any did.
    async fn confirmed_request(&mut self, address_key: &str) -> StoreResult<Option<Confirmation>>;

    /// How many requests `counted` made at or after `since`, and the
    /// oldest of their times.
    async fn requests_since(
        &mut self,
        counted: Counted<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)>;

    async fn insert_request(&mut self, request: &NewConfirmation) -> StoreResult<()>;

    /// A request and the key of its address.
    async fn request_by_id(&mut self, id: Uuid) -> StoreResult<Option<(Confirmation, String)>>;

    async fn mark_confirmed(&mut self, id: Uuid, seq: i64, now: DateTime<Utc>) -> StoreResult<()>;
}

/// When a limit of `allowed` requests in `window` lets the next one in:
/// `None` while under it.
fn limited_until(
    (count, oldest): (u64, Option<DateTime<Utc>>),
    allowed: u32,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    (count >= u64::from(allowed)).then(|| oldest.map_or(now, |oldest| oldest + window).max(now))
}

pub(in crate::store) async fn reserve_confirmation(
    store: &impl SqlBackend,
    request: &NewConfirmation,
    limits: &ConfirmationLimits,
) -> StoreResult<Reserved> {
    let now = request.requested_at;
    let mut tx = store.begin_write().await?;
    tx.lock_confirmations().await?;
    let answer = if let Some(confirmed) = tx.confirmed_request(&request.address_key).await? {
        Reserved::AlreadyConfirmed(confirmed)
    } else if let Some(retry_at) = limited_until(
        tx.requests_since(
            Counted::Address(&request.address_key),
            now - limits.address_window,
        )
        .await?,
        limits.per_address,
        limits.address_window,
        now,
    ) {
        Reserved::AddressLimited { retry_at }
    } else if let Some(retry_at) = limited_until(
        tx.requests_since(Counted::Client(&request.client), now - limits.client_window)
            .await?,
        limits.per_client,
        limits.client_window,
        now,
    ) {
        Reserved::ClientLimited { retry_at }
    } else {
        tx.insert_request(request).await?;
        Reserved::Created(Confirmation {
            id: request.id,
            email: request.email.clone(),
            redirect_url: request.redirect_url.clone(),
            metadata: request.metadata.clone(),
            requested_at: request.requested_at,
            expires_at: request.expires_at,
            confirmed_at: None,
            seq: None,
        })
    };
    if matches!(answer, Reserved::Created(_)) {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(answer)
}

pub(in crate::store) async fn confirm(
    store: &impl SqlBackend,
    id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<Confirmed> {
    let mut tx = store.begin_write().await?;
    tx.lock_confirmations().await?;
    let Some((request, address_key)) = tx.request_by_id(id).await? else {
        tx.rollback().await?;
        return Ok(Confirmed::Unknown);
    };
    if let Some(confirmed) = tx.confirmed_request(&address_key).await? {
        tx.rollback().await?;
        return Ok(Confirmed::Already(confirmed));
    }
    if now >= request.expires_at {
        tx.rollback().await?;
        return Ok(Confirmed::Expired(request));
    }
    let seq = tx.next_confirmation_seq().await?;
    tx.mark_confirmed(id, seq, now).await?;
    tx.commit().await?;
    Ok(Confirmed::Now(Confirmation {
        confirmed_at: Some(now),
        seq: Some(seq),
        ..request
    }))
}
