//! `docs/soak.svg`: the node's RSS (top) and the delivered video frames/s (bottom) over the
//! soak, the warm-up shaded, the two compared windows marked with their medians. Drawn with
//! `plotters`' SVG backend, as `plot.rs`.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::soak::{Point, RATE_HOLD_MIN, RSS_GROWTH_MAX, Verdict, Window};

const SIZE: (u32, u32) = (860, 560);
/// plotters writes a font's size divided by 1.24 into the SVG: these give 15, 12 and 11 px.
const TITLE_FONT: f64 = 18.6;
const FONT: f64 = 14.9;
const SMALL_FONT: f64 = 13.6;
const MIB: f64 = (1 << 20) as f64;
const WARM_UP: RGBColor = RGBColor(0xee, 0xee, 0xee);
const COMPARED: RGBColor = RGBColor(0xe3, 0xee, 0xf9);
const MEDIAN: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const SENT: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);

/// One panel: a series against minutes, its y axis from 0.
struct Panel<'a> {
    label: &'static str,
    colour: RGBColor,
    /// (seconds since the bot started, value).
    series: &'a [(f64, f64)],
    /// The medians the verdict compares, first window and last.
    medians: (f64, f64),
    /// The offered load drawn dashed under the series (the delivered rate's panel).
    sent: Option<&'a [(f64, f64)]>,
    x_desc: Option<&'static str>,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The SVG document.
pub(crate) fn svg(points: &[Point], verdict: &Verdict, minutes: f64) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, points, verdict, minutes)?;
        root.present()?;
    }
    Ok(out)
}

fn draw(root: &Area<'_>, points: &[Point], verdict: &Verdict, minutes: f64) -> DrawResult {
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "make soak: {minutes} min, 10 meetings × 5 participants, joins and leaves churning (one node)"
        ),
        ("sans-serif", TITLE_FONT),
    )?;
    let (subtitle, panels) = root.split_vertically(20);
    subtitle.draw(&Text::new(
        format!(
            "RSS {:+.2} % (limit {:+.0} %), delivered rate {:.1} % of the first window (at least {:.0} %): medians of the shaded windows after the warm-up",
            verdict.rss_growth() * 100.0,
            RSS_GROWTH_MAX * 100.0,
            verdict.rate_hold() * 100.0,
            RATE_HOLD_MIN * 100.0
        ),
        (SIZE.0 as i32 / 2, 0),
        TextStyle::from(("sans-serif", SMALL_FONT).into_font())
            .color(&RGBColor(0x55, 0x55, 0x55))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    // The axis ends with the run (a 30-minute soak ends a few seconds past 30 minutes).
    let t_max = points.iter().map(|p| p.t).fold(minutes * 60.0, f64::max) / 60.0;
    let rss: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.t, p.rss? / MIB)))
        .collect();
    let delivered: Vec<(f64, f64)> = points.iter().map(|p| (p.t, p.delivered_fps)).collect();
    let sent: Vec<(f64, f64)> = points.iter().map(|p| (p.t, p.sent_fps)).collect();
    let (top, bottom) = panels.split_vertically(panels.dim_in_pixel().1 / 2 - 10);
    panel(
        &top,
        &Panel {
            label: "node RSS, MiB",
            colour: RGBColor(0x1f, 0x77, 0xb4),
            series: &rss,
            medians: (verdict.rss_first / MIB, verdict.rss_last / MIB),
            sent: None,
            x_desc: None,
        },
        verdict,
        t_max,
    )?;
    panel(
        &bottom,
        &Panel {
            label: "delivered video frames/s",
            colour: RGBColor(0x2c, 0xa0, 0x2c),
            series: &delivered,
            medians: (verdict.rate_first, verdict.rate_last),
            sent: Some(&sent),
            x_desc: Some(
                "minutes since the bot started (grey: warm-up; blue: the windows compared)",
            ),
        },
        verdict,
        t_max,
    )
}

