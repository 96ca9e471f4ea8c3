//! `make soak`: one release node (`actix-api --webtransport`, in-process bus) under 10 meetings
//! × 5 participants (4 publishers, 1 receive-only; the first publisher of each meeting over
//! WebTransport, the rest over WebSocket) for `--soak-minutes`, every participant leaving after
//! a random 20–90 s life and joining again after 0–5 s away. The bot samples the node's RSS and
//! CPU and the delivered frames/s every 10 s (`--sample-every`).
//!
//! The verdict, after a warm-up of a sixth of the run (5 minutes of 30): the median RSS of the
//! last window is less than [`RSS_GROWTH_MAX`] above that of the first window after the warm-up
//! (each window as long as the warm-up), the median delivered rate of the last window is at
//! least [`RATE_HOLD_MIN`] of the first, churn happened, and once everyone left the node is back
//! to no sessions and no meetings. Writes `soak.json` (every sample and the verdict) and
//! `soak.svg` (RSS and delivered rate over time) into the output directory; fails otherwise.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use videocall_bot::report::Sample;

use crate::process::run_bot;
use crate::{Setup, load_average, machine, soak_plot, start_single_node};

/// Meetings on the node.
const MEETINGS: usize = 10;
/// Publishers per meeting.
const PUBLISHERS: usize = 4;
/// Receive-only participants per meeting.
const SUBSCRIBERS: usize = 1;
/// Participants of each meeting that use WebTransport (the first publisher).
const WT_PARTICIPANTS: usize = 1;
/// A participant's life before it leaves (`--churn`).
const LIFE: &str = "20s..90s";
/// How long it stays away before it joins again: either side of the relay's 3 s reconnect
/// grace, so both a quick return and an announced leave happen.
const AWAY: &str = "0s..5s";
/// Joins of the first lives are spread over this long.
const RAMP: Duration = Duration::from_secs(5);
/// The warm-up, and each window compared, is a sixth of the run but at most this long.
const WARMUP_MAX: Duration = Duration::from_secs(300);
/// Samples are this far apart at most (closer for short runs, so a window holds several).
const SAMPLE_MAX: Duration = Duration::from_secs(10);
/// RSS growth allowed from the first window after the warm-up to the last (the issue: < 5 %).
pub(crate) const RSS_GROWTH_MAX: f64 = 0.05;
/// The last window's delivered rate must be at least this share of the first's.
pub(crate) const RATE_HOLD_MIN: f64 = 0.95;
/// Once the bot left, the node must be empty within this: its reconnect grace (3 s) holds
/// meetings a moment after their last session closed; the rest is slack for a loaded machine.
const EMPTY_WITHIN: Duration = Duration::from_secs(20);

/// One sample of the soak, from the bot's report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Seconds since the bot started.
    pub(crate) t: f64,
    /// The node's resident set, bytes.
    pub(crate) rss: Option<f64>,
    /// The node's CPU over the interval, percent of one core.
    pub(crate) cpu: Option<f64>,
    /// Video frames the bot sent per second: the offered load.
    pub(crate) sent_fps: f64,
    /// Video frames delivered per second (all of them).
    pub(crate) delivered_fps: f64,
    /// Counted frames expected and delivered per second (see the bot's `churn.rs`).
    pub(crate) expected_fps: f64,
    pub(crate) counted_fps: f64,
    pub(crate) connected: i64,
    pub(crate) joins: u64,
    pub(crate) leaves: u64,
    /// The whole machine's busy time, percent of one core.
    pub(crate) machine_busy: Option<f64>,
}

impl Point {
    fn from_sample(s: &Sample) -> Self {
        let node = s.servers.first();
        Self {
            t: s.t_seconds,
            rss: node.and_then(|n| n.rss_bytes).map(|r| r as f64),
            cpu: node.and_then(|n| n.cpu_percent),
            sent_fps: s.sent_fps,
            delivered_fps: s.delivered_fps,
            expected_fps: s.expected_counted_fps,
            counted_fps: s.delivered_counted_fps,
            connected: s.connected,
            joins: s.joins,
            leaves: s.leaves,
            machine_busy: s.machine_busy_percent,
        }
    }

    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "t_seconds": round(self.t, 1),
            "node_rss_mib": self.rss.map(|r| round(r / MIB, 2)),
            "node_cpu_percent": self.cpu.map(|c| round(c, 1)),
            "sent_fps": round(self.sent_fps, 1),
            "delivered_fps": round(self.delivered_fps, 1),
            "expected_counted_fps": round(self.expected_fps, 1),
            "delivered_counted_fps": round(self.counted_fps, 1),
            "connected": self.connected,
            "joins": self.joins,
            "leaves": self.leaves,
            "machine_busy_percent": self.machine_busy.map(|b| round(b, 0)),
        })
    }
}

