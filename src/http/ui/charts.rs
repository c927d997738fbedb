//! Charts drawn on the server as inline SVG: stacked bars per day and a
//! line. No script, and only presentation attributes (`fill`, `stroke`),
//! which the Content-Security-Policy allows where `style` would not be.
//! Each bar has a `<title>`, read out by screen readers and shown on hover.

use maud::{Markup, html};

use super::layout::count;

/// One stacked series: its name, colour and a value per day.
#[derive(Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: Vec<u64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// A rounded-up maximum for the axis: 1, 2 or 5 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * power)
        .find(|candidate| *candidate >= max)
        .unwrap_or(10.0 * power)
}

fn axis(top: f64, label_top: &str, days: &[String]) -> Markup {
    let plot_bottom = HEIGHT - BOTTOM;
    html! {
        line x1=(LEFT) y1=(plot_bottom) x2=(WIDTH) y2=(plot_bottom) stroke="#8a8f98" stroke-width="1" {}
        line x1=(LEFT) y1=(top) x2=(WIDTH) y2=(top) stroke="#d5d8dd" stroke-width="1" stroke-dasharray="3 3" {}
        text x=(LEFT - 6.0) y=(top + 4.0) text-anchor="end" font-size="15" fill="#4a4f57" { (label_top) }
        text x=(LEFT - 6.0) y=(plot_bottom) text-anchor="end" font-size="15" fill="#4a4f57" { "0" }
        @if let Some(first) = days.first() {
            text x=(LEFT) y=(HEIGHT - 6.0) font-size="15" fill="#4a4f57" { (first) }
        }
        @if let Some(last) = days.last() {
            text x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" font-size="15" fill="#4a4f57" { (last) }
        }
    }
}

/// Stacked bars, one per day, with a legend. `label` names the chart for
/// assistive technology.
pub fn stacked_bars(label: &str, days: &[String], series: &[Series<'_>]) -> Markup {
    let totals: Vec<u64> = (0..days.len())
        .map(|day| {
            series
                .iter()
                .map(|s| s.values.get(day).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = nice_max(totals.iter().copied().max().unwrap_or(0) as f64);
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                (axis(TOP, &count(max as u64), days))
                @for (day, name) in days.iter().enumerate() {
                    @let x = LEFT + slot * day as f64 + (slot - bar) / 2.0;
                    g {
                        title { (name) ": " (count(totals[day])) }
                        @let mut base = HEIGHT - BOTTOM;
                        @for s in series {
                            @let value = s.values.get(day).copied().unwrap_or(0);
                            @if value > 0 {
                                @let height = value as f64 / max * plot_height;
                                @let y = { base -= height; base };
                                rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{bar:.1}")) height=(format!("{height:.1}")) fill=(s.colour) {
                                    title { (name) ", " (s.name) ": " (count(value)) }
                                }
                            }
                        }
                    }
                }
            }
            figcaption.legend {
                @for s in series {
                    span.key {
                        svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect width="10" height="10" fill=(s.colour) {} }
                        (s.name) " (" (count(s.values.iter().sum())) ")"
                    }
                }
            }
        }
    }
}

/// A line of shares (0..=1) per day; days without a value break the line.
pub fn line(label: &str, days: &[String], values: &[Option<f64>], colour: &str) -> Markup {
    let max = nice_max(values.iter().flatten().copied().fold(0.0, f64::max) * 100.0) / 100.0;
    let plot_height = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let point = |day: usize, value: f64| {
        (
            LEFT + slot * day as f64 + slot / 2.0,
            HEIGHT - BOTTOM - value / max * plot_height,
        )
    };
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (day, value) in values.iter().enumerate() {
        match value {
            Some(value) => segments
                .last_mut()
                .map(|segment| segment.push(point(day, *value)))
                .unwrap_or_default(),
            None => segments.push(Vec::new()),
        }
    }
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
                (axis(TOP, &super::layout::percent(max), days))
                @for segment in segments.iter().filter(|segment| !segment.is_empty()) {
                    polyline fill="none" stroke=(colour) stroke-width="2"
                        points=(segment.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")) {}
                }
                @for (day, value) in values.iter().enumerate() {
                    @if let Some(value) = value {
                        @let (x, y) = point(day, *value);
                        circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="2.5" fill=(colour) {
                            title { (days[day]) ": " (super::layout::percent(*value)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(13.0), 20.0);
        assert_eq!(nice_max(420.0), 500.0);
    }

    #[test]
    fn bars_are_drawn_without_style_attributes() {
        let days = vec!["2026-11-29".to_owned(), "2026-11-30".to_owned()];
        let svg = stacked_bars(
            "test",
            &days,
            &[Series {
                name: "deliverable",
                colour: "#2e7d32",
                values: vec![3, 0],
            }],
        )
        .into_string();
        assert!(svg.contains("fill=\"#2e7d32\""), "{svg}");
        assert!(svg.contains("2026-11-29, deliverable: 3"), "{svg}");
        assert!(!svg.contains("style"), "{svg}");
    }
}
