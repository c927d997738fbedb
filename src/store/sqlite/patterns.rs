//! Bounce patterns on SQLite: a batch of sightings is one write
//! transaction, a statement a row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Sqlite;

use super::{SqliteStore, millis};
use crate::store::StoreResult;
use crate::store::patterns::{PatternGroup, PatternStore, Sighting};
use crate::store::shared::jobs::int_param;
use crate::store::shared::patterns::{GroupRow, fold, group_select};
use crate::store::shared::{Commit, SqlBackend};

#[async_trait]
impl PatternStore for SqliteStore {
    async fn record_sightings(&self, sightings: &[Sighting]) -> StoreResult<()> {
        if sightings.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for row in fold(sightings) {
            let sighting = row.sighting;
            // The first sighting's text is kept.
            sqlx::query(
                "insert into bounce_patterns
                     (provider, pattern_key, code, enhanced_code, text, sender_side)
                 values (?1, ?2, ?3, ?4, ?5, ?6)
                 on conflict (provider, pattern_key) do nothing",
            )
            .bind(&sighting.provider)
            .bind(&sighting.pattern_key)
            .bind(i64::from(sighting.code))
            .bind(&sighting.enhanced_code)
            .bind(&sighting.text)
            .bind(sighting.sender_side)
            .execute(&mut *tx)
            .await?;
            // One row per recipient and hour.
            sqlx::query(
                "insert into bounce_pattern_sightings
                     (provider, pattern_key, hour, recipient, first_seen, last_seen, events)
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 on conflict (provider, pattern_key, hour, recipient) do update
                    set first_seen = min(first_seen, excluded.first_seen),
                        last_seen = max(last_seen, excluded.last_seen),
                        events = events + excluded.events",
            )
            .bind(&sighting.provider)
            .bind(&sighting.pattern_key)
            .bind(millis(row.hour))
            .bind(&sighting.recipient)
            .bind(millis(row.first_seen))
            .bind(millis(row.last_seen))
            .bind(row.events)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    async fn standing_out_patterns(
        &self,
        since: DateTime<Utc>,
        min_recipients: u64,
        limit: u32,
    ) -> StoreResult<Vec<PatternGroup>> {
        let rows = sqlx::query_as::<_, GroupRow<Sqlite>>(concat!(
            group_select!(),
            "where s.last_seen >= ?1 \
             group by p.provider, p.pattern_key \
             having count(distinct s.recipient) >= ?2 \
             order by p.sender_side desc, recipients desc, last_seen desc, p.provider \
             limit ?3"
        ))
        .bind(millis(since))
        .bind(int_param(min_recipients))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
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
        let group = sqlx::query_as::<_, GroupRow<Sqlite>>(concat!(
            group_select!(),
            "where s.provider = ?1 and s.pattern_key = ?2 and s.last_seen >= ?3 \
             group by p.provider, p.pattern_key \
             having count(distinct s.recipient) >= ?4"
        ))
        .bind(provider)
        .bind(pattern_key)
        .bind(millis(since))
        .bind(int_param(min_recipients))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(group) = group else {
            tx.rollback().await?;
            return Ok(None);
        };
        let marked = sqlx::query(
            "update bounce_patterns set announced_at = ?4
              where provider = ?1 and pattern_key = ?2
                and (announced_at is null or announced_at < ?3)",
        )
        .bind(provider)
        .bind(pattern_key)
        .bind(millis(since))
        .bind(millis(now))
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
        let purged = sqlx::query("delete from bounce_pattern_sightings where last_seen < ?1")
            .bind(millis(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "delete from bounce_patterns
              where not exists (select 1 from bounce_pattern_sightings s
                                 where s.provider = bounce_patterns.provider
                                   and s.pattern_key = bounce_patterns.pattern_key)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(purged)
    }
}