const MIB: f64 = (1 << 20) as f64;

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// The middle value (mean of the two middle ones for an even count); None when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// A span of the run, seconds since the bot started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    pub(crate) from: f64,
    pub(crate) to: f64,
}

impl Window {
    fn holds(&self, t: f64) -> bool {
        self.from <= t && t <= self.to
    }
}

/// What the soak concluded from its samples.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) first: Window,
    pub(crate) last: Window,
    /// Median node RSS, bytes, in the first window after the warm-up and in the last.
    pub(crate) rss_first: f64,
    pub(crate) rss_last: f64,
    /// Median delivered video frames/s in the same windows.
    pub(crate) rate_first: f64,
    pub(crate) rate_last: f64,
    /// Median sent video frames/s in the same windows: if the bot could not keep its load (a
    /// busy machine), a falling delivered rate says nothing about the node.
    pub(crate) sent_first: f64,
    pub(crate) sent_last: f64,
    /// Counted frames delivered ÷ expected, over each window.
    pub(crate) delivery_first: f64,
    pub(crate) delivery_last: f64,
}

impl Verdict {
    /// The windows for a run whose last sample is at `end` seconds, and the figures in them;
    /// None when a window holds no sample.
    pub(crate) fn judge(points: &[Point], end: f64) -> Option<Self> {
        let warmup = (end / 6.0).min(WARMUP_MAX.as_secs_f64());
        let first = Window {
            from: warmup,
            to: 2.0 * warmup,
        };
        let last = Window {
            from: end - warmup,
            to: end,
        };
        let inside = |w: Window| points.iter().filter(move |p| w.holds(p.t));
        let rss = |w| median(inside(w).filter_map(|p| p.rss).collect());
        let rate = |w| median(inside(w).map(|p| p.delivered_fps).collect());
        let sent = |w| median(inside(w).map(|p| p.sent_fps).collect());
        let delivery = |w| {
            let (counted, expected) = inside(w).fold((0.0, 0.0), |(c, e), p| {
                (c + p.counted_fps, e + p.expected_fps)
            });
            if expected > 0.0 {
                counted / expected
            } else {
                f64::NAN
            }
        };
        Some(Self {
            first,
            last,
            rss_first: rss(first)?,
            rss_last: rss(last)?,
            rate_first: rate(first)?,
            rate_last: rate(last)?,
            sent_first: sent(first)?,
            sent_last: sent(last)?,
            delivery_first: delivery(first),
            delivery_last: delivery(last),
        })
    }

    pub(crate) fn rss_growth(&self) -> f64 {
        self.rss_last / self.rss_first - 1.0
    }

    pub(crate) fn rate_hold(&self) -> f64 {
        if self.rate_first > 0.0 {
            self.rate_last / self.rate_first
        } else {
            0.0
        }
    }

    pub(crate) fn rss_flat(&self) -> bool {
        self.rss_growth() < RSS_GROWTH_MAX
    }

    pub(crate) fn rate_held(&self) -> bool {
        self.rate_first > 0.0 && self.rate_hold() >= RATE_HOLD_MIN
    }

    /// Whether the bot kept sending at the rate it started with (same bound as the delivered
    /// rate).
    pub(crate) fn load_held(&self) -> bool {
        self.sent_first > 0.0 && self.sent_last / self.sent_first >= RATE_HOLD_MIN
    }
}

/// The node's gauges once everyone left.
#[derive(Debug, Clone, Copy, Default)]
struct Emptied {
    sessions: Option<u64>,
    meetings: Option<u64>,
    rss: Option<u64>,
    after: Duration,
}

