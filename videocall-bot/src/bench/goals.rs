//! The targets of issue #17 checked against a bench run's rows: each met, not met, or not
//! measured, and for one not met, how busy the machine was in the runs it reads.

use crate::report::{Figures, Row, cell, thousands};

/// A target: what, what was measured, and whether it holds (`None`: not measured).
#[derive(Debug)]
pub(crate) struct Goal {
    pub(crate) what: String,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
    /// The runs it reads.
    pub(crate) runs: Vec<String>,
}

impl Goal {
    fn new(what: impl Into<String>, runs: &[&str]) -> Self {
        Self {
            what: what.into(),
            measured: "not measured in this run".into(),
            met: None,
            runs: runs.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn checked(mut self, measured: String, met: bool) -> Self {
        self.measured = measured;
        self.met = Some(met);
        self
    }
}

fn find<'a>(rows: &'a [Row], id: &str) -> Option<&'a Figures> {
    rows.iter()
        .find(|r| r.scenario.id == id)
        .and_then(Row::figures)
}

/// The largest (a) step with p99 < 50 ms and loss < 0.1 %.
pub(crate) fn capacity(rows: &[Row]) -> Option<(&Row, &Figures)> {
    rows.iter()
        .filter(|r| r.scenario.group == 'a')
        .filter_map(|r| r.figures().map(|f| (r, f)))
        .filter(|(_, f)| f.p99 < 50.0 && f.loss < 0.1)
        .max_by(|a, b| a.1.delivered_fps.total_cmp(&b.1.delivered_fps))
}

/// For each run: the machine's busy time and who used it, in % of one core.
pub(crate) fn machine_in(rows: &[Row], runs: &[String]) -> String {
    let parts: Vec<String> = runs
        .iter()
        .filter_map(|id| find(rows, id).map(|f| (id, f)))
        .map(|(id, f)| {
            let servers = f.relay_cpu + f.nats_cpu.unwrap_or(0.0);
            match f.foreign {
                Some(l) => format!(
                    "{id}: busy {} % = bot {} + relay{} {} + other {}",
                    cell(l.busy_percent, 0),
                    cell(f.bot_cpu, 0),
                    if f.nats_cpu.is_some() { "s + NATS" } else { "" },
                    cell(servers, 0),
                    cell(l.other_percent, 0)
                ),
                None => format!(
                    "{id}: bot {} + relay {}",
                    cell(f.bot_cpu, 0),
                    cell(servers, 0)
                ),
            }
        })
        .collect();
    parts.join("; ")
}

