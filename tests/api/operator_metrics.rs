//! What an operator watches: `GET /metrics` (HELP on every family, the
//! sampled gauges, process metrics), probe health in `GET /stats` and
//! Prometheus, and the alert rules and dashboard in `deploy/`, which must
//! name only metrics mailvet exports.

use std::collections::BTreeSet;
use std::time::Duration;

use mailvet::telemetry::METRICS;
use reqwest::Method;
use serde_json::json;

use crate::common::app::{Db, TestApp};
use crate::common::dns::{TestDns, example_zone};
use crate::common::probe::{probe_settings, verify_batch};
use crate::common::smtp_peer::{Script, SmtpPeer};

/// The metric families of a Prometheus text page: the names of its
/// samples, with a histogram's `_bucket`, `_sum` and `_count` folded into
/// its own name.
fn families(text: &str) -> BTreeSet<String> {
    let helped = helped(text);
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let name = line
                .split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or_default();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix)
                    && helped.contains(base)
                {
                    return base.to_owned();
                }
            }
            name.to_owned()
        })
        .collect()
}

/// The families that have a `# HELP` line with text.
fn helped(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, help)| !help.trim().is_empty())
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The value of the sample written exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

async fn metrics_text(app: &TestApp) -> String {
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

#[tokio::test]
async fn metrics_have_help_for_every_family_and_show_the_sampled_gauges() {
    for db in [Db::Sqlite, Db::Postgres] {
        let app = TestApp::spawn_with(db, |settings| {
            settings.http.metrics_sample_interval = Duration::from_millis(100);
        })
        .await;
        for email in ["one@example.test", "two@example.test"] {
            let reply = app
                .send(
                    app.request(Method::POST, "/suppressions")
                        .json(&json!({ "email": email })),
                )
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text());
        }
        // Sampled in the background: the gauge follows within an interval.
        let mut text = metrics_text(&app).await;
        for _ in 0..50 {
            if sample(&text, "mailvet_suppressions") == Some(2.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            text = metrics_text(&app).await;
        }
        assert_eq!(
            sample(&text, "mailvet_suppressions"),
            Some(2.0),
            "{db:?}:\n{text}"
        );
        assert_eq!(
            sample(&text, "mailvet_jobs{state=\"queued\"}"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "mailvet_jobs{state=\"running\"}"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "mailvet_job_addresses_pending"),
            Some(0.0),
            "{text}"
        );
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            sample(
                &text,
                &format!("mailvet_build_info{{version=\"{version}\"}}")
            ),
            Some(1.0),
            "{text}"
        );
        assert!(
            sample(&text, "mailvet_smtp_sessions_in_use").is_some_and(|n| n >= 0.0),
            "{text}"
        );
        let rss = sample(&text, "process_resident_memory_bytes").unwrap_or_default();
        assert!(rss > 1_000_000.0, "a resident set of {rss} bytes:\n{text}");
        assert!(
            sample(&text, "process_open_fds").is_some_and(|fds| fds > 0.0),
            "{text}"
        );
        assert!(
            sample(&text, "process_start_time_seconds").is_some_and(|at| at > 1.7e9),
            "{text}"
        );

        let helped = helped(&text);
        let without_help: Vec<String> = families(&text)
            .into_iter()
            .filter(|family| !helped.contains(family))
            .collect();
        assert!(
            without_help.is_empty(),
            "families without HELP: {without_help:?}\n{text}"
        );
    }
}

