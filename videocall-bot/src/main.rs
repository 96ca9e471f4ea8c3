//! `videocall-bot`: a load generator and benchmark client. It joins R meetings with P publishers
//! and S subscribers each (every participant a real `videocall-client` over WebSocket or
//! WebTransport), publishes the media profile of `profile.rs`, and reports expected vs
//! delivered video frames, loss, relay hop latency (p50/p99/p99.9, send → receive on one clock),
//! time to first frame, CONGESTION signals, and the CPU and memory of the bot and the servers
//! (sampled over the measurement window). With several `--url`s the participants of each
//! meeting are spread over those nodes in turn (nodes joined by NATS).

mod profile;
mod throttled;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tokio::sync::Mutex;
use videocall_client::e2ee::{Identity, OsRng};
use videocall_client::http::served_certificate_hash;
use videocall_client::native::{Client, NativeConfig, RelayUrls, ServerVerification, Update};
use videocall_client::{ClientConfig, Event};
use videocall_types::{MediaPacket, MediaType, MeetingId, UserId, VideoCodec, VideoMetadata};

use crate::profile::{Profile, payload, read_header};
use videocall_bot::proc::CpuMeter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// WebSocket.
    Ws,
    /// WebTransport.
    Wt,
}

/// videocall load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// HTTP/WebSocket base URL of a node (also where the WebTransport certificate hash is asked).
    /// Repeatable: participant k of each meeting uses the (k mod n)-th.
    #[arg(long, default_value = "http://localhost:8080")]
    url: Vec<String>,
    /// WebTransport base URL; repeatable like `--url`, in the same order.
    #[arg(long, default_value = "https://localhost:4433")]
    wt_url: Vec<String>,
    /// Transport every participant uses.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    transport: Transport,
    /// Meetings.
    #[arg(long, default_value_t = 1)]
    meetings: usize,
    /// Video publishers per meeting.
    #[arg(long, default_value_t = 2)]
    publishers: usize,
    /// Receive-only participants per meeting.
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// How long media flows once everyone joined, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Joins are spread over this long, e.g. `10s`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    ramp: Duration,
    /// Each participant subscribes to the video of this many publishers (0: all).
    #[arg(long, default_value_t = 0)]
    visible: usize,
    /// Only this many publishers of each meeting send audio (the others are muted); all when
    /// unset.
    #[arg(long)]
    unmuted: Option<usize>,
    /// Extra WebSocket subscribers in the first meeting that read their socket slowly (see
    /// `--throttle-bytes-per-sec`); they are not counted in the figures of the others.
    #[arg(long, default_value_t = 0)]
    throttled: usize,
    /// Read rate of each throttled subscriber.
    #[arg(long, default_value_t = 64_000)]
    throttle_bytes_per_sec: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Sample this server process's CPU and memory (repeatable).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// Prefix of meeting ids (bot-0, bot-1, …).
    #[arg(long, default_value = "bot")]
    prefix: String,
    /// End-to-end encrypt media as clients do. One RSA-2048 identity, generated at start, is
    /// shared by every participant of this bot (keygen per participant would dominate a run);
    /// every participant still unwraps each sender key and seals and opens every frame.
    #[arg(long, value_enum, default_value_t = Toggle::Off)]
    e2ee: Toggle,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Toggle {
    /// On.
    On,
    /// Off.
    Off,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s}: expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("{s}: unknown unit {unit:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Counters shared by every participant.
#[derive(Debug, Default)]
struct Totals {
    joined: AtomicU64,
    failed: AtomicU64,
    frames_sent: AtomicU64,
    frames_delivered: AtomicU64,
    window_delivered: AtomicU64,
    audio_delivered: AtomicU64,
    audio_window_delivered: AtomicU64,
    congestion: AtomicU64,
}

/// The timeline of a run, relative to `start`.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    start: Instant,
    /// Frames sent from here on are measured…
    window_from: Duration,
    /// …until here.
    window_to: Duration,
    /// Publishing stops here.
    end: Duration,
}

impl Timeline {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    fn in_window(&self, sent_us: u64) -> bool {
        let sent = Duration::from_micros(sent_us);
        sent >= self.window_from && sent < self.window_to
    }
}

/// What one participant measured.
#[derive(Debug, Default)]
struct Measured {
    /// Frames this publisher sent inside the window.
    window_sent: u64,
    /// Audio packets this publisher sent inside the window.
    audio_window_sent: u64,
    latencies_us: Vec<u32>,
    first_frame_ms: Option<f64>,
    /// E2EE: frames that did not open (no key yet, …) and media refused as not encrypted.
    e2ee_dropped: u64,
    mismatch_drops: u64,
}

