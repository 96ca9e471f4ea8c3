//! `docs/soak.svg`: the node's RSS (top) and the delivered video frames/s (bottom) over the
//! soak, the warm-up shaded, the two compared windows marked with their medians. Plain SVG
//! written by hand, as `plot.rs`.

use std::fmt::Write;

use crate::soak::{Point, RATE_HOLD_MIN, RSS_GROWTH_MAX, Verdict, Window};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const GAP: f64 = 50.0;
const BOTTOM: f64 = 50.0;
const MIB: f64 = (1 << 20) as f64;

/// One panel: a series against minutes, its y range from 0.
struct Panel {
    top: f64,
    height: f64,
    y_max: f64,
}

impl Panel {
    fn y(&self, v: f64) -> f64 {
        self.top + self.height - v / self.y_max * self.height
    }
}

/// A round step for about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The SVG document.
pub(crate) fn svg(points: &[Point], verdict: &Verdict, minutes: f64) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let panel_h = (HEIGHT - TOP - GAP - BOTTOM) / 2.0;
    let t_max = points.iter().map(|p| p.t).fold(minutes * 60.0, f64::max) / 60.0;
    // The axis ends with the run (a 30-minute soak ends a few seconds past 30 minutes: rounding
    // up to the next tick would leave a quarter of the plot empty).
    let x_step = nice_step(t_max);
    let x_max = t_max.max(1e-3);
    let x = |t_seconds: f64| LEFT + t_seconds / 60.0 / x_max * plot_w;

    let rss: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.t, p.rss? / MIB)))
        .collect();
    let fps: Vec<(f64, f64)> = points.iter().map(|p| (p.t, p.delivered_fps)).collect();
    let headroom = |max: f64, step: f64| ((max * 1.15) / step).ceil().max(1.0) * step;
    let rss_max_data = rss.iter().map(|p| p.1).fold(1.0, f64::max);
    let rss_step = nice_step(rss_max_data * 1.15);
    let fps_max_data = fps.iter().map(|p| p.1).fold(10.0, f64::max);
    let fps_step = nice_step(fps_max_data * 1.15);
    let panels = [
        (
            Panel {
                top: TOP,
                height: panel_h,
                y_max: headroom(rss_max_data, rss_step),
            },
            rss_step,
            "node RSS, MiB",
            "#1f77b4",
            &rss,
            (verdict.rss_first / MIB, verdict.rss_last / MIB),
        ),
        (
            Panel {
                top: TOP + panel_h + GAP,
                height: panel_h,
                y_max: headroom(fps_max_data, fps_step),
            },
            fps_step,
            "delivered video frames/s",
            "#2ca02c",
            &fps,
            (verdict.rate_first, verdict.rate_last),
        ),
    ];

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
        r#"<text x="{:.1}" y="22" font-size="15" text-anchor="middle">make soak: {minutes} min, 10 meetings × 5 participants, joins and leaves churning (one node)</text>"#,
        LEFT + plot_w / 2.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="38" font-size="11" text-anchor="middle" fill="#555">RSS {:+.2} % (limit {:+.0} %), delivered rate {:.1} % of the first window (at least {:.0} %): medians of the shaded windows after the warm-up</text>"##,
        LEFT + plot_w / 2.0,
        verdict.rss_growth() * 100.0,
        RSS_GROWTH_MAX * 100.0,
        verdict.rate_hold() * 100.0,
        RATE_HOLD_MIN * 100.0
    );
    for (panel, step, label, colour, series, (first, last)) in &panels {
        let bottom = panel.top + panel.height;
        // Warm-up, then the two compared windows.
        let shade = |w: Window, fill: &str| {
            format!(
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
                x(w.from),
                panel.top,
                (x(w.to) - x(w.from)).max(0.0),
                panel.height
            )
        };
        let _ = writeln!(
            out,
            "{}",
            shade(
                Window {
                    from: 0.0,
                    to: verdict.first.from
                },
                "#eeeeee"
            )
        );
        let _ = writeln!(out, "{}", shade(verdict.first, "#e3eef9"));
        let _ = writeln!(out, "{}", shade(verdict.last, "#e3eef9"));
        let mut tick = 0.0;
        while tick <= panel.y_max + 1e-9 {
            let py = panel.y(tick);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                py + 4.0,
                if tick >= 1000.0 {
                    format!("{}k", tick / 1000.0)
                } else {
                    format!("{tick}")
                }
            );
            tick += step;
        }
        let mut t = 0.0;
        while t <= x_max + 1e-9 {
            let px = x(t * 60.0);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{bottom:.1}" x2="{px:.1}" y2="{:.1}" stroke="#333"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{t}</text>"##,
                bottom + 4.0,
                bottom + 17.0
            );
            t += x_step;
        }
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{:.1}" width="{plot_w:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
            panel.top, panel.height
        );
        let _ = writeln!(
            out,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{label}</text>"#,
            panel.top + panel.height / 2.0
        );
        let line: Vec<String> = series
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), panel.y(*v)))
            .collect();
        if !line.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                line.join(" ")
            );
        }
        // The medians the verdict compares.
        for (w, v) in [(verdict.first, first), (verdict.last, last)] {
            let py = panel.y(*v);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#d62728" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="#d62728" font-size="11" text-anchor="middle">{}</text>"##,
                x(w.from),
                x(w.to),
                (x(w.from) + x(w.to)) / 2.0,
                py - 6.0,
                if *v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            );
        }
    }
    // The offered load under the delivered rate: what the bot managed to send.
    let fps_panel = &panels[1].0;
    let sent: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.t), fps_panel.y(p.sent_fps)))
        .collect();
    if !sent.is_empty() {
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#7f7f7f" stroke-width="1" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#7f7f7f" font-size="11" text-anchor="end">dashed: frames/s the bot sent</text>"##,
            sent.join(" "),
            LEFT + plot_w - 6.0,
            fps_panel.top + fps_panel.height - 6.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">minutes since the bot started (grey: warm-up; blue: the windows compared)</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soak_draws_both_series_and_the_medians() {
        let points: Vec<Point> = (1..=12)
            .map(|i| Point {
                t: i as f64 * 10.0,
                rss: Some(20.0 * MIB),
                cpu: Some(10.0),
                sent_fps: 1200.0,
                delivered_fps: 4800.0,
                expected_fps: 4800.0,
                counted_fps: 4800.0,
                connected: 50,
                joins: 60,
                leaves: 10,
                machine_busy: Some(50.0),
            })
            .collect();
        let verdict = Verdict::judge(&points, 120.0).unwrap();
        let svg = svg(&points, &verdict, 2.0);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(">4800<") && svg.contains(">20.0<"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(30.0), 10.0);
        assert_eq!(nice_step(2.0), 0.5);
        assert_eq!(nice_step(6000.0), 2000.0);
    }
}
