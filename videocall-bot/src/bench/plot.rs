//! `docs/perf-latency.svg`: p99 hop latency (log scale) against delivered frames/s, one point
//! per run, the (a) capacity steps joined by a line. Drawn with `plotters`' SVG backend (its
//! text is SVG `<text>`: no font library is built).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Row;

const SIZE: (u32, u32) = (860, 520);
/// The legend's column, right of the chart.
const LEGEND_WIDTH: u32 = 200;
/// plotters writes a font's size divided by 1.24 into the SVG: these give 15, 12 and 10 px.
const TITLE_FONT: f64 = 18.6;
const FONT: f64 = 14.9;
const SMALL_FONT: f64 = 12.4;
/// The capacity criterion: p99 under 50 ms.
const CRITERION_MS: f64 = 50.0;

fn colour(group: char) -> RGBColor {
    match group {
        'a' => RGBColor(0x1f, 0x77, 0xb4),
        'b' => RGBColor(0x2c, 0xa0, 0x2c),
        'c' => RGBColor(0x94, 0x67, 0xbd),
        'd' => RGBColor(0xd6, 0x27, 0x28),
        'e' => RGBColor(0xff, 0x7f, 0x0e),
        'f' => RGBColor(0x17, 0xbe, 0xcf),
        'g' => RGBColor(0x8c, 0x56, 0x4b),
        'p' => RGBColor(0xe3, 0x77, 0xc2),
        _ => RGBColor(0x7f, 0x7f, 0x7f),
    }
}

fn group_name(group: char) -> &'static str {
    match group {
        'a' => "(a) 4×4 meetings, scaled",
        'b' => "(b) 25×25",
        'c' => "(c) 1 → M broadcast",
        'd' => "(d) 1000 participants",
        'e' => "(e) nodes on NATS",
        'f' => "(f) 60×60 WS / WT",
        'g' => "(g) throttled subscriber",
        'p' => "(p) original presence",
        _ => "other",
    }
}

/// One run on the plot.
#[derive(Debug, Clone, PartialEq)]
struct Mark<'a> {
    group: char,
    id: &'a str,
    webtransport: bool,
    /// Delivered video frames/s.
    fps: f64,
    /// p99 hop latency, ms.
    p99: f64,
}

/// The runs that have figures to plot, in the order they ran (the (a) steps in step order).
fn marks(rows: &[Row]) -> Vec<Mark<'_>> {
    rows.iter()
        .filter_map(|r| {
            let f = r.figures()?;
            (f.delivered_fps.is_finite() && f.p99.is_finite() && f.delivered_fps > 0.0).then(|| {
                Mark {
                    group: r.scenario.group,
                    id: r.scenario.id.as_str(),
                    webtransport: r.scenario.transport.eq_ignore_ascii_case("wt"),
                    fps: f.delivered_fps,
                    // A log axis has no 0.
                    p99: f.p99.max(0.01),
                }
            })
        })
        .collect()
}

/// The SVG document.
pub(crate) fn svg(rows: &[Row]) -> anyhow::Result<String> {
    render(&marks(rows))
}

