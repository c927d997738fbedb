//! Signup confirmations on SQLite. One writer at a time (the store's write
//! turn) counts the limits and takes sequence numbers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;
use uuid::Uuid;

use super::{SqliteStore, millis};
use crate::store::confirmations::{
    Confirmation, ConfirmationLimits, ConfirmationStore, Confirmed, NewConfirmation, Reserved,
};
use crate::store::shared;
use crate::store::shared::confirmations::{ConfirmationStatements, Counted};
use crate::store::{StoreError, StoreResult};

/// The columns of a [`Confirmation`], in [`Row`]'s order.
macro_rules! columns {
    () => {
        "id, email, redirect_url, metadata, requested_at, expires_at, confirmed_at, seq"
    };
}

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("confirmation time {ms} is out of range")))
}

fn from_row(row: Row) -> StoreResult<Confirmation> {
    let (id, email, redirect_url, metadata, requested_at, expires_at, confirmed_at, seq) = row;
    Ok(Confirmation {
        id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("confirmation id `{id}`")))?,
        email,
        redirect_url,
        metadata: metadata
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|_| StoreError::Corrupt("confirmation metadata".into()))
            })
            .transpose()?,
        requested_at: time(requested_at)?,
        expires_at: time(expires_at)?,
        confirmed_at: confirmed_at.map(time).transpose()?,
        seq,
    })
}

#[async_trait]
impl ConfirmationStatements for SqliteConnection {
    async fn lock_confirmations(&mut self) -> StoreResult<()> {
        // The write turn already admits one writer at a time.
        Ok(())
    }

    async fn next_confirmation_seq(&mut self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "update confirmation_seq set last_seq = last_seq + 1 returning last_seq",
        )
        .fetch_one(&mut *self)
        .await?)
    }

    async fn confirmed_request(&mut self, address_key: &str) -> StoreResult<Option<Confirmation>> {
        let row: Option<Row> = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations \
             where address_key = ?1 and seq is not null order by seq limit 1"
        ))
        .bind(address_key)
        .fetch_optional(&mut *self)
        .await?;
        row.map(from_row).transpose()
    }

    async fn requests_since(
        &mut self,
        counted: Counted<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (sql, value) = match counted {
            Counted::Address(key) => (
                "select count(*), min(requested_at) from confirmations \
                 where address_key = ?1 and requested_at >= ?2",
                key,
            ),
            Counted::Client(client) => (
                "select count(*), min(requested_at) from confirmations \
                 where client = ?1 and requested_at >= ?2",
                client,
            ),
        };
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(sql)
            .bind(value)
            .bind(millis(since))
            .fetch_one(&mut *self)
            .await?;
        Ok((
            u64::try_from(count).unwrap_or(0),
            oldest.map(time).transpose()?,
        ))
    }

    async fn insert_request(&mut self, request: &NewConfirmation) -> StoreResult<()> {
        sqlx::query(
            "insert into confirmations (id, address_key, email, redirect_url, metadata, client, \
                 requested_at, expires_at) \
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(request.id.to_string())
        .bind(&request.address_key)
        .bind(&request.email)
        .bind(&request.redirect_url)
        .bind(request.metadata.as_ref().map(serde_json::Value::to_string))
        .bind(&request.client)
        .bind(millis(request.requested_at))
        .bind(millis(request.expires_at))
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn request_by_id(&mut self, id: Uuid) -> StoreResult<Option<(Confirmation, String)>> {
        let row: Option<(String,)> =
            sqlx::query_as("select address_key from confirmations where id = ?1")
                .bind(id.to_string())
                .fetch_optional(&mut *self)
                .await?;
        let Some((address_key,)) = row else {
            return Ok(None);
        };
        let row: Row = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations where id = ?1"
        ))
        .bind(id.to_string())
        .fetch_one(&mut *self)
        .await?;
        Ok(Some((from_row(row)?, address_key)))
    }

    async fn mark_confirmed(&mut self, id: Uuid, seq: i64, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("update confirmations set confirmed_at = ?2, seq = ?3 where id = ?1")
            .bind(id.to_string())
            .bind(millis(now))
            .bind(seq)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ConfirmationStore for SqliteStore {
    async fn reserve_confirmation(
        &self,
        request: &NewConfirmation,
        limits: &ConfirmationLimits,
    ) -> StoreResult<Reserved> {
        shared::confirmations::reserve_confirmation(self, request, limits).await
    }

    async fn discard_confirmation(&self, id: Uuid) -> StoreResult<()> {
        let _turn = self.write_turn().await;
        // Only a request still pending: a confirmed one stays in the feed.
        sqlx::query("delete from confirmations where id = ?1 and seq is null")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn confirm(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<Confirmed> {
        shared::confirmations::confirm(self, id, now).await
    }

    async fn confirmation_of(&self, address_key: &str) -> StoreResult<Option<Confirmation>> {
        // The confirming request first, else the latest one.
        let row: Option<Row> = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations where address_key = ?1 \
             order by (seq is null), seq, requested_at desc limit 1"
        ))
        .bind(address_key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(from_row).transpose()
    }

    async fn confirmation_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Confirmation>> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations where seq > ?1 order by seq limit ?2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(from_row).collect()
    }
}
