//! Signup confirmations on Postgres. Requests and confirmations lock the
//! single `confirmation_seq` row, so that every replica counts the limits
//! and takes sequence numbers one at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use super::PgStore;
use crate::store::StoreResult;
use crate::store::confirmations::{
    Confirmation, ConfirmationLimits, ConfirmationStore, Confirmed, NewConfirmation, Reserved,
};
use crate::store::shared;
use crate::store::shared::confirmations::{ConfirmationStatements, Counted};

/// The columns of a [`Confirmation`], in [`Row`]'s order.
macro_rules! columns {
    () => {
        "id, email, redirect_url, metadata, requested_at, expires_at, confirmed_at, seq"
    };
}

type Row = (
    Uuid,
    String,
    Option<String>,
    Option<serde_json::Value>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<i64>,
);

fn from_row(row: Row) -> Confirmation {
    let (id, email, redirect_url, metadata, requested_at, expires_at, confirmed_at, seq) = row;
    Confirmation {
        id,
        email,
        redirect_url,
        metadata,
        requested_at,
        expires_at,
        confirmed_at,
        seq,
    }
}

#[async_trait]
impl ConfirmationStatements for PgConnection {
    async fn lock_confirmations(&mut self) -> StoreResult<()> {
        sqlx::query("select last_seq from confirmation_seq for update")
            .execute(&mut *self)
            .await?;
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
             where address_key = $1 and seq is not null order by seq limit 1"
        ))
        .bind(address_key)
        .fetch_optional(&mut *self)
        .await?;
        Ok(row.map(from_row))
    }

    async fn requests_since(
        &mut self,
        counted: Counted<'_>,
        since: DateTime<Utc>,
    ) -> StoreResult<(u64, Option<DateTime<Utc>>)> {
        let (sql, value) = match counted {
            Counted::Address(key) => (
                "select count(*), min(requested_at) from confirmations \
                 where address_key = $1 and requested_at >= $2",
                key,
            ),
            Counted::Client(client) => (
                "select count(*), min(requested_at) from confirmations \
                 where client = $1 and requested_at >= $2",
                client,
            ),
        };
        let (count, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(sql)
            .bind(value)
            .bind(since)
            .fetch_one(&mut *self)
            .await?;
        Ok((u64::try_from(count).unwrap_or(0), oldest))
    }

    async fn insert_request(&mut self, request: &NewConfirmation) -> StoreResult<()> {
        sqlx::query(
            "insert into confirmations (id, address_key, email, redirect_url, metadata, client, \
                 requested_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(request.id)
        .bind(&request.address_key)
        .bind(&request.email)
        .bind(&request.redirect_url)
        .bind(&request.metadata)
        .bind(&request.client)
        .bind(request.requested_at)
        .bind(request.expires_at)
        .execute(&mut *self)
        .await?;
        Ok(())
    }

    async fn request_by_id(&mut self, id: Uuid) -> StoreResult<Option<(Confirmation, String)>> {
        let row: Option<(String,)> =
            sqlx::query_as("select address_key from confirmations where id = $1")
                .bind(id)
                .fetch_optional(&mut *self)
                .await?;
        let Some((address_key,)) = row else {
            return Ok(None);
        };
        let row: Row = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations where id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *self)
        .await?;
        Ok(Some((from_row(row), address_key)))
    }

    async fn mark_confirmed(&mut self, id: Uuid, seq: i64, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("update confirmations set confirmed_at = $2, seq = $3 where id = $1")
            .bind(id)
            .bind(now)
            .bind(seq)
            .execute(&mut *self)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ConfirmationStore for PgStore {
    async fn reserve_confirmation(
        &self,
        request: &NewConfirmation,
        limits: &ConfirmationLimits,
    ) -> StoreResult<Reserved> {
        shared::confirmations::reserve_confirmation(self, request, limits).await
    }

    async fn discard_confirmation(&self, id: Uuid) -> StoreResult<()> {
        // Only a request still pending: a confirmed one stays in the feed.
        sqlx::query("delete from confirmations where id = $1 and seq is null")
            .bind(id)
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
            " from confirmations where address_key = $1 \
             order by (seq is null), seq, requested_at desc limit 1"
        ))
        .bind(address_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_row))
    }

    async fn confirmation_changes(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Confirmation>> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from confirmations where seq > $1 order by seq limit $2"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }
}
