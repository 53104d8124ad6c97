//! The status page's chart of deliveries per minute: inline SVG drawn on
//! the server, with a count axis, a time axis and a title. Its time labels
//! are in UTC, each with its moment in `data-datetime` for the page's
//! script to show in the viewer's zone.

use maud::{Markup, html};

/// The drawing's size, in its own units (about CSS pixels on a phone).
const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 150.0;
/// The plot's edges: room on the left for the counts, above for the
/// title, below for the times.
const LEFT: f64 = 30.0;
const RIGHT: f64 = 354.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 118.0;
/// A label on the time axis every so many minutes.
const TICK_MINUTES: i64 = 15;

/// The count axis: the smallest of 1, 2, 5, 10, 20, 50… that marks
/// `max` in at most four steps, and the top it reaches.
fn count_step(max: u64) -> (u64, u64) {
    let mut scale = 1;
    loop {
        for step in [scale, 2 * scale, 5 * scale] {
            if max.div_ceil(step) <= 4 {
                return (step, max.div_ceil(step).max(1) * step);
            }
        }
        scale *= 10;
    }
}

/// A coordinate, to a tenth of a unit.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

fn utc(ms: i64, format: &str) -> (String, String) {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| (ms.to_string(), ms.to_string()),
        |t| (t.strftime(format).to_string(), format!("{t:.0}")),
    )
}

/// `per_minute`: (the minute's start, deliveries in it), oldest first,
/// one entry a minute.
#[expect(
    clippy::cast_precision_loss,
    reason = "minutes in the hour and counts per minute are small"
)]
pub(crate) fn deliveries(per_minute: &[(i64, u64)]) -> Markup {
    let busiest = per_minute.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let total: u64 = per_minute.iter().map(|(_, n)| n).sum();
    let (step, top) = count_step(busiest);
    let slot = (RIGHT - LEFT) / per_minute.len().max(1) as f64;
    let y = |n: u64| BOTTOM - (BOTTOM - TOP) * n as f64 / top as f64;
    let counts = (0..=top / step).map(|i| i * step);
    let ticks = per_minute
        .iter()
        .enumerate()
        .filter(|(_, (minute, _))| minute.rem_euclid(TICK_MINUTES * 60_000) == 0)
        .map(|(i, (minute, _))| {
            let x = LEFT + i as f64 * slot;
            // Kept inside the drawing at its right edge.
            let anchor = if x > RIGHT - 14.0 { "end" } else { "middle" };
            let (label, iso) = utc(*minute, "%H:%M");
            (x, anchor, label, iso)
        });
    let summary = format!("{total} deliveries in the last hour (busiest minute: {busiest})");
    html! {
        figure id="rate" {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) {
                // Text outside a <text> (the ": " and the spaces between
                // labels) is not drawn; a browser that draws no SVG (w3m)
                // shows the labels as a line of words.
                text.title x="4" y="11" { "Deliveries per minute, last hour" } ": "
                @for n in counts {
                    line class=(if n == 0 { "axis" } else { "grid" }) x1=(LEFT) x2=(RIGHT) y1=(at(y(n))) y2=(at(y(n))) {}
                    text x=(LEFT - 4.0) y=(at(y(n) + 3.5)) text-anchor="end" { (n) } " "
                }
                @for (x, anchor, label, iso) in ticks {
                    line.axis x1=(at(x)) x2=(at(x)) y1=(BOTTOM) y2=(BOTTOM + 4.0) {}
                    text x=(at(x)) y=(BOTTOM + 15.0) text-anchor=(anchor) data-datetime=(iso) { (label) } " "
                }
                text x=(RIGHT) y=(HEIGHT - 3.0) text-anchor="end" { "time (" tspan.zone { "UTC" } ")" }
                @for (i, (minute, n)) in per_minute.iter().enumerate().filter(|(_, (_, n))| *n > 0) {
                    rect x=(at(LEFT + i as f64 * slot + slot * 0.15)) y=(at(y(*n)))
                        width=(at(slot * 0.7)) height=(at(BOTTOM - y(*n))) {
                        title { (utc(*minute, "%H:%M UTC").0) ": " (n) }
                    }
                }
            }
            figcaption.muted { (summary) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_axis_takes_a_round_step_and_at_most_four_of_them() {
        assert_eq!(count_step(0), (1, 1));
        assert_eq!(count_step(1), (1, 1));
        assert_eq!(count_step(4), (1, 4));
        assert_eq!(count_step(5), (2, 6));
        assert_eq!(count_step(9), (5, 10));
        assert_eq!(count_step(20), (5, 20));
        assert_eq!(count_step(21), (10, 30));
        assert_eq!(count_step(1000), (500, 1000));
    }

    #[test]
    fn the_chart_has_both_axes_labelled_and_a_bar_per_busy_minute() {
        // 12:00 UTC on 2025-01-02, and the hour before it.
        let end = 1_735_819_200_000;
        let per_minute: Vec<(i64, u64)> = (0..60)
            .map(|i| {
                (
                    end - (59 - i) * 60_000,
                    if i == 59 { 7 } else { u64::from(i == 10) },
                )
            })
            .collect();
        let svg = deliveries(&per_minute).into_string();
        assert!(
            svg.contains("Deliveries per minute, last hour</text>: "),
            "{svg}"
        );
        assert_eq!(svg.matches("<rect ").count(), 2, "{svg}");
        assert!(svg.contains("<title>11:11 UTC: 1</title>"), "{svg}");
        // Counts up to 8 in steps of 2; times every quarter hour.
        for n in ["0", "2", "4", "6", "8"] {
            assert!(
                svg.contains(&format!("text-anchor=\"end\">{n}</text>")),
                "{n}: {svg}"
            );
        }
        for t in ["11:15", "11:30", "11:45", "12:00"] {
            assert!(svg.contains(&format!(">{t}</text>")), "{t}: {svg}");
        }
        assert!(
            svg.contains("data-datetime=\"2025-01-02T11:15:00Z\""),
            "{svg}"
        );
        assert!(svg.contains("8 deliveries in the last hour (busiest minute: 7)"));
    }
}
