//! The shared state of the replicas on one Postgres database: the SQL
//! behind [`Coordination`]. The session claim is one call of the
//! `mailvet_claim_session` function (migration `20261130000001`), so that
//! a session costs one round trip whatever it claims.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::StoreResult;
use crate::store::cluster::{ClusterEvent, Coordination, SessionAsk, SessionGrant};

/// Channels the replicas notify on.
const SUPPRESSIONS: &str = "mailvet_suppressions";
const SLOTS: &str = "mailvet_slots";
const VERIFICATIONS: &str = "mailvet_verifications";

/// How long the listener waits before connecting again after a failure;
/// doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PgCoordination {
    pool: PgPool,
    holder: Uuid,
}

impl PgCoordination {
    pub fn new(pool: PgPool) -> Self {
        PgCoordination {
            pool,
            holder: Uuid::new_v4(),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Coordination for PgCoordination {
    async fn claim_session(&self, ask: &SessionAsk<'_>) -> StoreResult<SessionGrant> {
        let keys: Vec<&str> = ask
            .budget
            .iter()
            .map(|bucket| bucket.key.as_str())
            .collect();
        let emissions: Vec<f64> = ask
            .budget
            .iter()
            .map(|bucket| bucket.emission.as_secs_f64() * 1000.0)
            .collect();
        let (granted, wait_ms, refused, catch_all): (bool, i64, i32, Option<bool>) =
            sqlx::query_as(
                "select granted, budget_wait_ms, refused_bucket, catch_all
               from mailvet_claim_session($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(self.holder)
            .bind(ask.lease_id)
            .bind(ask.scopes)
            .bind(i32::try_from(ask.cap).unwrap_or(i32::MAX))
            .bind(millis(ask.lease))
            .bind(&keys)
            .bind(&emissions)
            .bind(ask.domain)
            .fetch_one(&self.pool)
            .await?;
        Ok(SessionGrant {
            granted,
            budget_refused: (wait_ms > 0).then(|| {
                let bucket = usize::try_from(refused).unwrap_or(1).saturating_sub(1);
                (bucket, Duration::from_millis(wait_ms.unsigned_abs()))
            }),
            catch_all,
        })
    }

    async fn release_sessions(&self, lease_ids: &[i64]) -> StoreResult<()> {
        if lease_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "with released as (
                 delete from session_leases
                  where holder = $1 and lease_id = any($2)
              returning scope)
             select pg_notify($3, scope) from (select distinct scope from released) s",
        )
        .bind(self.holder)
        .bind(lease_ids)
        .bind(SLOTS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn renew(
        &self,
        lease: Duration,
        lease_ids: &[i64],
        address_keys: &[String],
    ) -> StoreResult<u64> {
        if lease_ids.is_empty() && address_keys.is_empty() {
            return Ok(0);
        }
        let (renewed,): (i64,) = sqlx::query_as(
            "with sessions as (
                 update session_leases
                    set expires_at = now() + make_interval(secs => $2 / 1000.0)
                  where holder = $1 and lease_id = any($3)
              returning 1),
             claims as (
                 update verifications_in_flight
                    set expires_at = now() + make_interval(secs => $2 / 1000.0)
                  where holder = $1 and address_key = any($4)
              returning 1)
             select (select count(*) from sessions) + (select count(*) from claims)",
        )
        .bind(self.holder)
        .bind(millis(lease))
        .bind(lease_ids)
        .bind(address_keys)
        .fetch_one(&self.pool)
        .await?;
        Ok(renewed.unsigned_abs())
    }

    async fn remember_catch_all(
        &self,
        answers: &[(String, bool)],
        ttl: Duration,
    ) -> StoreResult<()> {
        if answers.is_empty() {
            return Ok(());
        }
        let (domains, flags): (Vec<&str>, Vec<bool>) = answers
            .iter()
            .map(|(domain, flag)| (domain.as_str(), *flag))
            .unzip();
        sqlx::query(
            "insert into catch_all_domains (domain, catch_all, expires_at)
             select d, c, now() + make_interval(secs => $3 / 1000.0)
               from unnest($1::text[], $2::boolean[]) as u(d, c)
             on conflict (domain) do update
                set catch_all = excluded.catch_all, expires_at = excluded.expires_at",
        )
        .bind(&domains)
        .bind(&flags)
        .bind(millis(ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_verification(&self, address_key: &str, lease: Duration) -> StoreResult<bool> {
        let claimed: Option<(i32,)> = sqlx::query_as(
            "insert into verifications_in_flight as v (address_key, holder, expires_at)
             values ($1, $2, now() + make_interval(secs => $3 / 1000.0))
             on conflict (address_key) do update
                set holder = excluded.holder, expires_at = excluded.expires_at
              where v.expires_at <= now() or v.holder = excluded.holder
             returning 1",
        )
        .bind(address_key)
        .bind(self.holder)
        .bind(millis(lease))
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed.is_some())
    }

    async fn finish_verifications(&self, address_keys: &[String]) -> StoreResult<()> {
        if address_keys.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "with finished as (
                 delete from verifications_in_flight
                  where holder = $1 and address_key = any($2)
              returning address_key)
             select pg_notify($3, address_key) from finished",
        )
        .bind(self.holder)
        .bind(address_keys)
        .bind(VERIFICATIONS)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn purge(&self) -> StoreResult<u64> {
        let (purged,): (i64,) = sqlx::query_as(
            "with leases as (delete from session_leases where expires_at < now() returning 1),
                  budgets as (delete from probe_budget where tat < now() returning 1),
                  answers as (delete from catch_all_domains where expires_at < now() returning 1),
                  claims as (delete from verifications_in_flight where expires_at < now() returning 1)
             select (select count(*) from leases) + (select count(*) from budgets)
                  + (select count(*) from answers) + (select count(*) from claims)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(purged.unsigned_abs())
    }

    async fn listen(&self, events: mpsc::Sender<ClusterEvent>) {
        let mut retry = RETRY_FIRST;
        loop {
            match self.listen_once(&events).await {
                Listening::Closed => return,
                Listening::Failed(err) => {
                    tracing::debug!(error = %err, "listening for changes failed; trying again");
                    if events.send(ClusterEvent::Lost).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
                Listening::Heard => retry = RETRY_FIRST,
            }
        }
    }
}

/// How one listening connection ended.
enum Listening {
    /// The receiver or the pool is gone: stop.
    Closed,
    /// It could not connect or broke; events may have been missed.
    Failed(sqlx::Error),
    /// The connection was lost after working (events may have been
    /// missed, and [`ClusterEvent::Lost`] was sent).
    Heard,
}

impl PgCoordination {
    async fn listen_once(&self, events: &mpsc::Sender<ClusterEvent>) -> Listening {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return Listening::Closed,
            Err(err) => return Listening::Failed(err),
        };
        if let Err(err) = listener
            .listen_all([SUPPRESSIONS, SLOTS, VERIFICATIONS])
            .await
        {
            return Listening::Failed(err);
        }
        // Whatever happened before this connection listened is unknown.
        if events.send(ClusterEvent::Listening).await.is_err() {
            return Listening::Closed;
        }
        loop {
            let heard = match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let payload = notification.payload();
                    match notification.channel() {
                        SUPPRESSIONS => payload
                            .parse()
                            .map_or(ClusterEvent::Lost, ClusterEvent::Suppressions),
                        SLOTS => ClusterEvent::SlotsReleased(payload.to_owned()),
                        _ => ClusterEvent::VerificationDone(payload.to_owned()),
                    }
                }
                // The connection was lost (and made again): notifications
                // in between are gone.
                Ok(None) => ClusterEvent::Lost,
                Err(sqlx::Error::PoolClosed) => return Listening::Closed,
                Err(err) => return Listening::Failed(err),
            };
            let lost = heard == ClusterEvent::Lost;
            if events.send(heard).await.is_err() {
                return Listening::Closed;
            }
            if lost {
                return Listening::Heard;
            }
        }
    }
}