/// Issue #17's targets for this machine (bot, relay and NATS on its two cores), checked
/// against the rows.
pub(crate) fn goals(rows: &[Row]) -> Vec<Goal> {
    let mut goals = Vec::new();

    let goal = Goal::new(
        "(d) 1000 participants at full rate: loss < 1 %, p99 < 50 ms",
        &["d-1000"],
    );
    let big = rows.iter().find(|r| r.scenario.id == "d-1000");
    goals.push(match big.and_then(|r| r.figures().map(|f| (r, f))) {
        Some((row, f)) => {
            // Against the full rate, not only what the publishers managed to send.
            let full = row.scenario.full_rate_fps();
            let loss = (1.0 - f.delivered_fps / full).max(0.0) * 100.0;
            goal.checked(
                format!(
                    "{} of {} frames/s at full rate (loss {} %; {} % of what was sent), p99 {} ms",
                    thousands(f.delivered_fps),
                    thousands(full),
                    cell(loss, 2),
                    cell(f.loss, 2),
                    cell(f.p99, 1)
                ),
                loss < 1.0 && f.p99 < 50.0,
            )
        }
        None => goal,
    });

    let goal = Goal::new(
        "relay µs per delivered frame: (d) ≤ 1.5× 60×60's",
        &["d-1000", "60-ws"],
    );
    goals.push(match (find(rows, "d-1000"), find(rows, "60-ws")) {
        (Some(d), Some(f)) => {
            let ratio = d.relay_us_per_frame() / f.relay_us_per_frame();
            goal.checked(
                format!(
                    "{}× ({} vs {} µs)",
                    cell(ratio, 2),
                    cell(d.relay_us_per_frame(), 2),
                    cell(f.relay_us_per_frame(), 2)
                ),
                ratio <= 1.5,
            )
        }
        _ => goal,
    });

    let goal = Goal::new(
        "(a) 64 meetings of 4×4: ≤ 8 µs of relay CPU per delivered frame",
        &["a-64"],
    );
    goals.push(match find(rows, "a-64") {
        Some(f) => goal.checked(
            format!(
                "{} µs (loss {} %, p99 {} ms)",
                cell(f.relay_us_per_frame(), 2),
                cell(f.loss, 2),
                cell(f.p99, 1)
            ),
            f.relay_us_per_frame() <= 8.0,
        ),
        None => goal,
    });

    let what = "(a) largest step with p99 < 50 ms and loss < 0.1 %: ≥ 120 000 frames/s";
    let last_step = rows
        .iter()
        .rev()
        .find(|r| r.scenario.group == 'a')
        .map(|r| r.scenario.id.as_str());
    let mut goal = Goal::new(what, &[]);
    goal.runs = last_step.map(str::to_owned).into_iter().collect();
    goals.push(match capacity(rows) {
        Some((row, f)) => goal.checked(
            format!(
                "{} frames/s ({}, p99 {} ms; the next step failed)",
                thousands(f.delivered_fps),
                row.scenario.title,
                cell(f.p99, 1)
            ),
            f.delivered_fps >= 120_000.0,
        ),
        None if last_step.is_some() => goal.checked("no step held".into(), false),
        None => goal,
    });

    let goal = Goal::new(
        "60×60 over WebSocket: p99 < 5 ms, ≤ 2.5 µs of relay CPU per delivered frame",
        &["60-ws"],
    );
    goals.push(match find(rows, "60-ws") {
        Some(f) => goal.checked(
            format!(
                "p99 {} ms, {} µs (loss {} %)",
                cell(f.p99, 2),
                cell(f.relay_us_per_frame(), 2),
                cell(f.loss, 2)
            ),
            f.p99 < 5.0 && f.relay_us_per_frame() <= 2.5 && f.loss < 0.1,
        ),
        None => goal,
    });

    let goal = Goal::new("(b) 25×25 over WebTransport: p99 < 1.5 ms", &["b-wt"]);
    goals.push(match find(rows, "b-wt") {
        Some(f) => goal.checked(
            format!("p99 {} ms (loss {} %)", cell(f.p99, 2), cell(f.loss, 2)),
            f.p99 < 1.5 && f.loss < 0.1,
        ),
        None => goal,
    });

    for (ws, wt, n) in [("b-ws", "b-wt", 25), ("60-ws", "60-wt", 60)] {
        let goal = Goal::new(
            format!("(f) {n}×{n}: WebTransport relay CPU per delivered frame ≤ 1.2× WebSocket's"),
            &[ws, wt],
        );
        goals.push(match (find(rows, ws), find(rows, wt)) {
            (Some(ws), Some(wt)) => {
                let ratio = wt.relay_us_per_frame() / ws.relay_us_per_frame();
                goal.checked(
                    format!(
                        "{}× ({} vs {} µs; WT loss {} %)",
                        cell(ratio, 2),
                        cell(wt.relay_us_per_frame(), 2),
                        cell(ws.relay_us_per_frame(), 2),
                        cell(wt.loss, 2)
                    ),
                    ratio <= 1.2 && wt.loss < 1.0,
                )
            }
            _ => goal,
        });
    }

    for (id, what) in [
        (
            "e-60",
            "(e) two nodes on one nats-server: ≥ 80 % of one node's CPU efficiency (60×60; µs per frame, relays + NATS)",
        ),
        (
            "e-60-cluster",
            "(e) three nodes on a 3-server NATS cluster, one meeting spanning it: no loss, ≥ 80 % of one node's CPU efficiency (60×60)",
        ),
    ] {
        let goal = Goal::new(what, &["60-ws", id]);
        goals.push(match (find(rows, "60-ws"), find(rows, id)) {
            (Some(single), Some(nats)) => {
                let efficiency = single.cpu_us_per_frame() / nats.cpu_us_per_frame();
                let delivered = nats.delivered_fps / single.delivered_fps;
                goal.checked(
                    format!(
                        "{} % ({} vs {} µs per frame); delivered {} % of one node's, loss {} %",
                        cell(efficiency * 100.0, 0),
                        cell(single.cpu_us_per_frame(), 2),
                        cell(nats.cpu_us_per_frame(), 2),
                        cell(delivered * 100.0, 0),
                        cell(nats.loss, 2)
                    ),
                    efficiency >= 0.8 && nats.loss < 0.1,
                )
            }
            _ => goal,
        });
    }

    let goal = Goal::new(
        "presence digests: (c) 1 → 500 costs the relay less per delivered frame than with every heartbeat forwarded (p)",
        &["c-500", "p-500-original"],
    );
    goals.push(match (find(rows, "c-500"), find(rows, "p-500-original")) {
        (Some(digest), Some(original)) => goal.checked(
            format!(
                "{} vs {} µs per frame (relay {} % vs {} % of a core for {} vs {} frames/s; bot {} vs {} µs)",
                cell(digest.relay_us_per_frame(), 1),
                cell(original.relay_us_per_frame(), 1),
                cell(digest.relay_cpu, 0),
                cell(original.relay_cpu, 0),
                thousands(digest.delivered_fps),
                thousands(original.delivered_fps),
                cell(digest.bot_us_per_frame(), 1),
                cell(original.bot_us_per_frame(), 1)
            ),
            digest.relay_us_per_frame() < original.relay_us_per_frame()
                && digest.loss <= original.loss + 0.1,
        ),
        _ => goal,
    });

    let runs = ["b-ws", "60-ws", "a-64"];
    let mut goal = Goal::new(
        "a bot cheaper than the relay: ≤ 5 µs of bot CPU per received frame (25×25, 60×60, 64 × 4×4)",
        &runs,
    );
    let measured: Vec<(&str, &Figures)> = runs
        .iter()
        .filter_map(|id| find(rows, id).map(|f| (*id, f)))
        .collect();
    if !measured.is_empty() {
        let text = measured
            .iter()
            .map(|(id, f)| {
                format!(
                    "{id} {} µs ({}× the relay's)",
                    cell(f.bot_us_per_frame(), 2),
                    cell(f.bot_cpu / f.relay_cpu, 2)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let met = measured.iter().all(|(_, f)| f.bot_us_per_frame() <= 5.0);
        goal = goal.checked(text, met);
    }
    goals.push(goal);

    let goal = Goal::new(
        "(g) one throttled subscriber: the others' p99 does not move (within +25 % or +1 ms of (b) WebSocket)",
        &["b-ws", "g-ws"],
    );
    goals.push(match (find(rows, "b-ws"), find(rows, "g-ws")) {
        (Some(b), Some(g)) => goal.checked(
            format!(
                "p99 {} ms vs {} ms, loss {} %, {} CONGESTION signals",
                cell(g.p99, 2),
                cell(b.p99, 2),
                cell(g.loss, 2),
                g.congestion
            ),
            g.p99 <= (b.p99 * 1.25).max(b.p99 + 1.0) && g.loss < 0.1,
        ),
        _ => goal,
    });
    goals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ForeignLoad;
    use crate::scenario::{self, Scenario};

    fn figures(delivered_fps: f64, relay_cpu: f64, bot_cpu: f64, p99: f64) -> Figures {
        Figures {
            expected_fps: delivered_fps,
            delivered_fps,
            loss: 0.0,
            audio_loss: 0.0,
            p50: p99 / 3.0,
            p99,
            p999: p99 * 1.2,
            first_frame: 5.0,
            congestion: 0,
            joined: 60,
            relay_cpu,
            relay_rss_mib: 20.0,
            nats_cpu: None,
            bot_cpu,
            foreign: Some(ForeignLoad {
                other_percent: 3.0,
                busy_percent: relay_cpu + bot_cpu + 3.0,
            }),
        }
    }

    fn row(scenario: Scenario, f: Figures) -> Row {
        Row {
            scenario,
            load_before: 0.5,
            outcome: Ok(f),
        }
    }

    fn scenario(id: &str) -> Scenario {
        scenario::fixed()
            .into_iter()
            .chain(scenario::large())
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} is a scenario"))
    }

    fn verdict<'a>(goals: &'a [Goal], starts: &str) -> &'a Goal {
        goals
            .iter()
            .find(|g| g.what.starts_with(starts))
            .unwrap_or_else(|| panic!("a goal starting {starts}"))
    }

    #[test]
    fn targets_are_checked_against_the_runs_they_read() {
        // 60×60 at 2.0 µs per frame (21.2 % of a core for 106 200 frames/s), its WT twin at
        // 1.5× that, two NATS nodes at 90 % of its efficiency, the cluster at 70 %.
        let mut nats = figures(106_200.0, 21.24 / 0.9 * 0.8, 30.0, 4.0);
        nats.nats_cpu = Some(21.24 / 0.9 * 0.2);
        let mut cluster = figures(106_200.0, 21.24 / 0.7 * 0.8, 30.0, 4.0);
        cluster.nats_cpu = Some(21.24 / 0.7 * 0.2);
        let rows = vec![
            row(scenario("60-ws"), figures(106_200.0, 21.24, 30.0, 4.0)),
            row(scenario("60-wt"), figures(106_200.0, 31.86, 40.0, 9.0)),
            row(scenario("e-60"), nats),
            row(scenario("e-60-cluster"), cluster),
        ];
        let goals = goals(&rows);
        let is = |starts: &str| verdict(&goals, starts).met;
        assert_eq!(is("60×60 over WebSocket"), Some(true));
        assert_eq!(is("(f) 60×60"), Some(false));
        assert_eq!(is("(f) 25×25"), None);
        assert_eq!(is("(e) two nodes"), Some(true));
        assert_eq!(is("(e) three nodes"), Some(false));
        assert_eq!(is("(d) 1000"), None);
        let mut d = figures(200_000.0, 60.0, 50.0, 20.0);
        d.loss = 0.5;
        let big = super::goals(&[row(scenario("d-1000"), d)]);
        let big = verdict(&big, "(d) 1000");
        // 0.5 % of what was sent, but 26 % short of the 270 000 frames/s of the full rate.
        assert_eq!(big.met, Some(false));
        assert!(big.measured.contains("loss 25.93 %"), "{}", big.measured);
        // The bot's 30 % of a core over 106 200 frames/s is 2.8 µs per frame.
        assert_eq!(is("a bot cheaper"), Some(true));
        let wt = verdict(&goals, "(f) 60×60");
        assert!(wt.measured.starts_with("1.50×"), "{}", wt.measured);
        assert_eq!(
            machine_in(&rows, &wt.runs),
            "60-ws: busy 54 % = bot 30 + relay 21 + other 3; 60-wt: busy 75 % = bot 40 + relay 32 + other 3"
        );
    }

    #[test]
    fn capacity_is_the_largest_step_that_held() {
        let rows = vec![
            row(
                scenario::capacity_step(64),
                figures(23_040.0, 16.0, 20.0, 1.4),
            ),
            row(
                scenario::capacity_step(96),
                figures(34_560.0, 30.0, 30.0, 12.0),
            ),
            row(
                scenario::capacity_step(128),
                figures(46_000.0, 90.0, 95.0, 71.0),
            ),
        ];
        let goals = goals(&rows);
        let capacity = verdict(&goals, "(a) largest step");
        assert_eq!(capacity.met, Some(false));
        assert!(
            capacity
                .measured
                .starts_with("34\u{202f}560 frames/s (96 meetings")
        );
        assert_eq!(capacity.runs, ["a-128"]);
        // 16 % of a core over 23 040 frames/s: 6.9 µs per frame.
        assert_eq!(verdict(&goals, "(a) 64 meetings").met, Some(true));
    }
}
