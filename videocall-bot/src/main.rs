//! `videocall-bot`: a load generator and benchmark client. It joins R meetings with P publishers
//! and S subscribers each (every participant a real `videocall-client` over WebSocket or
//! WebTransport), publishes the media profile of `profile.rs`, and reports expected vs
//! delivered video frames, loss, relay hop latency (p50/p99/p99.9, send → receive on one clock),
//! time to first frame, CONGESTION signals, and the CPU and memory of the bot and the servers
//! (sampled over the measurement window). With several `--url`s the participants of each
//! meeting are spread over those nodes in turn (nodes joined by NATS).
//!
//! With `--churn` participants leave and join again for the whole run (see `churn.rs` for how
//! delivery stays exact across it), and `--sample-every` records a time series (delivered
//! frames/s, the servers' RSS and CPU, joins and leaves) for long runs such as `make soak`.

mod churn;
mod profile;
mod samples;
mod throttled;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tokio::sync::Mutex;
use videocall_client::e2ee::{Identity, OsRng};
use videocall_client::http::served_certificate_hash;
use videocall_client::native::{Client, NativeConfig, RelayUrls, ServerVerification, Update};
use videocall_client::{ClientConfig, Event, Subscription};
use videocall_types::{
    MediaPacket, MediaType, MeetingId, SessionId, StreamKey, UserId, VideoCodec, VideoMetadata,
};

use crate::churn::{MIN_LIFE, Presence, Rng, Settled, Span};
use crate::profile::{Profile, Stamp, payload, read_header};
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
    /// The first N participants of each meeting use WebTransport whatever `--transport` says
    /// (a mixed meeting).
    #[arg(long, default_value_t = 0)]
    wt_participants: usize,
    /// Churn: each participant leaves after a random life drawn from this span (e.g.
    /// `20s..90s`) and joins again, as a new session of the same user, for the whole run.
    #[arg(long, value_parser = parse_span)]
    churn: Option<Span>,
    /// With `--churn`: how long a participant stays away before it joins again (spans the
    /// relay's 3 s reconnect grace by default, so both a quick return and a full leave occur).
    #[arg(long, default_value = "0s..5s", value_parser = parse_span)]
    churn_pause: Span,
    /// Seed of the churn schedule (lives and pauses), for a run that can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Record a sample (delivered frames/s, servers' RSS and CPU, joins, leaves) this often,
    /// into the report's `samples`.
    #[arg(long, value_parser = parse_duration)]
    sample_every: Option<Duration>,
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

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s, parse_duration)
}

/// Counters shared by every participant.
#[derive(Debug, Default)]
struct Totals {
    /// Participants that joined at least once.
    joined: AtomicU64,
    failed: AtomicU64,
    /// Every join, first joins and rejoins after churn.
    joins: AtomicU64,
    /// Leaves the churn asked for.
    leaves: AtomicU64,
    /// Sessions joined now.
    connected: AtomicI64,
    frames_sent: AtomicU64,
    frames_delivered: AtomicU64,
    /// Counted (video frame, receiver) pairs: what should be delivered (see `churn.rs`).
    expected: AtomicU64,
    window_delivered: AtomicU64,
    /// Counted video frames delivered to a session that was not its participant's first.
    delivered_after_rejoin: AtomicU64,
    audio_delivered: AtomicU64,
    audio_expected: AtomicU64,
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

/// What one participant measured, over all its sessions.
#[derive(Debug, Default)]
struct Measured {
    latencies_us: Vec<u32>,
    /// Join → first video frame, once per session.
    first_frames_us: Vec<u32>,
    /// E2EE: frames that did not open (no key yet, …) and media refused as not encrypted.
    e2ee_dropped: u64,
    mismatch_drops: u64,
}

/// Whether participant `receiver` of a meeting (publishers first, then subscribers) receives
/// publisher `k`'s video: everyone but `k` itself, or with `--visible` only the first `visible`
/// publishers (for a publisher: the first `visible` of the others).
fn sees(receiver: usize, k: usize, publishers: usize, visible: usize) -> bool {
    if receiver == k {
        return false;
    }
    if visible == 0 {
        return true;
    }
    if receiver >= publishers {
        return k < visible;
    }
    // Publisher `receiver` lists the other publishers in order and takes the first `visible`.
    (if k < receiver { k } else { k - 1 }) < visible
}

/// The publisher index in a bot user id (`pub-<k>-<meeting>`).
fn publisher_of(user: &str) -> Option<usize> {
    user.strip_prefix("pub-")?.split('-').next()?.parse().ok()
}

/// Where one participant sits: its meeting, its place in it, and how it connects.
#[derive(Debug, Clone)]
struct Seat {
    /// Over the whole bot.
    index: usize,
    /// Within its meeting (publishers first).
    slot: usize,
    publisher: Option<usize>,
    meeting: MeetingId,
    presence: Arc<Presence>,
    native: NativeConfig,
}

/// Why one session of a participant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The churn made it leave; it joins again after a pause.
    Left,
    /// The run is over.
    Drained,
    /// It cannot connect (a refused certificate) or its driver stopped.
    Failed,
}

