//! `GET /stats`: verifications, suppressions and bounces over the last
//! 24 hours, 7 days and 30 days — enough to watch a bounce rate — and the
//! probe health of the mail providers probed lately (this replica's), and
//! the bounce patterns that stand out.
//! `GET /stats/daily`: the same counts per UTC day, for charts.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::store::WindowStats;
use crate::verify::health::{ProviderHealth, STATS_PROVIDERS};
use crate::vocab::{BounceKind, Status};

#[derive(Debug, Serialize)]
struct Counted {
    total: u64,
    #[serde(flatten)]
    by: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

impl Counted {
    fn new(groups: Vec<(&'static str, BTreeMap<String, u64>)>) -> Self {
        let total = groups
            .first()
            .map_or(0, |(_, counts)| counts.values().sum());
        Counted {
            total,
            by: groups.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Window {
    verifications: Counted,
    suppressions: Counted,
    bounces: Counted,
}

impl From<WindowStats> for Window {
    fn from(stats: WindowStats) -> Self {
        Window {
            verifications: Counted::new(vec![("by_status", stats.verifications_by_status)]),
            suppressions: Counted::new(vec![
                ("by_reason", stats.suppressions_by_reason),
                ("by_source", stats.suppressions_by_source),
            ]),
            bounces: Counted::new(vec![("by_kind", stats.bounces_by_kind)]),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Stats {
    windows: BTreeMap<&'static str, Window>,
    /// Mail providers probed within the probe health window, worst first.
    probe_health: Vec<ProviderHealth>,
    /// The SOCKS5 proxies probes go through, in `--proxy` order (empty
    /// when probes connect directly).
    proxies: Vec<crate::verify::egress::ProxyStatus>,
    /// Rejections that many recipients met at one provider within the
    /// last 24 hours, sender-side first.
    bounce_patterns: Vec<super::patterns::BouncePattern>,
}

/// The windows of `GET /stats`, by name, shortest first.
pub(super) const WINDOWS: [&str; 3] = ["24h", "7d", "30d"];

/// The counts of every window of `GET /stats`, by name.
pub(super) async fn window_stats(
    state: &AppState,
) -> Result<BTreeMap<&'static str, WindowStats>, ApiError> {
    let now = Utc::now();
    let mut windows = BTreeMap::new();
    for (name, length) in
        WINDOWS
            .into_iter()
            .zip([Duration::hours(24), Duration::days(7), Duration::days(30)])
    {
        windows.insert(name, state.store.stats(now - length).await?);
    }
    Ok(windows)
}

/// `GET /stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let windows = window_stats(&state)
        .await?
        .into_iter()
        .map(|(name, window)| (name, Window::from(window)))
        .collect();
    let mut probe_health = state
        .verifier
        .probe_health()
        .snapshot(std::time::Instant::now());
    probe_health.truncate(STATS_PROVIDERS);
    Ok(Json(Stats {
        windows,
        probe_health,
        proxies: state.verifier.proxy_status(),
        bounce_patterns: super::patterns::standing_out(&state).await?,
    }))
}

/// The days `GET /stats/daily` covers without `days`, and at most.
const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 90;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyQuery {
    days: Option<u32>,
}

/// Counts of one kind, with every known key present (zero when none).
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    pub total: u64,
    #[serde(flatten)]
    pub by: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

impl Tally {
    fn new(group: &'static str, keys: &[&str], counts: BTreeMap<String, u64>) -> Self {
        let mut all: BTreeMap<String, u64> =
            keys.iter().map(|key| ((*key).to_owned(), 0)).collect();
        all.extend(counts);
        Tally {
            total: all.values().sum(),
            by: BTreeMap::from([(group, all)]),
        }
    }

    /// The count of one key (zero when absent).
    pub fn of(&self, key: &str) -> u64 {
        self.by
            .values()
            .next()
            .and_then(|counts| counts.get(key))
            .copied()
            .unwrap_or(0)
    }
}

/// Suppressions added and removed on one day.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Changes {
    pub added: u64,
    pub removed: u64,
}

/// One UTC day of `GET /stats/daily`.
#[derive(Debug, Clone, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub verifications: Tally,
    pub bounces: Tally,
    /// Bounces received that day per verification made that day; `null`
    /// without verifications. mailvet does not see the mail you send, so
    /// verifications stand in for sends.
    pub bounce_rate: Option<f64>,
    pub suppressions: Changes,
}

/// The answer of `GET /stats/daily`: every day, oldest first, today (UTC)
/// last.
#[derive(Debug, Clone, Serialize)]
pub struct Daily {
    pub days: Vec<Day>,
}

/// The last `days` UTC days (today included), every day present.
pub(super) async fn daily(state: &AppState, days: Option<u32>) -> Result<Daily, ApiError> {
    let days = match days {
        None => DEFAULT_DAYS,
        Some(n) if (1..=MAX_DAYS).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "`days` is {n}; it must be between 1 and {MAX_DAYS}"
            )));
        }
    };
    let today = Utc::now().date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let mut counted = state.store.daily_stats(since).await?;
    let statuses: Vec<&str> = Status::ALL.iter().map(|status| status.as_str()).collect();
    let kinds: Vec<&str> = BounceKind::ALL.iter().map(|kind| kind.as_str()).collect();
    let series = first
        .iter_days()
        .take_while(|date| *date <= today)
        .map(|date| {
            let stats = counted.remove(&date).unwrap_or_default();
            let verifications = Tally::new("by_status", &statuses, stats.verifications_by_status);
            let bounces = Tally::new("by_kind", &kinds, stats.bounces_by_kind);
            let bounce_rate = (verifications.total > 0)
                .then(|| bounces.total as f64 / verifications.total as f64);
            Day {
                date,
                verifications,
                bounces,
                bounce_rate,
                suppressions: Changes {
                    added: stats.suppressions_added,
                    removed: stats.suppressions_removed,
                },
            }
        })
        .collect();
    Ok(Daily { days: series })
}

/// `GET /stats/daily?days=30`: per UTC day, verifications by status,
/// bounces by kind and the bounce rate, suppressions added and removed.
pub async fn stats_daily(
    State(state): State<AppState>,
    Query(query): Query<DailyQuery>,
) -> Result<Json<Daily>, ApiError> {
    Ok(Json(daily(&state, query.days).await?))
}