fn render(marks: &[Mark<'_>]) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, marks)?;
        root.present()?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(root: &Area<'_>, marks: &[Mark<'_>]) -> DrawResult {
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    // At least 0..1000 frames/s and 1..100 ms, in whole decades of latency.
    let x_max = marks.iter().map(|m| m.fps).fold(1000.0, f64::max) * 1.05;
    let decade = |v: f64| 10f64.powf(v);
    let y_lo = decade(
        marks
            .iter()
            .map(|m| m.p99)
            .fold(1.0, f64::min)
            .log10()
            .floor(),
    );
    let y_hi = decade(
        marks
            .iter()
            .map(|m| m.p99)
            .fold(100.0, f64::max)
            .log10()
            .ceil(),
    );

    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            "p99 relay hop latency vs delivered video frames/s (make bench)",
            ("sans-serif", TITLE_FONT),
        )
        .margin(10)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
        .label_style(("sans-serif", FONT))
        .x_desc("delivered video frames/s")
        .y_desc("p99 latency, ms (log)")
        .x_label_formatter(&|v| {
            if *v >= 1000.0 {
                format!("{}k", v / 1000.0)
            } else {
                format!("{v}")
            }
        })
        .y_label_formatter(&|v| {
            if *v < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .draw()?;

    if (y_lo..=y_hi).contains(&CRITERION_MS) {
        chart.draw_series(DashedLineSeries::new(
            [(0.0, CRITERION_MS), (x_max, CRITERION_MS)],
            6,
            4,
            RED.into(),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((x_max, CRITERION_MS))
                + Text::new(
                    "50 ms",
                    (-4, -4),
                    TextStyle::from(("sans-serif", FONT).into_font())
                        .color(&RED)
                        .pos(Pos::new(HPos::Right, VPos::Bottom)),
                ),
        ))?;
    }
    // The capacity steps as a line, in step order.
    let steps: Vec<(f64, f64)> = marks
        .iter()
        .filter(|m| m.group == 'a')
        .map(|m| (m.fps, m.p99))
        .collect();
    if steps.len() > 1 {
        chart.draw_series(LineSeries::new(steps, colour('a').stroke_width(2)))?;
    }
    // WebSocket runs as dots, WebTransport runs as squares.
    chart.draw_series(
        marks
            .iter()
            .filter(|m| !m.webtransport)
            .map(|m| Circle::new((m.fps, m.p99), 4, colour(m.group).filled())),
    )?;
    chart.draw_series(marks.iter().filter(|m| m.webtransport).map(|m| {
        EmptyElement::at((m.fps, m.p99))
            + Rectangle::new([(-4, -4), (4, 4)], colour(m.group).filled())
    }))?;
    chart.draw_series(marks.iter().filter(|m| m.group != 'a').map(|m| {
        EmptyElement::at((m.fps, m.p99))
            + Text::new(
                m.id.to_owned(),
                (6, -5),
                TextStyle::from(("sans-serif", SMALL_FONT).into_font())
                    .color(&RGBColor(0x33, 0x33, 0x33))
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )
    }))?;
    legend(&legend_area, marks)
}

fn legend(area: &Area<'_>, marks: &[Mark<'_>]) -> DrawResult {
    let mut groups: Vec<char> = marks.iter().map(|m| m.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let text =
        TextStyle::from(("sans-serif", FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let grey = RGBColor(0x55, 0x55, 0x55);
    let row = |i: usize| 50 + 20 * i as i32;
    for (i, group) in groups.iter().enumerate() {
        area.draw(&Circle::new((16, row(i)), 4, colour(*group).filled()))?;
        area.draw(&Text::new(group_name(*group), (26, row(i)), &text))?;
    }
    let (ws, wt) = (row(groups.len()) + 10, row(groups.len()) + 30);
    area.draw(&Circle::new((16, ws), 4, grey.filled()))?;
    area.draw(&Text::new("WebSocket", (26, ws), &text))?;
    area.draw(&Rectangle::new([(12, wt - 4), (20, wt + 4)], grey.filled()))?;
    area.draw(&Text::new("WebTransport", (26, wt), &text))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn mark(
        group: char,
        id: &'static str,
        webtransport: bool,
        fps: f64,
        p99: f64,
    ) -> Mark<'static> {
        Mark {
            group,
            id,
            webtransport,
            fps,
            p99,
        }
    }

    /// plotters writes a `<text>` element's content on a line of its own.
    pub(crate) fn has_text(svg: &str, text: &str) -> bool {
        svg.lines().any(|line| line == text)
    }

    /// The `points` of every polyline stroked in `colour`, as numbers.
    pub(crate) fn polylines(svg: &str, colour: &str) -> Vec<Vec<(f64, f64)>> {
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(&format!("stroke=\"{colour}\"")))
            .map(|l| {
                let points = l
                    .split("points=\"")
                    .nth(1)
                    .and_then(|p| p.split('"').next());
                points
                    .expect("a polyline has points")
                    .split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').expect("x,y");
                        (x.parse().expect("a number"), y.parse().expect("a number"))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_capacity_steps_are_one_line_rising_with_their_latency() {
        let marks = [
            mark('a', "a-8", false, 2_000.0, 2.0),
            mark('a', "a-16", false, 4_000.0, 8.0),
            mark('a', "a-32", false, 8_000.0, 70.0),
            mark('b', "b-ws", false, 18_000.0, 5.0),
            mark('f', "60-wt", true, 30_000.0, 20.0),
        ];
        let svg = render(&marks).expect("an SVG is drawn");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let lines = polylines(&svg, "#1F77B4");
        assert_eq!(lines.len(), 1, "{svg}");
        let line = &lines[0];
        assert_eq!(line.len(), 3, "one vertex per (a) step: {line:?}");
        // Further right with more frames, higher up (smaller y) with more latency.
        assert!(
            line.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 > w[1].1),
            "{line:?}"
        );
        // Every WebSocket run a dot of its group's colour, the WebTransport run a square.
        assert_eq!(
            svg.matches("<circle").count(),
            4 + 3 + 1,
            "4 runs, 3 groups and WebSocket in the legend"
        );
        assert!(
            svg.contains(r##"width="8" height="8" opacity="1" fill="#17BECF""##),
            "{svg}"
        );
        // Runs outside (a) are named; the legend names the groups; the criterion is drawn.
        for text in [
            "b-ws",
            "60-wt",
            "(a) 4×4 meetings, scaled",
            "(f) 60×60 WS / WT",
            "50 ms",
        ] {
            assert!(has_text(&svg, text), "{text} missing");
        }
        assert!(
            !has_text(&svg, "a-16"),
            "(a) steps are not labelled one by one"
        );
    }

    #[test]
    fn an_empty_bench_still_draws_axes() {
        let svg = render(&[]).expect("an SVG is drawn");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(has_text(&svg, "delivered video frames/s"));
        assert!(polylines(&svg, "#1F77B4").is_empty());
    }
}
