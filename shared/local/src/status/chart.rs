//! A small inline SVG line chart of per-minute counts: no script, no external asset, colours
//! from the page's stylesheet (classes `s0`, `s1`, …), a `<title>` on each point for hovering.

use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 110.0;
/// Room for the axis labels.
const LEFT: f64 = 30.0;
const BOTTOM: f64 = 16.0;
const TOP: f64 = 6.0;

/// One line: its label and its count per minute (all lines the same length).
#[derive(Debug)]
pub struct Line<'a> {
    pub label: &'static str,
    pub per_minute: &'a [u64],
}

/// `first_minute` is the start of the minute of index 0.
pub fn chart(title: &str, first_minute: DateTime<Utc>, lines: &[Line<'_>]) -> Markup {
    let minutes = lines.iter().map(|l| l.per_minute.len()).max().unwrap_or(0);
    let top = lines.iter().flat_map(|l| l.per_minute.iter().copied()).max().unwrap_or(0).max(1);
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let x = |i: usize| LEFT + plot_w * i as f64 / (minutes.saturating_sub(1).max(1)) as f64;
    let y = |n: u64| TOP + plot_h * (1.0 - n as f64 / top as f64);
    let minute_label = |i: usize| (first_minute + Duration::minutes(i as i64)).format("%H:%M UTC").to_string();
    html! {
        figure.chart {
            figcaption {
                (title) " "
                @for (k, line) in lines.iter().enumerate() {
                    span class={ "key s" (k) } { "■ " (line.label) " " (line.per_minute.iter().sum::<u64>()) }
                    " "
                }
            }
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                role="img" aria-label=(title) {
                line.axis x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH - 4.0) y2=(TOP + plot_h) {}
                line.grid x1=(LEFT) y1=(TOP) x2=(WIDTH - 4.0) y2=(TOP) {}
                text.tick x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (top) }
                text.tick x=(LEFT - 4.0) y=(TOP + plot_h) text-anchor="end" { "0" }
                @if minutes > 0 {
                    text.tick x=(LEFT) y=(HEIGHT - 3.0) { (minute_label(0)) }
                    text.tick x=(WIDTH - 4.0) y=(HEIGHT - 3.0) text-anchor="end" { (minute_label(minutes - 1)) }
                }
                @for (k, line) in lines.iter().enumerate() {
                    polyline class={ "line s" (k) } fill="none" points=(points(line.per_minute, &x, &y)) {}
                    @for (i, &n) in line.per_minute.iter().enumerate() {
                        @if n > 0 {
                            circle class={ "point s" (k) } cx=(fmt(x(i))) cy=(fmt(y(n))) r="2.5" data-count=(n) {
                                title { (minute_label(i)) ": " (n) " " (line.label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn points(per_minute: &[u64], x: &dyn Fn(usize) -> f64, y: &dyn Fn(u64) -> f64) -> String {
    per_minute.iter().enumerate().map(|(i, &n)| format!("{},{}", fmt(x(i)), fmt(y(n)))).collect::<Vec<_>>().join(" ")
}

/// One decimal is plenty at this size and keeps the page small.
fn fmt(v: f64) -> String {
    format!("{:.1}", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_minute_is_a_vertex_and_every_non_zero_minute_a_point() {
        let counts = [0, 3, 0, 6];
        let svg = chart(
            "Ingest",
            DateTime::from_timestamp(0, 0).unwrap(),
            &[Line { label: "accepted", per_minute: &counts }],
        )
        .into_string();
        let polyline = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(polyline.split(' ').count(), 4);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("data-count=\"6\""));
        assert!(svg.contains("00:03 UTC: 6 accepted"));
        assert!(svg.contains("accepted 9"), "the legend carries the hour's total");
    }
}
