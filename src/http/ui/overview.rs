//! The overview: the last 30 days in charts, the counts of `GET /stats`,
//! the bounce patterns that stand out, and the health of the database,
//! the resolver, probing and the proxies.

use axum::Extension;
use axum::extract::State;
use maud::{Markup, html};

use super::Ui;
use super::charts::{Series, line, stacked_bars};
use super::layout::{count, page, percent};
use super::session::{Session, UiError};
use crate::http::stats::{self, Daily, WINDOWS};
use crate::store::WindowStats;
use crate::verify::resolver_watch::ResolverHealth;

/// The colours of the statuses and kinds, readable on white.
const STATUS_COLOURS: &[(&str, &str)] = &[
    ("deliverable", "#2e7d32"),
    ("risky", "#b26a00"),
    ("unknown", "#6b7280"),
    ("undeliverable", "#c62828"),
];
const BOUNCE_COLOURS: &[(&str, &str)] = &[
    ("hard", "#c62828"),
    ("soft", "#b26a00"),
    ("complaint", "#6a1b9a"),
    ("undetermined", "#6b7280"),
];

fn charts(daily: &Daily) -> Markup {
    let days: Vec<String> = daily.days.iter().map(|day| day.date.to_string()).collect();
    let verifications: Vec<Series<'_>> = STATUS_COLOURS
        .iter()
        .map(|(status, colour)| Series {
            name: status,
            colour,
            values: daily
                .days
                .iter()
                .map(|day| day.verifications.of(status))
                .collect(),
        })
        .collect();
    let bounces: Vec<Series<'_>> = BOUNCE_COLOURS
        .iter()
        .map(|(kind, colour)| Series {
            name: kind,
            colour,
            values: daily.days.iter().map(|day| day.bounces.of(kind)).collect(),
        })
        .collect();
    let rates: Vec<Option<f64>> = daily.days.iter().map(|day| day.bounce_rate).collect();
    let changes = [
        Series {
            name: "added",
            colour: "#1565c0",
            values: daily
                .days
                .iter()
                .map(|day| day.suppressions.added)
                .collect(),
        },
        Series {
            name: "removed",
            colour: "#90a4ae",
            values: daily
                .days
                .iter()
                .map(|day| day.suppressions.removed)
                .collect(),
        },
    ];
    html! {
        section aria-labelledby="daily" {
            h2 #daily { "The last 30 days" }
            div.grid.charts {
                div.card {
                    h3 { "Verifications by status per day" }
                    (stacked_bars("Verifications by status per day", &days, &verifications))
                }
                div.card {
                    h3 { "Bounces by kind per day" }
                    (stacked_bars("Bounces by kind per day", &days, &bounces))
                }
                div.card {
                    h3 { "Bounce rate per day" }
                    p.hint { "Bounces received per verification made that day." }
                    (line("Bounce rate per day", &days, &rates, "#c62828"))
                }
                div.card {
                    h3 { "Suppressions added and removed per day" }
                    (stacked_bars("Suppressions added and removed per day", &days, &changes))
                }
            }
        }
    }
}

