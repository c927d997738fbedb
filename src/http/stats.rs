//! `GET /stats`: verifications, suppressions and bounces over the last
//! 24 hours, 7 days and 30 days — enough to watch a bounce rate — and the
//! probe health of the mail providers probed lately (this replica's).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{Duration, Utc};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::store::WindowStats;
use crate::verify::health::{ProviderHealth, STATS_PROVIDERS};

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
}

/// `GET /stats`.
pub async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    let now = Utc::now();
    let mut windows = BTreeMap::new();
    for (name, length) in [
        ("24h", Duration::hours(24)),
        ("7d", Duration::days(7)),
        ("30d", Duration::days(30)),
    ] {
        let window = state.store.stats(now - length).await?;
        windows.insert(name, Window::from(window));
    }
    let mut probe_health = state
        .verifier
        .probe_health()
        .snapshot(std::time::Instant::now());
    probe_health.truncate(STATS_PROVIDERS);
    Ok(Json(Stats {
        windows,
        probe_health,
        proxies: state.verifier.proxy_status(),
    }))
}