/// Everything a participant's sessions share.
#[derive(Debug, Clone)]
struct Run {
    args: Arc<Args>,
    profile: Profile,
    timeline: Timeline,
    totals: Arc<Totals>,
}

/// One participant for the whole run: one session, or with `--churn` a session after another.
async fn participant(seat: Seat, run: Run) -> Measured {
    let mut measured = Measured::default();
    let churn = run.args.churn;
    let end = tokio::time::Instant::from_std(run.timeline.start + run.timeline.end);
    let mut rng = Rng::new(run.args.seed.wrapping_add(seat.index as u64));
    if churn.is_none() {
        // Registered before the window opens (joins happen during the ramp): a participant
        // that joins late or not at all counts as loss, as it should.
        seat.presence.set(seat.slot, Some(Settled::ALWAYS));
    }
    for life in 0.. {
        let length = churn.map(|span| span.draw(&mut rng));
        let ended = session(&seat, &run, life, length, &mut measured).await;
        if churn.is_some() {
            seat.presence.set(seat.slot, None);
        }
        if ended != Ended::Left {
            break;
        }
        let back = tokio::time::Instant::now() + run.args.churn_pause.draw(&mut rng);
        if back >= end {
            break;
        }
        tokio::time::sleep_until(back).await;
    }
    measured
}

