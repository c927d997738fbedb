//! The operator's gauges that describe one running service rather than the
//! process: the suppression list's size and the bulk jobs' queue, sampled
//! from the store in the background (never a query per scrape), and the
//! probe health of each mail provider. `GET /metrics` appends them to the
//! recorder's text, each family with its `# HELP` and `# TYPE`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use crate::store::{Store, StoreGauges};
use crate::verify::health::ProbeHealth;

/// The latest sample of the store's gauges.
#[derive(Debug, Default)]
pub struct SampledGauges {
    latest: Mutex<Option<StoreGauges>>,
}

impl SampledGauges {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the gauges from the store. On failure the last sample is
    /// dropped rather than shown stale: the families disappear from
    /// `/metrics` until the database answers again (the HTTP 5xx rate and
    /// `/readyz` say why).
    pub async fn sample(&self, store: &dyn Store) {
        let sampled = match store.gauges().await {
            Ok(gauges) => Some(gauges),
            Err(err) => {
                tracing::warn!(error = %crate::error::error_chain(&err), "sampling the store's gauges failed");
                None
            }
        };
        *self.latest.lock().expect("sampled gauges") = sampled;
    }

    /// The latest sample, if the last one succeeded.
    pub fn latest(&self) -> Option<StoreGauges> {
        *self.latest.lock().expect("sampled gauges")
    }

    /// Prometheus text for the latest sample and for probe health.
    pub fn render(&self, health: &ProbeHealth) -> String {
        let mut text = String::new();
        if let Some(gauges) = self.latest() {
            family(
                &mut text,
                "mailvet_suppressions",
                &[("", gauges.suppressions)],
            );
            family(
                &mut text,
                "mailvet_jobs",
                &[
                    ("state=\"queued\"", gauges.jobs_queued),
                    ("state=\"running\"", gauges.jobs_running),
                ],
            );
            family(
                &mut text,
                "mailvet_job_addresses_pending",
                &[("", gauges.job_addresses_pending)],
            );
        }
        text.push_str(&health.render_prometheus(Instant::now()));
        text
    }
}

/// One gauge family: HELP (from the catalogue), TYPE and a sample per
/// label set.
fn family(text: &mut String, name: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(text, "# HELP {name} {}", crate::telemetry::help(name));
    let _ = writeln!(text, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(text, "{name} {value}");
        } else {
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
    }
}
