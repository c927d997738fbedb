//! Logs (tracing) and metrics (Prometheus).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global tracing subscriber: level from `RUST_LOG` (default
/// `info`), text or JSON lines on stderr.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("tracing was already initialised: {err}");
    }
}

/// Histogram buckets for latencies, in seconds: 1 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process-wide Prometheus recorder, installed on first use. Several
/// applications in one process (as in tests) share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// A histogram of seconds.
    Seconds,
    /// A gauge that `GET /metrics` renders itself from the service's state
    /// (the store's sampled gauges, probe health), not the recorder's.
    Rendered,
}

/// Every metric family mailvet exports, with its help text: the one list
/// that `# HELP` comes from. A test checks that each name the code records
/// is here, and that the alert rules and the dashboard use no other.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        "mailvet_http_requests_total",
        MetricKind::Counter,
        "HTTP requests answered, by method, route and status",
    ),
    (
        "mailvet_http_request_duration_seconds",
        MetricKind::Seconds,
        "Time to answer an HTTP request, by method and route",
    ),
    (
        "mailvet_http_rate_limited_total",
        MetricKind::Counter,
        "HTTP requests refused with 429 by a rate limit",
    ),
    (
        "mailvet_verdicts_total",
        MetricKind::Counter,
        "Verification results, by status and reason (cached answers included)",
    ),
    (
        "mailvet_verify_cache_hits_total",
        MetricKind::Counter,
        "Verifications answered from the verdict cache or from memory",
    ),
    (
        "mailvet_verify_budget_exceeded_total",
        MetricKind::Counter,
        "POST /verify requests answered unknown / timeout when their time budget ran out (the verification went on in the background)",
    ),
    (
        "mailvet_verify_cache_misses_total",
        MetricKind::Counter,
        "Verifications that found no cached verdict",
    ),
    (
        "mailvet_probe_budget_exceeded_total",
        MetricKind::Counter,
        "Probes not made because the domain's probe budget was used up",
    ),
    (
        "mailvet_cluster_slot_waits_total",
        MetricKind::Counter,
        "Session slots claimed in the shared database and found full (every replica's sessions at the host or address count); the claim waits and tries again",
    ),
    (
        "mailvet_dns_lookup_duration_seconds",
        MetricKind::Seconds,
        "Time of a mail host lookup, by outcome (mx, implicit_mx, null_mx, no_mail_server, \
         nxdomain, error)",
    ),
    (
        "mailvet_dns_resolver_healthy",
        MetricKind::Gauge,
        "1 while the DNS resolver answers its canary names as expected, 0 while it fails them",
    ),
    (
        "mailvet_smtp_probes_total",
        MetricKind::Counter,
        "SMTP probe steps, by outcome (the reply class, or where the session failed)",
    ),
    (
        "mailvet_smtp_session_duration_seconds",
        MetricKind::Seconds,
        "Time an SMTP session with a mail host was open",
    ),
    (
        "mailvet_smtp_sessions_in_use",
        MetricKind::Gauge,
        "SMTP sessions holding a slot of the session pool now",
    ),
    (
        "mailvet_proxy_up",
        MetricKind::Gauge,
        "1 while the SOCKS5 proxy (label proxy, as socks5://host:port) carries probes, 0 while it is set aside after failing",
    ),
    (
        "mailvet_suppressions_added_total",
        MetricKind::Counter,
        "Addresses put on the suppression list, by source",
    ),
    (
        "mailvet_suppressions_removed_total",
        MetricKind::Counter,
        "Addresses taken off the suppression list",
    ),
    (
        "mailvet_bounce_pattern_events_total",
        MetricKind::Counter,
        "Rejections grouped into bounce patterns, by source (verify, bounce) and whether the reply is about the sender",
    ),
    (
        "mailvet_bounces_total",
        MetricKind::Counter,
        "Bounce reports recorded, by kind and origin",
    ),
    (
        "mailvet_build_info",
        MetricKind::Gauge,
        "Always 1; the version label says which mailvet is running",
    ),
    (
        "mailvet_suppressions",
        MetricKind::Rendered,
        "Live entries on the suppression list (sampled from the database)",
    ),
    (
        "mailvet_jobs",
        MetricKind::Rendered,
        "Bulk verification jobs queued or running, by state (sampled from the database)",
    ),
    (
        "mailvet_job_addresses_pending",
        MetricKind::Rendered,
        "Addresses of queued and running jobs not verified yet (sampled from the database)",
    ),
    (
        "mailvet_probe_health_share",
        MetricKind::Rendered,
        "Share of a mail provider's recent probes by outcome (blocked, timeout, \
         connection_failed, failing: the three together), for the worst providers with enough \
         probes",
    ),
    (
        "mailvet_probe_health_probes",
        MetricKind::Rendered,
        "Recent probes of a mail provider in the probe health window",
    ),
    // Signup confirmation.
    (
        "mailvet_confirmations_sent_total",
        MetricKind::Counter,
        "Confirmation messages handed to the relay",
    ),
    (
        "mailvet_confirmations_refused_total",
        MetricKind::Counter,
        "Confirmation requests refused because the address is undeliverable or suppressed (no message sent)",
    ),
    (
        "mailvet_confirmations_limited_total",
        MetricKind::Counter,
        "Confirmation requests refused with 429, by limit (address, client)",
    ),
    (
        "mailvet_confirmations_confirmed_total",
        MetricKind::Counter,
        "Addresses confirmed by following a confirmation link",
    ),
];

/// The help text of a metric family in [`METRICS`].
pub fn help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(known, _, _)| *known == name)
        .map_or("", |(_, _, help)| help)
}

/// The collector of process metrics (CPU seconds, resident memory, open
/// file descriptors, start time, threads).
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Reads the process's metrics afresh into the recorder (at each scrape).
pub fn collect_process_metrics() {
    process_collector().collect();
}

fn describe_metrics() {
    for (name, kind, help) in METRICS {
        match kind {
            MetricKind::Counter => metrics::describe_counter!(*name, *help),
            MetricKind::Gauge => metrics::describe_gauge!(*name, *help),
            MetricKind::Seconds => {
                metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help);
            }
            MetricKind::Rendered => {}
        }
    }
    process_collector().describe();
    metrics::gauge!("mailvet_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Zero until a probe takes a session, rather than absent.
    metrics::gauge!("mailvet_smtp_sessions_in_use").set(0.0);
}