#[tokio::test]
async fn a_provider_refusing_probes_shows_in_stats_and_metrics() {
    let dns = TestDns::start(vec![example_zone()]).await;
    let peer = SmtpPeer::start(Script {
        greeting: Some(
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org"
                .into(),
        ),
        ..Script::mailboxes(&[])
    })
    .await;
    let app = TestApp::spawn_with(Db::Sqlite, probe_settings(dns.addr, peer.port())).await;

    let emails: Vec<String> = (0..12).map(|n| format!("user{n}@example.test")).collect();
    let results = verify_batch(&app, &emails).await;
    assert!(
        results
            .iter()
            .all(|result| result["status"] == "unknown" && result["reason"] == "blocked"),
        "{results:?}"
    );

    let stats = app.get("/stats").await.json();
    let health = &stats["probe_health"];
    assert_eq!(health.as_array().map(Vec::len), Some(1), "{stats}");
    let provider = &health[0];
    assert_eq!(provider["provider"], "example.test", "{provider}");
    assert_eq!(provider["probes"], 12, "{provider}");
    assert_eq!(provider["blocked"], 12, "{provider}");
    assert_eq!(provider["ok"], 0, "{provider}");
    assert_eq!(provider["blocked_share"], 1.0, "{provider}");
    assert_eq!(provider["failing_share"], 1.0, "{provider}");
    assert_eq!(provider["refusing"], true, "{provider}");

    let text = metrics_text(&app).await;
    assert_eq!(
        sample(
            &text,
            "mailvet_probe_health_share{provider=\"example.test\",outcome=\"blocked\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mailvet_probe_health_share{provider=\"example.test\",outcome=\"timeout\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mailvet_probe_health_probes{provider=\"example.test\"}"
        ),
        Some(12.0),
        "{text}"
    );
}

#[tokio::test]
async fn stats_show_no_probe_health_before_any_probe() {
    let app = TestApp::spawn().await;
    let stats = app.get("/stats").await.json();
    assert_eq!(stats["probe_health"], json!([]), "{stats}");
}

/// The metric names a file mentions: `mailvet_…` and `process_…`, with a
/// histogram's series suffixes removed.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["mailvet_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                let name = &tail[..end];
                let name = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name);
                names.insert(name.to_owned());
            }
            rest = &tail[end.max(1)..];
        }
    }
    names
}

#[tokio::test]
async fn alert_rules_and_dashboard_name_only_metrics_mailvet_exports() {
    let app = TestApp::spawn().await;
    let text = metrics_text(&app).await;
    let mut exported: BTreeSet<String> = families(&text);
    exported.extend(METRICS.iter().map(|(name, _, _)| (*name).to_owned()));

    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").expect("the alert rules");
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rules).expect("YAML");
    let alerts: Vec<&serde_yaml_ng::Value> = parsed["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").iter())
        .collect();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for alert in &alerts {
        assert!(alert["alert"].as_str().is_some() && alert["expr"].as_str().is_some());
    }

    let dashboard = std::fs::read_to_string("deploy/grafana/mailvet.json").expect("the dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{}", panels.len());

    for (file, text) in [("alerts.yml", &rules), ("mailvet.json", &dashboard)] {
        let named = names_in(text);
        assert!(
            named.contains("mailvet_probe_health_share"),
            "{file}: {named:?}"
        );
        let unknown: Vec<&String> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics mailvet does not export: {unknown:?}"
        );
    }
}

/// Every `counter!`, `gauge!` and `histogram!` in `src/` names a metric in
/// the catalogue, so that it has HELP.
#[test]
fn every_metric_the_code_records_is_in_the_catalogue() {
    let catalogue: BTreeSet<&str> = METRICS.iter().map(|(name, _, _)| *name).collect();
    let mut seen = 0;
    let mut missing = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let code = std::fs::read_to_string(&path).expect("read a source file");
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in code.match_indices(macro_name) {
                    let args = code[at + macro_name.len()..].trim_start();
                    let Some(literal) = args.strip_prefix('"') else {
                        continue;
                    };
                    let name = literal.split('"').next().unwrap_or_default();
                    seen += 1;
                    if !catalogue.contains(name) {
                        missing.push(format!("{}: {name}", path.display()));
                    }
                }
            }
        }
    }
    assert!(seen >= 10, "only {seen} metrics found in src/");
    assert!(missing.is_empty(), "not in telemetry::METRICS: {missing:?}");
}