impl Emptied {
    fn empty(&self) -> bool {
        self.sessions == Some(0) && self.meetings == Some(0)
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls the node's `/metrics` until it has no session and no meeting, at most [`EMPTY_WITHIN`].
async fn wait_empty(http_base: &str, pid: u32) -> (Emptied, String) {
    let started = tokio::time::Instant::now();
    let mut last = (Emptied::default(), String::new());
    while started.elapsed() < EMPTY_WITHIN {
        if let Ok(text) = videocall_client::http::get(http_base, "/metrics").await {
            let emptied = Emptied {
                sessions: metric(&text, "videocall_sessions"),
                meetings: metric(&text, "videocall_meetings"),
                rss: videocall_bot::proc::sample(&pid.to_string()).map(|(_, rss)| rss),
                after: started.elapsed(),
            };
            last = (emptied, text);
            if emptied.empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last
}

/// Runs the soak; writes its files into `out_dir` (unless None) and fails unless it passed.
pub(crate) async fn run(setup: &Setup, minutes: f64, out_dir: Option<&Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        minutes.is_finite() && minutes >= 0.5,
        "--soak-minutes: at least 0.5"
    );
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let every = (duration / 12).clamp(Duration::from_secs(1), SAMPLE_MAX);
    let machine = machine();
    let load_before = load_average();
    eprintln!(
        "[soak] {minutes} min: {MEETINGS} meetings × ({PUBLISHERS} publishers + {SUBSCRIBERS} subscriber), {WT_PARTICIPANTS} per meeting over WebTransport, lives {LIFE}, away {AWAY}, a sample every {every:?}; {} × {}, load average {load_before:.2}",
        machine.cpus, machine.cpu_model
    );
    let (node, urls) = start_single_node(setup, &setup.work.join("soak-node.log")).await?;
    let pid = node.pid;
    let http_base = urls[1].clone();
    let mut args: Vec<String> = [
        "--meetings",
        &MEETINGS.to_string(),
        "--publishers",
        &PUBLISHERS.to_string(),
        "--subscribers",
        &SUBSCRIBERS.to_string(),
        "--wt-participants",
        &WT_PARTICIPANTS.to_string(),
        "--churn",
        LIFE,
        "--churn-pause",
        AWAY,
        "--duration",
        &format!("{}ms", duration.as_millis()),
        "--ramp",
        &format!("{}ms", RAMP.as_millis()),
        "--sample-every",
        &format!("{}ms", every.as_millis()),
        "--server-pid",
        &pid.to_string(),
        "--prefix",
        "soak",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(urls);
    let window = (RAMP + Duration::from_secs(1), RAMP + duration);
    let deadline = RAMP + duration + Duration::from_secs(120);
    let json = setup.work.join("soak-bot.json");
    let bot = run_bot(&setup.bot, &args, &json, deadline, window, &[pid]).await;
    let (emptied, metrics_text) = wait_empty(&http_base, pid).await;
    node.stop().await;
    let bot = bot?;
    let report = &bot.report;
    anyhow::ensure!(
        !report.samples.is_empty(),
        "the bot's report has no samples"
    );
    let points: Vec<Point> = report.samples.iter().map(Point::from_sample).collect();
    let end = points.last().map_or(0.0, |p| p.t);
    let verdict = Verdict::judge(&points, end).context("too few samples for a verdict")?;
    let (joins, leaves) = (report.churn.joins, report.churn.leaves);
    let after_warmup = |p: &&Point| p.t >= verdict.first.from;
    let node_cpu = median(
        points
            .iter()
            .filter(after_warmup)
            .filter_map(|p| p.cpu)
            .collect(),
    );
    let busy = median(
        points
            .iter()
            .filter(after_warmup)
            .filter_map(|p| p.machine_busy)
            .collect(),
    );
    let load_after = load_average();
    let churned = leaves > 0 && joins > (MEETINGS * (PUBLISHERS + SUBSCRIBERS)) as u64;
    let passed = verdict.rss_flat() && verdict.rate_held() && churned && emptied.empty();

    let check = |ok: bool| if ok { "ok  " } else { "FAIL" };
    println!();
    println!(
        "{} node RSS (median) {:.1} MiB at {:.0}–{:.0} s → {:.1} MiB at {:.0}–{:.0} s: {:+.2} % (limit {:+.0} %)",
        check(verdict.rss_flat()),
        verdict.rss_first / MIB,
        verdict.first.from,
        verdict.first.to,
        verdict.rss_last / MIB,
        verdict.last.from,
        verdict.last.to,
        verdict.rss_growth() * 100.0,
        RSS_GROWTH_MAX * 100.0
    );
    println!(
        "{} delivered frames/s (median) {:.0} → {:.0}: {:.1} % of the first window (at least {:.0} %); counted delivery {:.3} % → {:.3} %",
        check(verdict.rate_held()),
        verdict.rate_first,
        verdict.rate_last,
        verdict.rate_hold() * 100.0,
        RATE_HOLD_MIN * 100.0,
        verdict.delivery_first * 100.0,
        verdict.delivery_last * 100.0
    );
    if !verdict.rate_held() && !verdict.load_held() {
        println!(
            "     the bot's own sent rate fell too ({:.0} → {:.0} frames/s, machine busy {:.0} % of one core): the machine, not the node, limited this run; repeat it on a quieter machine",
            verdict.sent_first,
            verdict.sent_last,
            busy.unwrap_or(f64::NAN)
        );
    }
    println!(
        "{} churn: {joins} joins, {leaves} leaves, {} counted frames delivered after a rejoin",
        check(churned),
        report.churn.delivered_after_rejoin
    );
    println!(
        "{} node after everyone left: {} sessions, {} meetings after {:.1} s, RSS {:.1} MiB",
        check(emptied.empty()),
        emptied
            .sessions
            .map_or("unknown".to_owned(), |v| v.to_string()),
        emptied
            .meetings
            .map_or("unknown".to_owned(), |v| v.to_string()),
        emptied.after.as_secs_f64(),
        emptied.rss.map_or(f64::NAN, |r| r as f64 / MIB)
    );
    println!(
        "     node CPU (median after warm-up) {:.0} % of one core; machine busy {:.0} % of one core ({} cores); load average {load_before:.2} → {load_after:.2}; loss {:.3} %, p99 {:.2} ms",
        node_cpu.unwrap_or(f64::NAN),
        busy.unwrap_or(f64::NAN),
        machine.cpus,
        report.loss_percent,
        report.latency_ms.p99.unwrap_or(f64::NAN)
    );
    println!(
        "{}",
        if passed {
            "[soak] passed"
        } else {
            "[soak] FAILED"
        }
    );

    if let Some(out_dir) = out_dir {
        let doc = serde_json::json!({
            "generated": {
                "by": "make soak",
                "date": machine.date,
                "commit": machine.commit,
                "machine": format!("{} × {}, {:.1} GiB, Linux {}", machine.cpus, machine.cpu_model, machine.memory_gib, machine.kernel),
                "load_average": [load_before, load_after],
                "other_load_percent": bot.foreign.map(|f| round(f.other_percent, 0)),
            },
            "setup": {
                "minutes": minutes,
                "meetings": MEETINGS,
                "publishers": PUBLISHERS,
                "subscribers": SUBSCRIBERS,
                "webtransport_per_meeting": WT_PARTICIPANTS,
                "life": LIFE,
                "away": AWAY,
                "sample_seconds": every.as_secs_f64(),
            },
            "verdict": {
                "passed": passed,
                "first_window_seconds": [round(verdict.first.from, 0), round(verdict.first.to, 0)],
                "last_window_seconds": [round(verdict.last.from, 0), round(verdict.last.to, 0)],
                "rss_mib": [round(verdict.rss_first / MIB, 2), round(verdict.rss_last / MIB, 2)],
                "rss_growth_percent": round(verdict.rss_growth() * 100.0, 2),
                "delivered_fps": [round(verdict.rate_first, 1), round(verdict.rate_last, 1)],
                "delivered_hold_percent": round(verdict.rate_hold() * 100.0, 2),
                "sent_fps": [round(verdict.sent_first, 1), round(verdict.sent_last, 1)],
                "counted_delivery_percent": [round(verdict.delivery_first * 100.0, 3), round(verdict.delivery_last * 100.0, 3)],
                "joins": joins,
                "leaves": leaves,
                "node_cpu_percent": node_cpu.map(|c| round(c, 1)),
                "machine_busy_percent": busy.map(|b| round(b, 0)),
                "node_after_leaving": {
                    "sessions": emptied.sessions,
                    "meetings": emptied.meetings,
                    "seconds": round(emptied.after.as_secs_f64(), 1),
                    "rss_mib": emptied.rss.map(|r| round(r as f64 / MIB, 2)),
                },
            },
            "bot": {
                "loss_percent": report.loss_percent,
                "audio_loss_percent": report.audio_loss_percent,
                "latency_ms": report.latency_ms,
                "first_frame_ms": report.first_frame_ms,
                "congestion_signals": report.congestion_signals,
                "churn": report.churn,
            },
            "node_metrics_after": metrics_text
                .lines()
                .filter(|l| l.starts_with("videocall_") && !l.ends_with(" 0"))
                .collect::<Vec<_>>(),
            "samples": points.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
        });
        std::fs::create_dir_all(out_dir)?;
        std::fs::write(
            out_dir.join("soak.json"),
            serde_json::to_string_pretty(&doc)?,
        )?;
        std::fs::write(
            out_dir.join("soak.svg"),
            soak_plot::svg(&points, &verdict, minutes)?,
        )?;
        eprintln!(
            "[soak] wrote {} and soak.svg",
            out_dir.join("soak.json").display()
        );
    }
    anyhow::ensure!(passed, "the soak failed its verdict (see above)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: f64, rss_mib: f64, fps: f64) -> Point {
        Point {
            t,
            rss: Some(rss_mib * MIB),
            cpu: Some(10.0),
            sent_fps: fps / 4.0,
            delivered_fps: fps,
            expected_fps: fps,
            counted_fps: fps * 0.99,
            connected: 50,
            joins: 50,
            leaves: 0,
            machine_busy: None,
        }
    }

    /// 30 minutes sampled every 10 s; RSS and rate from `f(t)`.
    fn run(f: impl Fn(f64) -> (f64, f64)) -> Vec<Point> {
        (1..=180)
            .map(|i| {
                let t = i as f64 * 10.0;
                let (rss, fps) = f(t);
                point(t, rss, fps)
            })
            .collect()
    }

    #[test]
    fn a_flat_run_after_its_warm_up_passes() {
        // Growth during the warm-up does not count; a spike in a window is outvoted.
        let points = run(|t| {
            let rss = if t < 300.0 { 10.0 + t / 30.0 } else { 20.0 };
            let fps = if t == 1500.0 { 100.0 } else { 4800.0 };
            (rss, fps)
        });
        let v = Verdict::judge(&points, 1800.0).unwrap();
        assert_eq!(
            v.first,
            Window {
                from: 300.0,
                to: 600.0
            }
        );
        assert_eq!(
            v.last,
            Window {
                from: 1500.0,
                to: 1800.0
            }
        );
        assert_eq!(v.rss_first, 20.0 * MIB);
        assert!(v.rss_flat() && v.rate_held() && v.load_held(), "{v:?}");
        assert!((v.delivery_first - 0.99).abs() < 1e-9);
    }

    #[test]
    fn a_leak_or_a_falling_rate_fails() {
        // 20 MiB growing 1 MiB every 5 minutes: medians 21.5 MiB (5–10 min) and 25.5 MiB
        // (25–30 min), +19 %.
        let leak = run(|t| (20.0 + t / 300.0, 4800.0));
        let v = Verdict::judge(&leak, 1800.0).unwrap();
        assert!(!v.rss_flat() && v.rate_held(), "{v:?}");
        assert!((v.rss_growth() - 4.0 / 21.5).abs() < 1e-9, "{v:?}");
        let falling = run(|t| (20.0, 4800.0 - t));
        let v = Verdict::judge(&falling, 1800.0).unwrap();
        assert!(v.rss_flat() && !v.rate_held(), "{v:?}");
        // The test's bot sent a quarter of what was delivered: its load fell as well.
        assert!(!v.load_held());
        let silent = run(|_| (20.0, 0.0));
        assert!(!Verdict::judge(&silent, 1800.0).unwrap().rate_held());
    }

    #[test]
    fn a_short_run_scales_its_windows_and_no_samples_is_no_verdict() {
        let points: Vec<Point> = (1..=12)
            .map(|i| point(i as f64 * 10.0, 20.0, 4800.0))
            .collect();
        let v = Verdict::judge(&points, 120.0).unwrap();
        assert_eq!(
            v.first,
            Window {
                from: 20.0,
                to: 40.0
            }
        );
        assert_eq!(
            v.last,
            Window {
                from: 100.0,
                to: 120.0
            }
        );
        assert!(Verdict::judge(&[], 120.0).is_none());
    }

    #[test]
    fn metrics_are_read_from_prometheus_text() {
        let text = "# HELP videocall_sessions x\nvideocall_sessions 0\nvideocall_sessions_total 7\nvideocall_meetings 3\n";
        assert_eq!(metric(text, "videocall_sessions"), Some(0));
        assert_eq!(metric(text, "videocall_meetings"), Some(3));
        assert_eq!(metric(text, "videocall_joins_total"), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