/// How many participants of a meeting receive publisher `k`'s video.
fn receivers_of(k: usize, publishers: usize, subscribers: usize, visible: usize) -> u64 {
    if visible == 0 {
        return (publishers + subscribers - 1) as u64;
    }
    let subscribers_seeing = if k < visible { subscribers } else { 0 };
    // Publisher j lists the other publishers in order and takes the first `visible`.
    let publishers_seeing = (0..publishers)
        .filter(|&j| j != k)
        .filter(|&j| (if k < j { k } else { k - 1 }) < visible)
        .count();
    (subscribers_seeing + publishers_seeing) as u64
}

#[allow(clippy::too_many_arguments)]
async fn participant(
    index: usize,
    publisher: Option<usize>,
    meeting: MeetingId,
    args: Arc<Args>,
    native: NativeConfig,
    profile: Profile,
    timeline: Timeline,
    totals: Arc<Totals>,
) -> Measured {
    let user = match publisher {
        Some(k) => format!("pub-{k}-{meeting}"),
        None => format!("sub-{index}-{meeting}"),
    };
    let config = ClientConfig::new(UserId::new(user).expect("generated ids are valid"), meeting);
    let joined_at = Instant::now();
    let mut client = Client::start(config, native);
    let handle = client.handle().clone();
    let mut measured = Measured::default();
    let mut publishers_seen: Vec<(usize, u64)> = Vec::new();
    let mut video = tokio::time::interval(profile.frame_interval());
    let mut audio = tokio::time::interval(profile.audio_interval());
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = tokio::time::Instant::from_std(timeline.start + timeline.end);
    let drain = end + Duration::from_millis(500);
    let (mut seq, mut audio_seq, mut joined) = (0u64, 0u64, false);
    let unmuted = publisher.is_some_and(|k| args.unmuted.is_none_or(|n| k < n));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(drain) => break,
            _ = video.tick(), if joined && publisher.is_some() && tokio::time::Instant::now() < end => {
                let key = profile.is_key(seq);
                let sent_us = timeline.now_us();
                let size = if key { profile.keyframe_bytes } else { profile.delta_bytes };
                handle.send_media(MediaPacket {
                    media_type: MediaType::Video as i32,
                    data: payload(size, sent_us, seq),
                    frame_type: if key { "key" } else { "delta" }.into(),
                    timestamp: sent_us as f64 / 1000.0,
                    video_metadata: Some(VideoMetadata { sequence: seq, codec: VideoCodec::Vp8 as i32 }),
                    ..Default::default()
                });
                totals.frames_sent.fetch_add(1, Ordering::Relaxed);
                if timeline.in_window(sent_us) {
                    measured.window_sent += 1;
                }
                seq += 1;
            }
            _ = audio.tick(), if joined && unmuted && tokio::time::Instant::now() < end => {
                let sent_us = timeline.now_us();
                if timeline.in_window(sent_us) {
                    measured.audio_window_sent += 1;
                }
                handle.send_media(MediaPacket {
                    media_type: MediaType::Audio as i32,
                    data: payload(profile.audio_bytes, sent_us, audio_seq),
                    frame_type: "key".into(),
                    ..Default::default()
                });
                audio_seq += 1;
            }
            update = client.next_update() => match update {
                None => break,
                Some(Update::Session(Event::Joined { .. })) => {
                    if !joined {
                        totals.joined.fetch_add(1, Ordering::Relaxed);
                    }
                    joined = true;
                }
                Some(Update::Session(Event::PeerJoined { session, user })) => {
                    if args.visible > 0
                        && let Some(k) = user.strip_prefix("pub-").and_then(|r| r.split('-').next()?.parse().ok())
                    {
                        publishers_seen.retain(|(other, _)| *other != k);
                        publishers_seen.push((k, session));
                        publishers_seen.sort_unstable();
                        let visible: Vec<u64> = publishers_seen.iter().take(args.visible).map(|(_, s)| *s).collect();
                        handle.set_subscription(Some((visible, Vec::new())));
                    }
                }
                Some(Update::Session(Event::Media(media))) => {
                    let now_us = timeline.now_us();
                    match MediaType::try_from(media.packet.media_type) {
                        Ok(MediaType::Video) => {
                            let Some((sent_us, _)) = read_header(&media.packet.data) else { continue };
                            totals.frames_delivered.fetch_add(1, Ordering::Relaxed);
                            if measured.first_frame_ms.is_none() {
                                measured.first_frame_ms = Some(joined_at.elapsed().as_secs_f64() * 1000.0);
                            }
                            if timeline.in_window(sent_us) {
                                totals.window_delivered.fetch_add(1, Ordering::Relaxed);
                                measured.latencies_us.push(now_us.saturating_sub(sent_us).min(u64::from(u32::MAX)) as u32);
                            }
                        }
                        Ok(MediaType::Audio) => {
                            totals.audio_delivered.fetch_add(1, Ordering::Relaxed);
                            if read_header(&media.packet.data).is_some_and(|(sent_us, _)| timeline.in_window(sent_us)) {
                                totals.audio_window_delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {}
                    }
                }
                Some(Update::Session(Event::Congestion { .. })) => {
                    totals.congestion.fetch_add(1, Ordering::Relaxed);
                }
                Some(Update::TransportFailed { error, certificate: true, .. }) => {
                    eprintln!("{}: certificate refused: {error}", index);
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(_) => {}
            },
        }
    }
    let status = client.status();
    measured.e2ee_dropped = status.e2ee_dropped;
    measured.mismatch_drops = status.mismatch_drops;
    handle.leave().await;
    measured
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

/// CPU of the bot and of the servers over the measurement window.
#[derive(Debug, Default)]
struct WindowCpu {
    bot: Option<(f64, u64)>,
    servers: Vec<Option<(f64, u64)>>,
}

/// One node's connection settings, WebTransport certificate included.
async fn native_config(args: &Args, node: usize) -> NativeConfig {
    let url = args.url[node].clone();
    let mut native = NativeConfig::new(None, Some(url.clone()));
    if args.transport == Transport::Wt {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(args.publishers >= 1, "--publishers must be at least 1");
    anyhow::ensure!(
        args.publishers + args.subscribers >= 2,
        "a meeting needs two participants"
    );
    anyhow::ensure!(!args.url.is_empty(), "--url is required");
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
    let mut natives = Vec::new();
    for node in 0..args.url.len() {
        let mut native = native_config(&args, node).await;
        native.e2ee = identity.clone();
        natives.push(native);
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
        "videocall-bot: {} meeting(s) × ({} publishers + {} subscribers) = {total} participants on {} node(s) over {:?}, ramp {:?}, media {:?}",
        args.meetings,
        args.publishers,
        args.subscribers,
        args.url.len(),
        args.transport,
        args.ramp,
        args.duration
    );

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

    let mut tasks = Vec::new();
    for i in 0..total {
        let (r, within) = (i / per_meeting, i % per_meeting);
        let meeting = MeetingId::new(format!("{}-{r}", args.prefix))
            .context("--prefix makes bad meeting ids")?;
        let publisher = (within < args.publishers).then_some(within);
        let delay = args.ramp.mul_f64(i as f64 / total as f64);
        let (args, native, totals, results) = (
            args.clone(),
            natives[within % natives.len()].clone(),
            totals.clone(),
            results.clone(),
        );
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let measured = participant(
                i, publisher, meeting, args, native, profile, timeline, totals,
            )
            .await;
            results.lock().await.push((publisher, measured));
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
            "[{:>4.0}s] joined {}/{total}  sent {} frames/s  delivered {} frames/s  congestion {}  bot {:.0}%  server {}",
            start.elapsed().as_secs_f64(),
            totals.joined.load(Ordering::Relaxed),
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
    for task in throttled_tasks {
        task.await.context("a throttled subscriber panicked")?;
    }
    let window_cpu = window_cpu.await.unwrap_or_default();

    let results = std::mem::take(&mut *results.lock().await);
    let expected: u64 = results
        .iter()
        .filter_map(|(publisher, m)| {
            publisher.map(|k| {
                m.window_sent * receivers_of(k, args.publishers, args.subscribers, args.visible)
            })
        })
        .sum();
    // Audio goes to everyone else in the meeting, whatever they subscribed to.
    let audio_expected: u64 = results
        .iter()
        .map(|(_, m)| m.audio_window_sent * (per_meeting as u64 - 1))
        .sum();
    let delivered = totals.window_delivered.load(Ordering::Relaxed);
    let audio_delivered = totals.audio_window_delivered.load(Ordering::Relaxed);
    let mut latencies: Vec<u32> = results
        .iter()
        .flat_map(|(_, m)| m.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let mut first: Vec<u32> = results
        .iter()
        .filter_map(|(_, m)| m.first_frame_ms.map(|ms| (ms * 1000.0) as u32))
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
    let (bot_cpu_pct, bot_rss) = window_cpu.bot.unwrap_or((f64::NAN, 0));
    let e2ee_dropped: u64 = results.iter().map(|(_, m)| m.e2ee_dropped).sum();
    let mismatch_drops: u64 = results.iter().map(|(_, m)| m.mismatch_drops).sum();
    let server_stats: Vec<serde_json::Value> = servers
        .iter()
        .enumerate()
        .map(|(i, (pid, _))| {
            let (cpu, rss) = window_cpu
                .servers
                .get(i)
                .copied()
                .flatten()
                .unwrap_or((f64::NAN, 0));
            serde_json::json!({ "pid": pid, "cpu_percent": cpu, "rss_bytes": rss })
        })
        .collect();
    let report = serde_json::json!({
        "transport": format!("{:?}", args.transport).to_lowercase(),
        "nodes": args.url.len(),
        "meetings": args.meetings,
        "publishers": args.publishers,
        "subscribers": args.subscribers,
        "visible": args.visible,
        "unmuted": args.unmuted.unwrap_or(args.publishers).min(args.publishers),
        "participants": total,
        "joined": totals.joined.load(Ordering::Relaxed),
        "failed": totals.failed.load(Ordering::Relaxed),
        "window_seconds": window,
        "expected_frames": expected,
        "delivered_frames": delivered,
        "expected_frames_per_sec": expected as f64 / window,
        "delivered_frames_per_sec": delivered as f64 / window,
        "loss_percent": loss,
        "latency_ms": { "p50": percentile(&latencies, 0.50), "p99": percentile(&latencies, 0.99), "p999": percentile(&latencies, 0.999) },
        "first_frame_ms": { "p50": percentile(&first, 0.50), "max": percentile(&first, 1.0) },
        "audio_delivered": totals.audio_delivered.load(Ordering::Relaxed),
        "audio_expected_per_sec": audio_expected as f64 / window,
        "audio_delivered_per_sec": audio_delivered as f64 / window,
        "audio_loss_percent": audio_loss,
        "congestion_signals": totals.congestion.load(Ordering::Relaxed),
        "e2ee": {
            "on": args.e2ee == Toggle::On,
            "undecryptable": e2ee_dropped,
            "refused_in_clear": mismatch_drops,
        },
        "throttled": {
            "subscribers": args.throttled,
            "joined": throttled_totals.joined.load(Ordering::Relaxed),
            "packets": throttled_totals.packets.load(Ordering::Relaxed),
            "bytes": throttled_totals.bytes.load(Ordering::Relaxed),
        },
        "bot": { "cpu_percent": bot_cpu_pct, "rss_bytes": bot_rss },
        "servers": server_stats,
    });
    println!();
    println!("{:<28} {}/{total}", "participants joined", report["joined"]);
    println!(
        "{:<28} {:.0} / {:.0}",
        "frames/s expected/delivered",
        expected as f64 / window,
        delivered as f64 / window
    );
    println!("{:<28} {loss:.3} %", "loss");
    println!(
        "{:<28} {:.0} / {:.0}, loss {audio_loss:.3} %",
        "audio/s expected/delivered",
        audio_expected as f64 / window,
        audio_delivered as f64 / window
    );
    println!(
        "{:<28} p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
        "relay hop latency",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999)
    );
    println!(
        "{:<28} p50 {:.0} ms",
        "time to first frame",
        percentile(&first, 0.50)
    );
    println!(
        "{:<28} {}",
        "congestion signals", report["congestion_signals"]
    );
    println!(
        "{:<28} {}, {e2ee_dropped} frames undecryptable, {mismatch_drops} refused in clear",
        "e2ee",
        if args.e2ee == Toggle::On { "on" } else { "off" }
    );
    if args.throttled > 0 {
        println!(
            "{:<28} {} packets, {} KiB",
            "throttled subscribers read",
            report["throttled"]["packets"],
            report["throttled"]["bytes"].as_u64().unwrap_or(0) / 1024
        );
    }
    println!(
        "{:<28} {bot_cpu_pct:.0} % of one core, {} MiB",
        "bot",
        bot_rss / (1 << 20)
    );
    for s in &server_stats {
        println!(
            "{:<28} {:.0} % of one core, {} MiB",
            format!("server {}", s["pid"]),
            s["cpu_percent"].as_f64().unwrap_or(f64::NAN),
            s["rss_bytes"].as_u64().unwrap_or(0) / (1 << 20)
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn receivers_follow_the_visible_limit() {
        // Everyone sees everyone.
        assert_eq!(receivers_of(0, 3, 5, 0), 7);
        // 970 viewers see the first 9 publishers; publishers see the first 9 others.
        assert_eq!(receivers_of(0, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(8, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(9, 30, 970, 9), 9);
        assert_eq!(receivers_of(29, 30, 970, 9), 0);
    }
}
