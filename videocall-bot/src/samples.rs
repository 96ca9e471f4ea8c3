//! `--sample-every`: a time series over the run, for long runs (`make soak`) where one figure
//! for the whole window would hide a trend. Each sample covers the interval since the one
//! before: frames sent and delivered per second (all of them, and the counted ones with what
//! was expected of them), joins and leaves so far, sessions joined now, and the RSS and CPU of
//! each `--server-pid` and of the bot, and how busy the whole machine was (other load on a
//! shared machine shows there, not in the servers' CPU).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use videocall_bot::proc::{machine_ticks, sample};
use videocall_bot::report::{Process, Sample};

use crate::participant::Totals;

/// The counters a sample takes differences of.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    sent: u64,
    delivered: u64,
    expected: u64,
    counted: u64,
}

impl Counts {
    fn of(totals: &Totals) -> Self {
        Self {
            sent: totals.frames_sent.load(Ordering::Relaxed),
            delivered: totals.frames_delivered.load(Ordering::Relaxed),
            expected: totals.expected.load(Ordering::Relaxed),
            counted: totals.window_delivered.load(Ordering::Relaxed),
        }
    }
}

/// Samples every `every` from `start` until `start + until`.
pub(crate) async fn record(
    every: Duration,
    start: Instant,
    until: Duration,
    totals: Arc<Totals>,
    server_pids: Vec<u32>,
) -> Vec<Sample> {
    let every = every.max(Duration::from_millis(100));
    let cpu_of = |pids: &[u32]| -> Vec<Option<(f64, u64)>> {
        pids.iter().map(|p| sample(&p.to_string())).collect()
    };
    let mut samples = Vec::new();
    let (mut last_at, mut last) = (Instant::now(), Counts::of(&totals));
    let mut last_servers = cpu_of(&server_pids);
    let mut last_machine = machine_ticks();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut next = tokio::time::Instant::from_std(start) + every;
    let end = tokio::time::Instant::from_std(start + until);
    loop {
        tokio::time::sleep_until(next.min(end)).await;
        let now = Instant::now();
        let counts = Counts::of(&totals);
        let servers_now = cpu_of(&server_pids);
        let machine = machine_ticks();
        // Busy share of all CPUs' ticks, in percent of one core.
        let machine_busy = match (machine, last_machine) {
            (Some((busy, total)), Some((busy0, total0))) if total > total0 => {
                Some(busy.saturating_sub(busy0) as f64 / (total - total0) as f64 * cpus * 100.0)
            }
            _ => None,
        };
        let dt = now.duration_since(last_at).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        let servers = server_pids
            .iter()
            .zip(servers_now.iter().zip(&last_servers))
            .map(|(pid, (now, before))| match (now, before) {
                (Some((cpu, rss)), Some((cpu0, _))) => Process {
                    pid: Some(*pid),
                    rss_bytes: Some(*rss),
                    cpu_percent: Some((cpu - cpu0) / dt * 100.0),
                },
                // The server is gone (or was not there): say so instead of a made-up figure.
                _ => Process {
                    pid: Some(*pid),
                    ..Process::default()
                },
            })
            .collect();
        samples.push(Sample {
            t_seconds: now.duration_since(start).as_secs_f64(),
            connected: totals.connected.load(Ordering::Relaxed),
            joins: totals.joins.load(Ordering::Relaxed),
            leaves: totals.leaves.load(Ordering::Relaxed),
            sent_fps: rate(counts.sent, last.sent),
            delivered_fps: rate(counts.delivered, last.delivered),
            expected_counted_fps: rate(counts.expected, last.expected),
            delivered_counted_fps: rate(counts.counted, last.counted),
            servers,
            bot_rss_bytes: sample("self").map(|(_, rss)| rss),
            machine_busy_percent: machine_busy,
        });
        (last_at, last, last_servers, last_machine) = (now, counts, servers_now, machine);
        if next >= end {
            return samples;
        }
        next += every;
    }
}
