//! `videocall-bot`: a load generator and benchmark client. It joins R meetings with P publishers
//! and S subscribers each (every participant a `videocall-client` session over WebSocket or
//! WebTransport, driven by its own task: see `drive.rs`), publishes the media profile of `profile.rs`, and reports expected vs
//! delivered video frames, loss, relay hop latency (p50/p99/p99.9, send → receive on one clock),
//! time to first frame, CONGESTION signals, and the CPU and memory of the bot and the servers
//! (sampled over the measurement window). With several `--url`s the participants of each
//! meeting are spread over those nodes in turn (nodes joined by NATS).
//!
//! With `--churn` participants leave and join again for the whole run (see `churn.rs` for how
//! delivery stays exact across it), and `--sample-every` records a time series (delivered
//! frames/s, the servers' RSS and CPU, joins and leaves) for long runs such as `make soak`.

mod args;
mod churn;
mod drive;
mod link;
mod participant;
mod profile;
mod samples;
mod shards;
mod throttled;
mod ws;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::sync::Mutex;
use videocall_bot::proc::CpuMeter;
use videocall_bot::report::{self, BotReport};
use videocall_client::e2ee::{Identity, OsRng};
use videocall_client::http::served_certificate_hash;
use videocall_client::native::{NativeConfig, RelayUrls, ServerVerification};
use videocall_types::MeetingId;

use crate::args::{Args, Toggle, Transport};
use crate::churn::{MIN_LIFE, Presence};
use crate::participant::{Run, Seat, Timeline, Totals, participant};
use crate::profile::Profile;

/// The `p` quantile of `sorted` microseconds, in milliseconds (`None`: no sample).
fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().checked_sub(1)?);
    Some(f64::from(sorted[i]) / 1000.0)
}

/// The report, for people.
fn print_summary(report: &BotReport, churn: bool) {
    let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);
    println!();
    println!(
        "{:<28} {}/{}",
        "participants joined", report.joined, report.participants
    );
    println!(
        "{:<28} {:.0} / {:.0}",
        "frames/s expected/delivered",
        report.expected_frames_per_sec,
        report.delivered_frames_per_sec
    );
    println!("{:<28} {:.3} %", "loss", report.loss_percent);
    println!(
        "{:<28} {:.0} / {:.0}, loss {:.3} %",
        "audio/s expected/delivered",
        report.audio_expected_per_sec,
        report.audio_delivered_per_sec,
        report.audio_loss_percent
    );
    let latency = report.latency_ms;
    println!(
        "{:<28} p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
        "relay hop latency",
        ms(latency.p50),
        ms(latency.p99),
        ms(latency.p999)
    );
    println!(
        "{:<28} p50 {:.0} ms",
        "time to first frame",
        ms(report.first_frame_ms.p50)
    );
    println!("{:<28} {}", "congestion signals", report.congestion_signals);
    println!(
        "{:<28} {} late, {} skipped for a gap",
        "reorder buffers", report.reorder.late, report.reorder.skipped
    );
    if churn {
        println!(
            "{:<28} {} joins, {} leaves, {} counted frames delivered after a rejoin",
            "churn", report.churn.joins, report.churn.leaves, report.churn.delivered_after_rejoin
        );
    }
    println!(
        "{:<28} {}, {} frames undecryptable, {} refused in clear",
        "e2ee",
        if report.e2ee.on { "on" } else { "off" },
        report.e2ee.undecryptable,
        report.e2ee.refused_in_clear
    );
    if report.throttled.subscribers > 0 {
        println!(
            "{:<28} {} packets, {} KiB",
            "throttled subscribers read",
            report.throttled.packets,
            report.throttled.bytes / 1024
        );
    }
    let mut processes = vec![("bot".to_owned(), report.bot)];
    processes.extend(
        report
            .servers
            .iter()
            .map(|s| (format!("server {}", s.pid.unwrap_or(0)), *s)),
    );
    for (name, p) in processes {
        println!(
            "{name:<28} {:.0} % of one core, {} MiB",
            ms(p.cpu_percent),
            p.rss_bytes.unwrap_or(0) / (1 << 20)
        );
    }
}

/// CPU of the bot and of the servers over the measurement window.
#[derive(Debug, Default)]
struct WindowCpu {
    bot: Option<(f64, u64)>,
    servers: Vec<Option<(f64, u64)>>,
}

