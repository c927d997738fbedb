//! Bounce patterns on Postgres, shared by every replica: a batch of
//! sightings is two statements (arrays bound with `unnest`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Postgres;

use super::PgStore;
use crate::store::StoreResult;
use crate::store::patterns::{PatternGroup, PatternStore, Sighting};
use crate::store::shared::SqlBackend;
use crate::store::shared::jobs::int_param;
use crate::store::shared::patterns::{GroupRow, fold, group_select};

#[async_trait]
impl PatternStore for PgStore {
    async fn record_sightings(&self, sightings: &[Sighting]) -> StoreResult<()> {
        if sightings.is_empty() {
            return Ok(());
        }
        let folded = fold(sightings);
        let mut tx = self.begin_write().await?;
        // The patterns: the first sighting's text is kept. The batch may
        // name one pattern several times; `distinct on` keeps one.
        let providers: Vec<&str> = folded
            .iter()
            .map(|f| f.sighting.provider.as_str())
            .collect();
        let keys: Vec<&str> = folded
            .iter()
            .map(|f| f.sighting.pattern_key.as_str())
            .collect();
        let codes: Vec<i32> = folded.iter().map(|f| i32::from(f.sighting.code)).collect();
        let enhanced: Vec<Option<&str>> = folded
            .iter()
            .map(|f| f.sighting.enhanced_code.as_deref())
            .collect();
        let texts: Vec<&str> = folded.iter().map(|f| f.sighting.text.as_str()).collect();
        let sender_side: Vec<bool> = folded.iter().map(|f| f.sighting.sender_side).collect();
        sqlx::query(
            "insert into bounce_patterns (provider, pattern_key, code, enhanced_code, text, sender_side)
             select distinct on (provider, pattern_key) *
               from unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bool[])
                    as u(provider, pattern_key, code, enhanced_code, text, sender_side)
             on conflict (provider, pattern_key) do nothing",
        )
        .bind(&providers)
        .bind(&keys)
        .bind(&codes)
        .bind(&enhanced)
        .bind(&texts)
        .bind(&sender_side)
        .execute(&mut *tx)
        .await?;
        // The sightings: one row per recipient and hour.
        let hours: Vec<DateTime<Utc>> = folded.iter().map(|f| f.hour).collect();
        let recipients: Vec<&str> = folded
            .iter()
            .map(|f| f.sighting.recipient.as_str())
            .collect();
        let first: Vec<DateTime<Utc>> = folded.iter().map(|f| f.first_seen).collect();
        let last: Vec<DateTime<Utc>> = folded.iter().map(|f| f.last_seen).collect();
        let events: Vec<i64> = folded.iter().map(|f| f.events).collect();
        sqlx::query(
            "insert into bounce_pattern_sightings
                 (provider, pattern_key, hour, recipient, first_seen, last_seen, events)
             select * from unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[],
                                  $5::timestamptz[], $6::timestamptz[], $7::bigint[])
             on conflict (provider, pattern_key, hour, recipient) do update
                set first_seen = least(bounce_pattern_sightings.first_seen, excluded.first_seen),
                    last_seen = greatest(bounce_pattern_sightings.last_seen, excluded.last_seen),
                    events = bounce_pattern_sightings.events + excluded.events",
        )
        .bind(&providers)
        .bind(&keys)
        .bind(&hours)
        .bind(&recipients)
        .bind(&first)
        .bind(&last)
        .bind(&events)
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    async fn standing_out_patterns(
        &self,
        since: DateTime<Utc>,
        min_recipients: u64,
        limit: u32,
    ) -> StoreResult<Vec<PatternGroup>> {
        let rows = sqlx::query_as::<_, GroupRow<Postgres>>(concat!(
            group_select!(),
            "where s.last_seen >= $1 \
             group by p.provider, p.pattern_key \
             having count(distinct s.recipient) >= $2 \
             order by p.sender_side desc, recipients desc, last_seen desc, p.provider \
             limit $3"
        ))
        .bind(since)
        .bind(int_param(min_recipients))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(PatternGroup::try_from).collect()
    }

    async fn announce_pattern(
        &self,
        provider: &str,
        pattern_key: &str,
        since: DateTime<Utc>,
        min_recipients: u64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PatternGroup>> {
        let mut tx = self.begin_write().await?;
        let group = sqlx::query_as::<_, GroupRow<Postgres>>(concat!(
            group_select!(),
            "where s.provider = $1 and s.pattern_key = $2 and s.last_seen >= $3 \
             group by p.provider, p.pattern_key \
             having count(distinct s.recipient) >= $4"
        ))
        .bind(provider)
        .bind(pattern_key)
        .bind(since)
        .bind(int_param(min_recipients))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(group) = group else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The row lock makes one replica the announcer.
        let marked = sqlx::query(
            "update bounce_patterns set announced_at = $4
              where provider = $1 and pattern_key = $2
                and (announced_at is null or announced_at < $3)",
        )
        .bind(provider)
        .bind(pattern_key)
        .bind(since)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if marked == 0 {
            return Ok(None);
        }
        Ok(Some(PatternGroup::try_from(group)?))
    }

    async fn purge_patterns(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let purged = sqlx::query("delete from bounce_pattern_sightings where last_seen < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "delete from bounce_patterns p
              where not exists (select 1 from bounce_pattern_sightings s
                                 where s.provider = p.provider and s.pattern_key = p.pattern_key)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(purged)
    }
}