fn totals(windows: &std::collections::BTreeMap<&'static str, WindowStats>) -> Markup {
    let sum = |counts: &std::collections::BTreeMap<String, u64>| counts.values().sum::<u64>();
    html! {
        section aria-labelledby="totals" {
            h2 #totals { "Totals" }
            div.scroll {
                table #stats {
                    caption { "The counts of " code { "GET /stats" } }
                    thead {
                        tr {
                            th scope="col" { "" }
                            @for name in WINDOWS { th scope="col" { "Last " (name) } }
                        }
                    }
                    tbody {
                        tr {
                            th scope="row" { "Verifications" }
                            @for name in WINDOWS {
                                td #(format!("verifications-{name}")) { (count(windows.get(name).map_or(0, |w| sum(&w.verifications_by_status)))) }
                            }
                        }
                        @for (status, _) in STATUS_COLOURS {
                            tr.sub {
                                th scope="row" { "— " (status) }
                                @for name in WINDOWS {
                                    td #(format!("{status}-{name}")) { (count(windows.get(name).and_then(|w| w.verifications_by_status.get(*status)).copied().unwrap_or(0))) }
                                }
                            }
                        }
                        tr {
                            th scope="row" { "Bounces" }
                            @for name in WINDOWS {
                                td #(format!("bounces-{name}")) { (count(windows.get(name).map_or(0, |w| sum(&w.bounces_by_kind)))) }
                            }
                        }
                        tr {
                            th scope="row" { "Suppressions added" }
                            @for name in WINDOWS {
                                td #(format!("suppressions-{name}")) { (count(windows.get(name).map_or(0, |w| sum(&w.suppressions_by_reason)))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn health(ui: &Ui) -> Markup {
    let database = ui.store.ping().await;
    let resolver = ui.verifier.resolver_watch().health();
    let mut providers = ui
        .verifier
        .probe_health()
        .snapshot(std::time::Instant::now());
    providers.truncate(crate::verify::health::STATS_PROVIDERS);
    let proxies = ui.verifier.proxy_status();
    let (resolver_state, resolver_text) = match &resolver {
        ResolverHealth::NotWatched => (
            "warn",
            "not watched: no canary names are configured".to_owned(),
        ),
        ResolverHealth::Unchecked => ("warn", "not checked yet".to_owned()),
        ResolverHealth::Healthy => ("ok", "healthy: the canary names resolve".to_owned()),
        ResolverHealth::Failing { detail } => ("bad", format!("failing: {detail}")),
    };
    html! {
        section aria-labelledby="health" {
            h2 #health { "Health" }
            ul.health {
                li {
                    @match &database {
                        Ok(()) => { span.badge.ok { "OK" } " Database: answering" }
                        Err(_) => { span.badge.bad { "DOWN" } " Database: not answering" }
                    }
                }
                li { span.badge.(resolver_state) { (resolver_state.to_uppercase()) } " Resolver: " (resolver_text) }
                li {
                    @if providers.iter().any(|p| p.refusing) {
                        span.badge.bad { "BAD" } " Probing: some providers refuse probes"
                    } @else {
                        span.badge.ok { "OK" } " Probing: no provider refuses probes"
                    }
                }
                @if !proxies.is_empty() {
                    li {
                        @let up = proxies.iter().filter(|p| p.up).count();
                        @if up == proxies.len() { span.badge.ok { "OK" } } @else { span.badge.bad { "BAD" } }
                        " Proxies: " (up) " of " (proxies.len()) " up"
                    }
                }
            }
            @if !providers.is_empty() {
                div.scroll {
                    table {
                        caption { "Mail providers probed lately, worst first" }
                        thead { tr {
                            th scope="col" { "Provider" } th scope="col" { "Probes" } th scope="col" { "OK" }
                            th scope="col" { "Deferred" } th scope="col" { "Blocked" } th scope="col" { "Timeouts" }
                            th scope="col" { "Failing" } th scope="col" { "State" }
                        } }
                        tbody {
                            @for p in &providers {
                                tr {
                                    th scope="row" { (p.provider) }
                                    td { (count(p.probes)) } td { (count(p.ok)) } td { (count(p.deferred)) }
                                    td { (count(p.blocked)) } td { (count(p.timeout)) } td { (percent(p.failing_share)) }
                                    td { @if p.refusing { "refusing probes" } @else { "ok" } }
                                }
                            }
                        }
                    }
                }
            }
            @if !proxies.is_empty() {
                div.scroll {
                    table {
                        caption { "SOCKS5 proxies" }
                        thead { tr { th scope="col" { "Proxy" } th scope="col" { "State" } th scope="col" { "Failures in a row" } } }
                        tbody {
                            @for proxy in &proxies {
                                tr {
                                    th scope="row" { (proxy.proxy) }
                                    td { @if proxy.up { "up" } @else { "set aside" @if let Some(s) = proxy.retry_in_seconds { ", retried in " (s) " s" } } }
                                    td { (proxy.failures_in_a_row) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/`.
pub async fn show(
    State(ui): State<Ui>,
    Extension(session): Extension<Session>,
) -> Result<Markup, UiError> {
    let windows = stats::window_stats(&ui)
        .await
        .map_err(|err| UiError::from_api(err, &session))?;
    let daily = stats::daily(&ui, Some(30))
        .await
        .map_err(|err| UiError::from_api(err, &session))?;
    let bounce_patterns = crate::http::patterns::standing_out(&ui)
        .await
        .map_err(|err| UiError::from_api(err, &session))?;
    let body = html! {
        h1 { "Overview" }
        (super::patterns::section(&bounce_patterns))
        (totals(&windows))
        (charts(&daily))
        (health(&ui).await)
    };
    Ok(page("Overview", Some("/ui/"), Some(&session), body))
}
