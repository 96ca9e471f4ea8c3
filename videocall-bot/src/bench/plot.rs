//! `docs/perf-latency.svg`: p99 hop latency (log scale) against delivered frames/s, one point
//! per run, the (a) capacity steps joined by a line. Plain SVG written by hand: no font or
//! drawing library needed to build the bench.

use std::fmt::Write;

use crate::report::Row;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn colour(group: char) -> &'static str {
    match group {
        'a' => "#1f77b4",
        'b' => "#2ca02c",
        'c' => "#9467bd",
        'd' => "#d62728",
        'e' => "#ff7f0e",
        'f' => "#17becf",
        'g' => "#8c564b",
        _ => "#7f7f7f",
    }
}

fn group_name(group: char) -> &'static str {
    match group {
        'a' => "(a) 4×4 meetings, scaled",
        'b' => "(b) 25×25",
        'c' => "(c) 1 → M broadcast",
        'd' => "(d) 1000 participants",
        'e' => "(e) 2 nodes on NATS",
        'f' => "(f) 60×60 WS / WT",
        'g' => "(g) throttled subscriber",
        _ => "other",
    }
}

/// A round step for `max / 5`-ish ticks.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document.
pub(crate) fn svg(rows: &[Row]) -> String {
    let points: Vec<(char, &str, String, f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            let f = r.figures()?;
            (f.delivered_fps.is_finite() && f.p99.is_finite() && f.delivered_fps > 0.0).then(|| {
                (
                    r.scenario.group,
                    r.scenario.id.as_str(),
                    r.scenario.transport.to_uppercase(),
                    f.delivered_fps,
                    f.p99.max(0.01),
                )
            })
        })
        .collect();
    let x_max_data = points.iter().map(|p| p.3).fold(1000.0, f64::max);
    let step = nice_step(x_max_data);
    let x_max = (x_max_data / step).ceil() * step;
    let y_lo = points
        .iter()
        .map(|p| p.4)
        .fold(1.0, f64::min)
        .log10()
        .floor();
    let y_hi = points
        .iter()
        .map(|p| p.4)
        .fold(100.0, f64::max)
        .log10()
        .ceil();
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - (v.log10() - y_lo) / (y_hi - y_lo) * plot_h;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">p99 relay hop latency vs delivered video frames/s (make bench)</text>"#,
        LEFT + plot_w / 2.0
    );
    // Grid and axes.
    let mut tick = 0.0;
    while tick <= x_max + 1e-9 {
        let px = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            if tick >= 1000.0 {
                format!("{}k", tick / 1000.0)
            } else {
                format!("{tick}")
            }
        );
        tick += step;
    }
    let mut decade = y_lo;
    while decade <= y_hi + 1e-9 {
        let v = 10f64.powf(decade);
        let py = y(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            if v < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        );
        decade += 1.0;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">delivered video frames/s</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>"#,
        TOP + plot_h / 2.0
    );
    // The 50 ms line of the capacity criterion.
    if (y_lo..=y_hi).contains(&50f64.log10()) {
        let py = y(50.0);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#d62728" text-anchor="end">50 ms</text>"##,
            LEFT + plot_w,
            LEFT + plot_w - 4.0,
            py - 4.0
        );
    }
    // (a) as a line, in step order.
    let steps: Vec<String> = points
        .iter()
        .filter(|p| p.0 == 'a')
        .map(|p| format!("{:.1},{:.1}", x(p.3), y(p.4)))
        .collect();
    if steps.len() > 1 {
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
            steps.join(" "),
            colour('a')
        );
    }
    for (group, id, transport, fps, p99) in &points {
        let (px, py) = (x(*fps), y(*p99));
        let shape = if transport == "WT" {
            format!(
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{}"/>"#,
                px - 4.0,
                py - 4.0,
                colour(*group)
            )
        } else {
            format!(
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{}"/>"#,
                colour(*group)
            )
        };
        let _ = writeln!(out, "{shape}");
        if *group != 'a' {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
                px + 6.0,
                py - 5.0,
                escape(id)
            );
        }
    }
    // Legend.
    let mut groups: Vec<char> = points.iter().map(|p| p.0).collect();
    groups.sort_unstable();
    groups.dedup();
    let lx = LEFT + plot_w + 16.0;
    for (i, g) in groups.iter().enumerate() {
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            out,
            r#"<circle cx="{lx:.1}" cy="{ly:.1}" r="4" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            colour(*g),
            lx + 10.0,
            ly + 4.0,
            escape(group_name(*g))
        );
    }
    let ly = TOP + 10.0 + groups.len() as f64 * 20.0 + 10.0;
    let _ = writeln!(
        out,
        r##"<circle cx="{lx:.1}" cy="{ly:.1}" r="4" fill="#555"/><text x="{:.1}" y="{:.1}">WebSocket</text><rect x="{:.1}" y="{:.1}" width="8" height="8" fill="#555"/><text x="{:.1}" y="{:.1}">WebTransport</text>"##,
        lx + 10.0,
        ly + 4.0,
        lx - 4.0,
        ly + 16.0,
        lx + 10.0,
        ly + 24.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(100_000.0), 20_000.0);
        assert_eq!(nice_step(12_000.0), 2_500.0);
        assert_eq!(nice_step(3.0), 1.0);
    }

    #[test]
    fn an_empty_bench_still_draws_axes() {
        let svg = svg(&[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