/// One session of a participant: `life` is its number (0 first), `length` how long it stays
/// once joined (`None`: until the run ends).
async fn session(
    seat: &Seat,
    run: &Run,
    life: u64,
    length: Option<Duration>,
    measured: &mut Measured,
) -> Ended {
    let (args, profile, timeline, totals) = (&run.args, run.profile, run.timeline, &run.totals);
    let meeting = &seat.meeting;
    let user = match seat.publisher {
        Some(k) => format!("pub-{k}-{meeting}"),
        None => format!("sub-{}-{meeting}", seat.index),
    };
    let config = ClientConfig::new(
        UserId::new(user).expect("generated ids are valid"),
        meeting.clone(),
    );
    let started = Instant::now();
    let mut client = Client::start(config, seat.native.clone());
    let handle = client.handle().clone();
    let mut publishers_seen: Vec<(usize, u64)> = Vec::new();
    let mut video = tokio::time::interval(profile.frame_interval());
    let mut audio = tokio::time::interval(profile.audio_interval());
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = tokio::time::Instant::from_std(timeline.start + timeline.end);
    let drain = end + Duration::from_millis(500);
    // Set once joined: when the churn makes this session leave.
    let mut leave_at: Option<tokio::time::Instant> = None;
    let mut settled = if length.is_none() {
        Some(Settled::ALWAYS)
    } else {
        None
    };
    let (mut seq, mut audio_seq, mut joined, mut first_frame) = (0u64, 0u64, false, false);
    let unmuted = seat
        .publisher
        .is_some_and(|k| args.unmuted.is_none_or(|n| k < n));
    let (publishers, visible) = (args.publishers, args.visible);
    let ended = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(drain) => break Ended::Drained,
            _ = tokio::time::sleep_until(leave_at.unwrap_or(drain)), if leave_at.is_some() => break Ended::Left,
            _ = video.tick(), if joined && seat.publisher.is_some() && tokio::time::Instant::now() < end => {
                let k = seat.publisher.expect("only publishers tick video");
                let key = profile.is_key(seq);
                let sent_us = timeline.now_us();
                let counted = timeline.in_window(sent_us) && settled.is_some_and(|s| s.contains(sent_us));
                if counted {
                    let receivers = seat.presence.receivers(seat.slot, sent_us, |r| sees(r, k, publishers, visible));
                    totals.expected.fetch_add(receivers, Ordering::Relaxed);
                }
                let size = if key { profile.keyframe_bytes } else { profile.delta_bytes };
                handle.send_media(MediaPacket {
                    media_type: MediaType::Video as i32,
                    data: payload(size, Stamp { sent_us, seq, counted }),
                    frame_type: if key { "key" } else { "delta" }.into(),
                    timestamp: sent_us as f64 / 1000.0,
                    video_metadata: Some(VideoMetadata { sequence: seq, codec: VideoCodec::Vp8 as i32 }),
                    ..Default::default()
                });
                totals.frames_sent.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
            _ = audio.tick(), if joined && unmuted && tokio::time::Instant::now() < end => {
                let sent_us = timeline.now_us();
                let counted = timeline.in_window(sent_us) && settled.is_some_and(|s| s.contains(sent_us));
                if counted {
                    // Audio goes to everyone else in the meeting, whatever they subscribed to.
                    let receivers = seat.presence.receivers(seat.slot, sent_us, |_| true);
                    totals.audio_expected.fetch_add(receivers, Ordering::Relaxed);
                }
                handle.send_media(MediaPacket {
                    media_type: MediaType::Audio as i32,
                    data: payload(profile.audio_bytes, Stamp { sent_us, seq: audio_seq, counted }),
                    frame_type: "key".into(),
                    ..Default::default()
                });
                audio_seq += 1;
            }
            update = client.next_update() => match update {
                None => break Ended::Failed,
                Some(Update::Session(Event::Joined { .. })) => {
                    // A reconnect of the driver inside one life is not a new life.
                    if !joined {
                        totals.joins.fetch_add(1, Ordering::Relaxed);
                        totals.connected.fetch_add(1, Ordering::Relaxed);
                        if life == 0 {
                            totals.joined.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(length) = length {
                            let joined_us = timeline.now_us();
                            let life = Settled::of_life(joined_us, joined_us + length.as_micros() as u64);
                            settled = Some(life);
                            seat.presence.set(seat.slot, settled);
                            leave_at = Some(tokio::time::Instant::now() + length);
                        }
                    }
                    joined = true;
                }
                Some(Update::Session(Event::PeerJoined { session, user })) => {
                    if visible > 0 && let Some(k) = publisher_of(&user) {
                        publishers_seen.retain(|(other, _)| *other != k);
                        publishers_seen.push((k, session));
                        publishers_seen.sort_unstable();
                        let shown = publishers_seen.iter().take(visible).filter_map(|(_, s)| SessionId::from_wire(*s));
                        handle.subscribe(Subscription::only(shown.map(StreamKey::camera)));
                    }
                }
                Some(Update::Session(Event::Media(media))) => {
                    let now_us = timeline.now_us();
                    let Some(stamp) = read_header(&media.packet.data) else { continue };
                    let counted = stamp.counted && settled.is_some_and(|s| s.contains(stamp.sent_us));
                    match MediaType::try_from(media.packet.media_type) {
                        Ok(MediaType::Video) => {
                            totals.frames_delivered.fetch_add(1, Ordering::Relaxed);
                            if !first_frame {
                                first_frame = true;
                                measured.first_frames_us.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                            }
                            // With --visible a subscription briefly shows more than the rule
                            // while a publisher is away: only what the rule expects counts.
                            if counted && publisher_of(&media.user).is_some_and(|k| sees(seat.slot, k, publishers, visible)) {
                                totals.window_delivered.fetch_add(1, Ordering::Relaxed);
                                if life > 0 {
                                    totals.delivered_after_rejoin.fetch_add(1, Ordering::Relaxed);
                                }
                                measured.latencies_us.push(now_us.saturating_sub(stamp.sent_us).min(u64::from(u32::MAX)) as u32);
                            }
                        }
                        Ok(MediaType::Audio) => {
                            totals.audio_delivered.fetch_add(1, Ordering::Relaxed);
                            if counted {
                                totals.audio_window_delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {}
                    }
                }
                Some(Update::Session(Event::Congestion { .. })) => {
                    totals.congestion.fetch_add(1, Ordering::Relaxed);
                }
                Some(Update::TransportFailed { error, .. }) if error.is_certificate() => {
                    eprintln!("{}: certificate refused: {error}", seat.index);
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    break Ended::Failed;
                }
                Some(_) => {}
            },
        }
    };
    let status = client.status();
    measured.e2ee_dropped += status.e2ee_dropped;
    measured.mismatch_drops += status.mismatch_drops;
    if joined {
        totals.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if ended == Ended::Left {
        totals.leaves.fetch_add(1, Ordering::Relaxed);
    }
    handle.leave().await;
    ended
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

#[tokio::main]
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
        tasks.push(tokio::spawn(async move {
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
    let (bot_cpu_pct, bot_rss) = window_cpu.bot.unwrap_or((f64::NAN, 0));
    let e2ee_dropped: u64 = results.iter().map(|m| m.e2ee_dropped).sum();
    let mismatch_drops: u64 = results.iter().map(|m| m.mismatch_drops).sum();
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
        "wt_participants": args.wt_participants.min(per_meeting),
        "churn": {
            "on": args.churn.is_some(),
            "life_seconds": args.churn.map(|c| [c.min.as_secs_f64(), c.max.as_secs_f64()]),
            "away_seconds": [args.churn_pause.min.as_secs_f64(), args.churn_pause.max.as_secs_f64()],
            "seed": args.seed,
            "joins": totals.joins.load(Ordering::Relaxed),
            "leaves": totals.leaves.load(Ordering::Relaxed),
            "rejoins": totals.joins.load(Ordering::Relaxed).saturating_sub(totals.joined.load(Ordering::Relaxed)),
            "delivered_after_rejoin": totals.delivered_after_rejoin.load(Ordering::Relaxed),
        },
        "samples": samples,
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
    if args.churn.is_some() {
        println!(
            "{:<28} {} joins, {} leaves, {} counted frames delivered after a rejoin",
            "churn",
            report["churn"]["joins"],
            report["churn"]["leaves"],
            report["churn"]["delivered_after_rejoin"]
        );
    }
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

    /// How many participants of a meeting receive publisher `k`'s video.
    fn receivers_of(k: usize, publishers: usize, subscribers: usize, visible: usize) -> usize {
        (0..publishers + subscribers)
            .filter(|&r| sees(r, k, publishers, visible))
            .count()
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
        // A subscriber sees the first 9; publisher 3 sees 0..=9 but itself.
        assert!(sees(30, 8, 30, 9) && !sees(30, 9, 30, 9));
        assert!(sees(3, 9, 30, 9) && !sees(3, 3, 30, 9) && !sees(3, 10, 30, 9));
    }

    #[test]
    fn publisher_indices_come_from_bot_user_ids() {
        assert_eq!(publisher_of("pub-12-bot-3"), Some(12));
        assert_eq!(publisher_of("sub-4-bot-0"), None);
        assert_eq!(publisher_of("pub-x-bot-0"), None);
    }
}