/// One node's connection settings, WebTransport certificate included.
async fn native_config(args: &Args, node: usize, transport: Transport) -> NativeConfig {
    let url = args.url[node].clone();
    let mut native = NativeConfig::new(None, Some(url.clone()));
    if transport == Transport::Wt {
        let wt_url = args.wt_url[node.min(args.wt_url.len() - 1)].clone();
        native.relays = vec![RelayUrls {
            webtransport_url: Some(wt_url),
            websocket_url: None,
        }];
        native.verification = match served_certificate_hash(&url).await {
            Some(hash) => ServerVerification::CertHash(hash),
            None => {
                eprintln!("no certificate hash at {url}: WebTransport without verification");
                ServerVerification::Insecure
            }
        };
    }
    native
}

// Participants run on their own threads (`shards.rs`); this runtime only reports.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(args.publishers >= 1, "--publishers must be at least 1");
    anyhow::ensure!(
        args.publishers + args.subscribers >= 2,
        "a meeting needs two participants"
    );
    anyhow::ensure!(!args.url.is_empty(), "--url is required");
    if let Some(churn) = args.churn {
        anyhow::ensure!(
            churn.min >= MIN_LIFE,
            "--churn: a life of at least {MIN_LIFE:?} (the settled part is what is measured)"
        );
    }
    let profile = Profile::default();
    let identity = match args.e2ee {
        Toggle::On => {
            let started = Instant::now();
            let identity = tokio::task::spawn_blocking(|| Identity::generate(&mut OsRng, 2048))
                .await
                .context("key generation panicked")??;
            println!(
                "E2EE on: one RSA-2048 identity for all participants, generated in {} ms",
                started.elapsed().as_millis()
            );
            Some(identity)
        }
        Toggle::Off => None,
    };
    // Per node: the configuration of `--transport`, and WebTransport's for `--wt-participants`.
    let mut natives = Vec::new();
    for node in 0..args.url.len() {
        let mut native = native_config(&args, node, args.transport).await;
        native.e2ee = identity.clone();
        let mut wt = native.clone();
        if args.wt_participants > 0 && args.transport != Transport::Wt {
            wt = native_config(&args, node, Transport::Wt).await;
            wt.e2ee = identity.clone();
        }
        natives.push((native, wt));
    }
    let per_meeting = args.publishers + args.subscribers;
    let total = args.meetings * per_meeting;
    let start = Instant::now();
    let timeline = Timeline {
        start,
        window_from: args.ramp + Duration::from_secs(1),
        window_to: args.ramp + args.duration.saturating_sub(Duration::from_millis(500)),
        end: args.ramp + args.duration,
    };
    let totals = Arc::new(Totals::default());
    let results = Arc::new(Mutex::new(Vec::new()));
    let bot_cpu = CpuMeter::new("self");
    let servers: Vec<(u32, CpuMeter)> = args
        .server_pid
        .iter()
        .map(|p| (*p, CpuMeter::new(p.to_string())))
        .collect();
    println!(
        "videocall-bot: {} meeting(s) × ({} publishers + {} subscribers) = {total} participants on {} node(s) over {:?}{}, ramp {:?}, media {:?}{}",
        args.meetings,
        args.publishers,
        args.subscribers,
        args.url.len(),
        args.transport,
        if args.wt_participants > 0 {
            format!(
                " ({} per meeting over Wt)",
                args.wt_participants.min(per_meeting)
            )
        } else {
            String::new()
        },
        args.ramp,
        args.duration,
        match args.churn {
            Some(c) => format!(", churn: lives of {c}, away {}", args.churn_pause),
            None => String::new(),
        }
    );
    let sampler = args.sample_every.map(|every| {
        tokio::spawn(samples::record(
            every,
            start,
            timeline.end,
            totals.clone(),
            args.server_pid.clone(),
        ))
    });

    // CPU over the measurement window only (joins and leaves cost more than steady media).
    let window_cpu = {
        let pids: Vec<u32> = args.server_pid.clone();
        let (from, to) = (
            tokio::time::Instant::from_std(start + timeline.window_from),
            tokio::time::Instant::from_std(start + timeline.window_to),
        );
        tokio::spawn(async move {
            tokio::time::sleep_until(from).await;
            let bot = CpuMeter::new("self");
            let servers: Vec<CpuMeter> =
                pids.iter().map(|p| CpuMeter::new(p.to_string())).collect();
            tokio::time::sleep_until(to).await;
            WindowCpu {
                bot: bot.read(),
                servers: servers.iter().map(CpuMeter::read).collect(),
            }
        })
    };

    let run = Run {
        args: args.clone(),
        profile,
        timeline,
        totals: totals.clone(),
    };
    let shards = shards::Shards::start(args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }))
    .context("cannot start the participant threads")?;
    let mut tasks = Vec::new();
    let mut presence = None;
    for i in 0..total {
        let (r, within) = (i / per_meeting, i % per_meeting);
        if within == 0 {
            presence = Some(Arc::new(Presence::new(per_meeting)));
        }
        let meeting = MeetingId::new(format!("{}-{r}", args.prefix))
            .context("--prefix makes bad meeting ids")?;
        let (native, wt) = &natives[within % natives.len()];
        let seat = Seat {
            index: i,
            slot: within,
            publisher: (within < args.publishers).then_some(within),
            meeting,
            presence: presence
                .clone()
                .expect("set at the meeting's first participant"),
            native: if within < args.wt_participants {
                wt.clone()
            } else {
                native.clone()
            },
        };
        let delay = args.ramp.mul_f64(i as f64 / total as f64);
        let (run, results) = (run.clone(), results.clone());
        tasks.push(shards.spawn(i, async move {
            tokio::time::sleep(delay).await;
            let measured = participant(seat, run).await;
            results.lock().await.push(measured);
        }));
    }
    let throttled_totals = Arc::new(throttled::ThrottledTotals::default());
    let mut throttled_tasks = Vec::new();
    for t in 0..args.throttled {
        let meeting = format!("{}-0", args.prefix);
        let (base, totals) = (args.url[0].clone(), throttled_totals.clone());
        let (rate, until) = (
            args.throttle_bytes_per_sec,
            tokio::time::Instant::from_std(start + timeline.end),
        );
        throttled_tasks.push(tokio::spawn(async move {
            let user = format!("slow-{t}-{meeting}");
            if let Err(e) = throttled::run(base, user, meeting, rate, until, totals).await {
                eprintln!("throttled subscriber {t}: {e}");
            }
        }));
    }

    // A progress line every second.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_sent, mut last_delivered) = (0, 0);
    while start.elapsed() < timeline.end + Duration::from_millis(500) {
        tick.tick().await;
        let sent = totals.frames_sent.load(Ordering::Relaxed);
        let delivered = totals.frames_delivered.load(Ordering::Relaxed);
        let servers_cpu: Vec<String> = servers
            .iter()
            .filter_map(|(pid, m)| m.read().map(|(cpu, _)| format!("{pid}:{cpu:.0}%")))
            .collect();
        eprintln!(
            "[{:>4.0}s] joined {}/{total}{}  sent {} frames/s  delivered {} frames/s  congestion {}  bot {:.0}%  server {}",
            start.elapsed().as_secs_f64(),
            totals.joined.load(Ordering::Relaxed),
            if args.churn.is_some() {
                format!(
                    " (connected {}, joins {}, leaves {})",
                    totals.connected.load(Ordering::Relaxed),
                    totals.joins.load(Ordering::Relaxed),
                    totals.leaves.load(Ordering::Relaxed)
                )
            } else {
                String::new()
            },
            sent - last_sent,
            delivered - last_delivered,
            totals.congestion.load(Ordering::Relaxed),
            bot_cpu.read().map(|(c, _)| c).unwrap_or(f64::NAN),
            if servers_cpu.is_empty() {
                "-".to_owned()
            } else {
                servers_cpu.join(" ")
            },
        );
        (last_sent, last_delivered) = (sent, delivered);
    }
    for task in tasks {
        task.await.context("a participant task panicked")?;
    }
    tokio::task::spawn_blocking(move || shards.stop())
        .await
        .context("stopping the participant threads panicked")?;
    for task in throttled_tasks {
        task.await.context("a throttled subscriber panicked")?;
    }
    let window_cpu = window_cpu.await.unwrap_or_default();
    let samples = match sampler {
        Some(task) => task.await.context("the sampler panicked")?,
        None => Vec::new(),
    };

    let results = std::mem::take(&mut *results.lock().await);
    let expected = totals.expected.load(Ordering::Relaxed);
    let audio_expected = totals.audio_expected.load(Ordering::Relaxed);
    let delivered = totals.window_delivered.load(Ordering::Relaxed);
    let audio_delivered = totals.audio_window_delivered.load(Ordering::Relaxed);
    let mut latencies: Vec<u32> = results
        .iter()
        .flat_map(|m| m.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let mut first: Vec<u32> = results
        .iter()
        .flat_map(|m| m.first_frames_us.iter().copied())
        .collect();
    first.sort_unstable();
    let window = (timeline.window_to - timeline.window_from).as_secs_f64();
    let loss_of = |expected: u64, delivered: u64| {
        if expected == 0 {
            0.0
        } else {
            100.0 * (1.0 - delivered as f64 / expected as f64).max(0.0)
        }
    };
    let loss = loss_of(expected, delivered);
    let audio_loss = loss_of(audio_expected, audio_delivered);
    let e2ee_dropped: u64 = results.iter().map(|m| m.e2ee_dropped).sum();
    let mismatch_drops: u64 = results.iter().map(|m| m.mismatch_drops).sum();
    let process = |pid, stats: Option<(f64, u64)>| report::Process {
        pid,
        cpu_percent: stats.map(|(cpu, _)| cpu),
        rss_bytes: stats.map(|(_, rss)| rss),
    };
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let report = BotReport {
        transport: format!("{:?}", args.transport).to_lowercase(),
        nodes: args.url.len(),
        meetings: args.meetings,
        publishers: args.publishers,
        subscribers: args.subscribers,
        visible: args.visible,
        unmuted: args.unmuted.unwrap_or(args.publishers).min(args.publishers),
        participants: total,
        joined: load(&totals.joined),
        failed: load(&totals.failed),
        window_seconds: window,
        expected_frames: expected,
        delivered_frames: delivered,
        expected_frames_per_sec: expected as f64 / window,
        delivered_frames_per_sec: delivered as f64 / window,
        loss_percent: loss,
        latency_ms: report::Latency {
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            p999: percentile(&latencies, 0.999),
        },
        first_frame_ms: report::FirstFrame {
            p50: percentile(&first, 0.50),
            max: percentile(&first, 1.0),
        },
        audio_delivered: load(&totals.audio_delivered),
        audio_expected_per_sec: audio_expected as f64 / window,
        audio_delivered_per_sec: audio_delivered as f64 / window,
        audio_loss_percent: audio_loss,
        congestion_signals: load(&totals.congestion),
        reorder: report::Reorder {
            late: results.iter().map(|m| m.reorder_late).sum(),
            skipped: results.iter().map(|m| m.reorder_skipped).sum(),
        },
        e2ee: report::E2ee {
            on: args.e2ee == Toggle::On,
            undecryptable: e2ee_dropped,
            refused_in_clear: mismatch_drops,
        },
        throttled: report::Throttled {
            subscribers: args.throttled,
            joined: load(&throttled_totals.joined),
            packets: load(&throttled_totals.packets),
            bytes: load(&throttled_totals.bytes),
        },
        bot: process(None, window_cpu.bot),
        servers: servers
            .iter()
            .enumerate()
            .map(|(i, (pid, _))| process(Some(*pid), window_cpu.servers.get(i).copied().flatten()))
            .collect(),
        wt_participants: args.wt_participants.min(per_meeting),
        churn: report::Churn {
            on: args.churn.is_some(),
            life_seconds: args
                .churn
                .map(|c| [c.min.as_secs_f64(), c.max.as_secs_f64()]),
            away_seconds: [
                args.churn_pause.min.as_secs_f64(),
                args.churn_pause.max.as_secs_f64(),
            ],
            seed: args.seed,
            joins: load(&totals.joins),
            leaves: load(&totals.leaves),
            rejoins: load(&totals.joins).saturating_sub(load(&totals.joined)),
            delivered_after_rejoin: load(&totals.delivered_after_rejoin),
        },
        samples,
    };
    print_summary(&report, args.churn.is_some());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