fn panel(area: &Area<'_>, panel: &Panel<'_>, verdict: &Verdict, t_max: f64) -> DrawResult {
    // From 0, with room above the highest value for the median labels.
    let y_max = panel
        .series
        .iter()
        .chain(panel.sent.unwrap_or_default())
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.15;
    let x_max = t_max.max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .margin_right(30)
        .margin_top(10)
        .x_label_area_size(if panel.x_desc.is_some() { 45 } else { 25 })
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    let minutes = |w: Window| (w.from / 60.0, w.to / 60.0);
    let shade = |(from, to): (f64, f64), colour: RGBColor| {
        Rectangle::new([(from, 0.0), (to, y_max)], colour.filled())
    };
    // Shading first: the grid goes over it.
    chart.draw_series([
        shade((0.0, verdict.first.from / 60.0), WARM_UP),
        shade(minutes(verdict.first), COMPARED),
        shade(minutes(verdict.last), COMPARED),
    ])?;
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE)
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .label_style(("sans-serif", FONT))
        .y_desc(panel.label)
        .y_label_formatter(&|v| {
            if *v >= 1000.0 {
                format!("{}k", v / 1000.0)
            } else {
                format!("{v}")
            }
        });
    if let Some(desc) = panel.x_desc {
        mesh.x_desc(desc);
    }
    mesh.draw()?;

    if let Some(sent) = panel.sent {
        chart.draw_series(DashedLineSeries::new(
            sent.iter().map(|(t, v)| (t / 60.0, *v)),
            4,
            3,
            SENT.into(),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((x_max, 0.0))
                + Text::new(
                    "dashed: frames/s the bot sent",
                    (-6, -6),
                    TextStyle::from(("sans-serif", SMALL_FONT).into_font())
                        .color(&SENT)
                        .pos(Pos::new(HPos::Right, VPos::Bottom)),
                ),
        ))?;
    }
    chart.draw_series(LineSeries::new(
        panel.series.iter().map(|(t, v)| (t / 60.0, *v)),
        panel.colour.stroke_width(2),
    ))?;
    // The medians the verdict compares, each over its window.
    for (window, value) in [
        (verdict.first, panel.medians.0),
        (verdict.last, panel.medians.1),
    ] {
        let (from, to) = minutes(window);
        chart.draw_series(LineSeries::new(
            [(from, value), (to, value)],
            MEDIAN.stroke_width(2),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at(((from + to) / 2.0, value))
                + Text::new(
                    if value >= 100.0 {
                        format!("{value:.0}")
                    } else {
                        format!("{value:.1}")
                    },
                    (0, -6),
                    TextStyle::from(("sans-serif", SMALL_FONT).into_font())
                        .color(&MEDIAN)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                ),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::{has_text, polylines};

    fn point(t: f64, rss_mib: f64, delivered_fps: f64) -> Point {
        Point {
            t,
            rss: Some(rss_mib * MIB),
            cpu: Some(10.0),
            sent_fps: 1200.0,
            delivered_fps,
            expected_fps: delivered_fps,
            counted_fps: delivered_fps,
            connected: 50,
            joins: 60,
            leaves: 10,
            machine_busy: Some(50.0),
        }
    }

    #[test]
    fn a_soak_draws_both_series_and_the_medians() {
        // RSS climbs by 1 MiB a sample; the delivered rate is flat.
        let points: Vec<Point> = (1..=12)
            .map(|i| point(i as f64 * 10.0, 20.0 + i as f64, 4800.0))
            .collect();
        let verdict = Verdict::judge(&points, 120.0).unwrap();
        let svg = svg(&points, &verdict, 2.0).expect("an SVG is drawn");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

        let rss = polylines(&svg, "#1F77B4");
        assert_eq!(rss.len(), 1, "{svg}");
        assert_eq!(rss[0].len(), points.len(), "one vertex per sample");
        // Later samples further right and, with more memory, higher up.
        assert!(
            rss[0]
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1),
            "{:?}",
            rss[0]
        );
        let delivered = polylines(&svg, "#2CA02C");
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].len(), points.len());
        assert!(
            delivered[0].iter().all(|p| p.1 == delivered[0][0].1),
            "a flat rate is a flat line"
        );
        // Two medians per panel, and the offered load dashed (several short segments).
        assert_eq!(polylines(&svg, "#D62728").len(), 4);
        assert!(polylines(&svg, "#7F7F7F").len() > 1);
        assert!(has_text(&svg, "4800"), "the rate's median is written");
        assert!(
            has_text(&svg, &format!("{:.1}", verdict.rss_last / MIB)),
            "the RSS median is written"
        );
        assert!(has_text(&svg, "node RSS, MiB") && has_text(&svg, "delivered video frames/s"));
    }
}
