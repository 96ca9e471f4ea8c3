//! Faults on real processes, each measured against a clean run of the same meeting: `nats-server`
//! killed for 5 s and for 30 s under meetings on two nodes, a relay node killed under a client
//! given several node URLs, a reader that stalls and a sender at ten times the rate limit.
//!
//! Participants are real clients (WebSocket, and WebTransport where it costs nothing) sending
//! media at a realistic rate; every test payload carries its sequence and send time, so a
//! receiver measures delivery, latency and gaps, and recognises a stale packet. The figures are
//! printed (`cargo test … -- --nocapture`) for docs/RELIABILITY.md.
//!
//! Bounds are generous on purpose: CI is a loaded 2-core machine running these scenarios side
//! by side (libtest runs two at once there), so each bound says what would be a real failure,
//! not what a quiet machine achieves.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;
use videocall_testkit::client::{Incoming, TestClient};
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::{media, media_of};
use videocall_testkit::process::{
    Service, binary, certificate_hash, http_get, single_node_on, wait_for_status,
};
use videocall_testkit::{PATIENCE, free_tcp_port, free_udp_port};
use videocall_types::{
    MediaType, MeetingEventType, MeetingPacket, PacketType, PacketWrapper, SYSTEM_USER_ID,
};

/// Audio: a 160-byte packet every 20 ms (Opus at 64 kbit/s).
const AUDIO_EVERY: Duration = Duration::from_millis(20);
const AUDIO_BYTES: usize = 160;
/// Video: 30 frames a second of 4000 bytes (≈ 1 Mbit/s, 720p-ish), a keyframe every 30th.
const VIDEO_EVERY: Duration = Duration::from_millis(33);
const VIDEO_BYTES: usize = 4000;
const KEYFRAME_EVERY: u64 = 30;
/// Marks a payload as ours: magic, sequence, send time (µs since [`origin`]).
const MAGIC: &[u8; 4] = b"FLT1";

/// The others keep at least this share of the clean run's delivery (the issue: within 10 %).
const DELIVERY_KEPT: f64 = 0.9;
/// The others' p99 latency under a fault may exceed the clean run's by this much, or be up to
/// twice it, or reach [`P99_FLOOR_MS`], whichever is largest. On a quiet machine p99 is tens
/// of milliseconds; on the shared 2-core machine these tests were written on (debug builds,
/// load average 15 from other builds) p99 swung between 0.2 and 2.9 s from one 4-s window to
/// the next with no fault at all, so a tighter bound would only measure the neighbours. What
/// the bound still catches is a relay that stops serving; delivery, gaps and cut-offs are
/// asserted separately, and every figure is printed for docs/RELIABILITY.md.
const P99_SLACK_MS: f64 = 100.0;
/// See [`P99_SLACK_MS`].
const P99_FLOOR_MS: f64 = 5000.0;
/// A meeting that must not stop may go this long without a packet from a participant. A meeting
/// stopped by the outage would show the outage's whole 5 or 30 s; the loaded machine showed
/// gaps of up to 1.7 s in windows without any fault (debug builds, load average 15).
const WORST_GAP: Duration = Duration::from_secs(3);
/// The cross-node meeting resumes within this of NATS' return (the figure; the bus
/// retries at least every 500 ms).
const RESUME_WITHIN: Duration = Duration::from_secs(2);
/// A packet received after NATS returned was sent no earlier than this before its return:
/// anything older was published while the bus was down and replayed late.
const STALE_MARGIN: Duration = Duration::from_millis(250);
/// A client given two nodes is in the meeting through the second within this of the first's
/// death: its first reconnect waits 500 ms, the dead node refuses at once, the other accepts.
const FAILOVER_WITHIN: Duration = Duration::from_secs(5);
/// Length of a measured window.
const WINDOW: Duration = Duration::from_secs(4);

/// Scenarios that measure latency take turns: on two cores, one scenario's load would show in
/// another's p99. (The node-kill scenario measures no latency and runs beside them.)
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Packets still in flight when a window ends are given this long to arrive before the
/// participants stop (p99 on the loaded machine reached 4.5 s): late is not lost.
const TAIL: Duration = Duration::from_secs(5);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Microseconds since [`origin`]: one clock for senders and receivers (same process).
fn now_us() -> u64 {
    origin().elapsed().as_micros() as u64
}

fn at_us(instant: Instant) -> u64 {
    instant.saturating_duration_since(origin()).as_micros() as u64
}

fn payload(seq: u64, sent_us: u64, size: usize) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(&seq.to_be_bytes());
    data.extend_from_slice(&sent_us.to_be_bytes());
    data.resize(size.max(data.len()), 0x5A);
    data
}

/// (sequence, send time) of one of our payloads.
fn parse(data: &[u8]) -> Option<(u64, u64)> {
    let rest = data.strip_prefix(MAGIC)?;
    let seq = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let sent = u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?);
    Some((seq, sent))
}

/// One media packet a participant received.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    sent_us: u64,
    recv_us: u64,
}

/// Everything one participant did and saw.
#[derive(Debug, Default)]
struct Log {
    /// Send times of its media.
    sent: Vec<u64>,
    received: Vec<Received>,
    /// PARTICIPANT_JOINED (true) and _LEFT (false) events: (time, user, joined).
    roster: Vec<(u64, String, bool)>,
    /// When and why its connection ended.
    closed: Option<(u64, String)>,
}

impl Log {
    /// Who it believes is in the meeting, from its roster events.
    fn present(&self) -> HashSet<String> {
        let mut present = HashSet::new();
        for (_, user, joined) in &self.roster {
            if *joined {
                present.insert(user.clone());
            } else {
                present.remove(user);
            }
        }
        present
    }
}

/// A participant sending audio and video and recording what it receives.
struct Participant {
    name: String,
    log: Arc<Mutex<Log>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Participant {
    /// Awaits the client's SESSION_ASSIGNED, then runs it.
    async fn start(name: &str, mut client: TestClient) -> Self {
        client
            .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
            .await;
        let log = Arc::new(Mutex::new(Log::default()));
        // WebTransport may deliver packets sent after SESSION_ASSIGNED before it (each on its
        // own stream): the roster events that came first wait in the client's backlog.
        while let Some(early) = client.try_recv_until(Duration::ZERO, |_| true).await {
            record(&log, early, now_us());
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(client, log.clone(), stopped));
        Self {
            name: name.to_owned(),
            log,
            stop,
            task,
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log
            .lock()
            .expect("no participant task panics holding the log")
    }

    async fn finish(self) -> (String, Log) {
        let _ = self.stop.send(true);
        self.task.await.expect("participant task ran");
        let log = Arc::try_unwrap(self.log)
            .expect("the task is done")
            .into_inner()
            .expect("not poisoned");
        (self.name, log)
    }
}

async fn run(mut client: TestClient, log: Arc<Mutex<Log>>, mut stop: watch::Receiver<bool>) {
    use tokio::time::MissedTickBehavior;
    let mut audio = tokio::time::interval(AUDIO_EVERY);
    audio.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut video = tokio::time::interval(VIDEO_EVERY);
    video.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut audio_seq, mut video_seq) = (0u64, 0u64);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            event = client.next(Duration::from_secs(3600)) => {
                let recv_us = now_us();
                match event {
                    Some(Incoming::Packet(wrapper)) => record(&log, wrapper, recv_us),
                    Some(Incoming::Garbage(bytes)) => panic!("the relay sent a non-wrapper: {bytes:?}"),
                    Some(Incoming::Closed(reason)) => {
                        log.lock().unwrap().closed = Some((recv_us, reason));
                        return;
                    }
                    None => {
                        log.lock().unwrap().closed = Some((recv_us, "ended".into()));
                        return;
                    }
                }
            }
            _ = audio.tick() => {
                let now = now_us();
                client.send(media(MediaType::Audio, "key", payload(audio_seq, now, AUDIO_BYTES)));
                log.lock().unwrap().sent.push(now);
                audio_seq += 1;
            }
            _ = video.tick() => {
                let kind = if video_seq % KEYFRAME_EVERY == 0 { "key" } else { "delta" };
                let now = now_us();
                client.send(media(MediaType::Video, kind, payload(video_seq, now, VIDEO_BYTES)));
                log.lock().unwrap().sent.push(now);
                video_seq += 1;
            }
        }
    }
}

fn record(log: &Mutex<Log>, wrapper: PacketWrapper, recv_us: u64) {
    if wrapper.packet_type == PacketType::Meeting as i32
        && wrapper.user_id == SYSTEM_USER_ID.as_bytes()
    {
        if let Ok(event) = MeetingPacket::decode(wrapper.data.clone()) {
            let user = String::from_utf8_lossy(&event.target_user_id).into_owned();
            match MeetingEventType::try_from(event.event_type) {
                Ok(MeetingEventType::ParticipantJoined) => {
                    log.lock().unwrap().roster.push((recv_us, user, true))
                }
                Ok(MeetingEventType::ParticipantLeft) => {
                    log.lock().unwrap().roster.push((recv_us, user, false))
                }
                _ => {}
            }
        }
        return;
    }
    let Some(media) = media_of(&wrapper) else {
        return;
    };
    let Some((_, sent_us)) = parse(&media.data) else {
        return; // not one of ours (a flooder's junk)
    };
    log.lock().unwrap().received.push(Received {
        from: String::from_utf8_lossy(&wrapper.user_id).into_owned(),
        sent_us,
        recv_us,
    });
}

/// What the participants of one meeting got in a window of send times.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Received / sent to them.
    delivered: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Longest time a receiver went without a packet from one sender.
    worst_gap_ms: f64,
    packets: usize,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "delivered {:.2} %, p50 {:.1} ms, p99 {:.1} ms, worst gap {:.0} ms ({} packets)",
            self.delivered * 100.0,
            self.p50_ms,
            self.p99_ms,
            self.worst_gap_ms,
            self.packets
        )
    }
}

/// Figures over packets sent in `[from, to)` (µs) between the named participants, counting
/// only pairs `pair(receiver, sender)` accepts.
fn figures(
    logs: &HashMap<String, Log>,
    names: &[&str],
    (from, to): (u64, u64),
    pair: impl Fn(&str, &str) -> bool,
) -> Figures {
    let in_window = |t: u64| (from..to).contains(&t);
    let (mut expected, mut latencies, mut worst_gap) = (0usize, Vec::new(), 0u64);
    for receiver in names {
        let log = &logs[*receiver];
        for sender in names.iter().filter(|s| *s != receiver && pair(receiver, s)) {
            expected += logs[*sender].sent.iter().filter(|t| in_window(**t)).count();
            let mut last = None;
            for got in log
                .received
                .iter()
                .filter(|r| r.from == *sender && in_window(r.sent_us))
            {
                latencies.push(got.recv_us.saturating_sub(got.sent_us));
                if let Some(last) = last {
                    worst_gap = worst_gap.max(got.recv_us.saturating_sub(last));
                }
                last = Some(got.recv_us);
            }
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |us| *us as f64 / 1000.0)
    };
    Figures {
        delivered: latencies.len() as f64 / expected.max(1) as f64,
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        worst_gap_ms: worst_gap as f64 / 1000.0,
        packets: latencies.len(),
    }
}

/// Asserts the faulty window kept the clean one's delivery and latency (see the constants).
fn assert_kept(what: &str, clean: Figures, faulty: Figures) {
    println!("{what}: clean {clean}");
    println!("{what}: fault {faulty}");
    assert!(
        faulty.delivered >= clean.delivered * DELIVERY_KEPT,
        "{what}: delivery fell from {:.3} to {:.3}",
        clean.delivered,
        faulty.delivered
    );
    let allowed = (clean.p99_ms + P99_SLACK_MS)
        .max(clean.p99_ms * 2.0)
        .max(P99_FLOOR_MS);
    assert!(
        faulty.p99_ms <= allowed,
        "{what}: p99 rose from {:.1} ms to {:.1} ms (allowed {allowed:.1})",
        clean.p99_ms,
        faulty.p99_ms
    );
}

/// Waits until every participant has received media from every other `pair` allows (the
/// meeting is formed, subscriptions included).
async fn until_all_hear_each_other(parts: &[&Participant], pair: impl Fn(&str, &str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let missing: Vec<String> = parts
            .iter()
            .flat_map(|r| {
                let heard: HashSet<String> =
                    r.log().received.iter().map(|x| x.from.clone()).collect();
                parts
                    .iter()
                    .filter(|s| s.name != r.name && pair(&r.name, &s.name))
                    .filter(|s| !heard.contains(&s.name))
                    .map(|s| format!("{} ← {}", r.name, s.name))
                    .collect::<Vec<_>>()
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never heard: {missing:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finish_all(parts: Vec<Participant>) -> HashMap<String, Log> {
    let mut logs = HashMap::new();
    for part in parts {
        let (name, log) = part.finish().await;
        logs.insert(name, log);
    }
    logs
}

/// The value of the metric line starting with `name` (labels included), if present.
fn metric(http: u16, name: &str) -> Option<f64> {
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// [`metric`] off the runtime's threads (they carry the participants).
async fn read_metric(http: u16, name: &str) -> Option<f64> {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || metric(http, &name))
        .await
        .expect("metrics read")
}

/// Polls `/metrics` until `name` reaches `at_least` (for at most `wait`); returns when it did.
async fn metric_reaches(http: u16, name: &str, at_least: f64, wait: Duration) -> Instant {
    let deadline = Instant::now() + wait;
    loop {
        let value = read_metric(http, name).await;
        if value.is_some_and(|v| v >= at_least) {
            return Instant::now();
        }
        if Instant::now() >= deadline {
            let (_, text) = tokio::task::spawn_blocking(move || http_get(http, "/metrics"))
                .await
                .expect("metrics read");
            panic!("{name} never reached {at_least} (now {value:?}); /metrics:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An actix-api node (WebSocket only) on NATS: (process, http port).
fn ws_node_on_nats(nats: &NatsServer, extra: &[&str]) -> (Service, u16) {
    let http = free_tcp_port();
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{http}"),
        "--nats-url".to_owned(),
        nats.url(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let service = Service::start(&binary("actix-api"), &args, &[], "Ctrl-C stops.");
    wait_for_status(http, "/healthz", 200);
    (service, http)
}

/// The all-in-one node (WebSocket and WebTransport) on NATS: (process, http port, udp port).
fn wt_node_on_nats(nats: &NatsServer) -> (Service, u16, u16) {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let url = nats.url();
    let service = single_node_on(http, udp, &["--nats-url", &url]);
    wait_for_status(http, "/healthz", 200);
    (service, http, udp)
}

async fn ws(http: u16, user: &str, meeting: &str) -> TestClient {
    TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/{user}/{meeting}"))
        .await
        .expect("WebSocket connects")
}

async fn wt(http: u16, udp: u16, user: &str, meeting: &str) -> TestClient {
    let hash = tokio::task::spawn_blocking(move || certificate_hash(http))
        .await
        .expect("hash read");
    TestClient::webtransport(
        &format!("https://127.0.0.1:{udp}/lobby/{user}/{meeting}"),
        hash,
    )
    .await
    .expect("WebTransport connects")
}

/// NATS killed for `outage` under a meeting on node A only and a meeting across A and B.
async fn nats_outage(outage: Duration) {
    let _turn = MEASURING.lock().await;
    let label = format!("nats down {} s", outage.as_secs());
    let mut nats = NatsServer::start();
    let (_a, http_a, udp_a) = wt_node_on_nats(&nats);
    let (_b, http_b) = ws_node_on_nats(&nats, &[]);

    // A meeting entirely on A, one participant over WebTransport.
    let local = vec![
        Participant::start("l1", ws(http_a, "l1", "local").await).await,
        Participant::start("l2", ws(http_a, "l2", "local").await).await,
        Participant::start("l3", wt(http_a, udp_a, "l3", "local").await).await,
    ];
    // A meeting across A (a*) and B (b*).
    let span = vec![
        Participant::start("a1", ws(http_a, "a1", "span").await).await,
        Participant::start("a2", wt(http_a, udp_a, "a2", "span").await).await,
        Participant::start("b1", ws(http_b, "b1", "span").await).await,
        Participant::start("b2", ws(http_b, "b2", "span").await).await,
    ];
    let all = |_: &str, _: &str| true;
    until_all_hear_each_other(&local.iter().collect::<Vec<_>>(), all).await;
    until_all_hear_each_other(&span.iter().collect::<Vec<_>>(), all).await;
    let clean = (now_us(), now_us() + WINDOW.as_micros() as u64);
    tokio::time::sleep(WINDOW).await;

    let dropped_before = read_metric(http_a, "videocall_bus_dropped_total")
        .await
        .unwrap_or(0.0);
    let killed = Instant::now();
    tokio::task::block_in_place(|| nats.stop());
    tokio::time::sleep(outage).await;
    // Back once it accepts connections.
    tokio::task::block_in_place(|| nats.restart());
    let back = Instant::now();
    // The resumed meeting measured from 2 s after the return (when it must have resumed).
    tokio::time::sleep(RESUME_WITHIN + WINDOW + TAIL).await;

    let local = finish_all(local).await;
    let span = finish_all(span).await;
    let (killed_us, back_us) = (at_us(killed), at_us(back));

    // The meeting on A alone never stopped.
    let names = ["l1", "l2", "l3"];
    let during = (killed_us, back_us);
    assert_kept(
        &format!("{label}, local meeting"),
        figures(&local, &names, clean, all),
        figures(&local, &names, during, all),
    );
    let gap = figures(&local, &names, during, all).worst_gap_ms;
    assert!(
        gap <= WORST_GAP.as_secs_f64() * 1000.0,
        "{label}: the local meeting stalled for {gap:.0} ms"
    );

    // The meeting across nodes: A's side kept going, the other side resumed in time, nothing
    // stale arrived, and everyone is back in everyone's roster.
    let names = ["a1", "a2", "b1", "b2"];
    let node = |name: &str| name.as_bytes()[0];
    let across = |r: &str, s: &str| node(r) != node(s);
    let (mut slowest, mut slowest_arrival) = (Duration::ZERO, Duration::ZERO);
    for receiver in names {
        let log = &span[receiver];
        for sender in names.iter().filter(|s| across(receiver, s)) {
            // Resumed when a packet sent then gets through: the first to arrive after the
            // return was sent this long after it (how late it arrived is the p99's business;
            // a loaded machine adds seconds there that say nothing about the bus).
            let first = log
                .received
                .iter()
                .filter(|r| r.from == *sender && r.recv_us >= back_us)
                .min_by_key(|r| r.sent_us)
                .unwrap_or_else(|| panic!("{label}: {receiver} never heard {sender} again"));
            slowest = slowest.max(Duration::from_micros(first.sent_us.saturating_sub(back_us)));
            slowest_arrival = slowest_arrival.max(Duration::from_micros(first.recv_us - back_us));
            for late in log
                .received
                .iter()
                .filter(|r| r.from == *sender && r.recv_us >= killed_us + 1_000_000)
            {
                assert!(
                    late.sent_us + STALE_MARGIN.as_micros() as u64 >= back_us,
                    "{label}: {receiver} got a packet of {sender} sent {} ms before NATS \
                     returned, {} ms after it returned",
                    (back_us - late.sent_us) / 1000,
                    late.recv_us.saturating_sub(back_us) / 1000,
                );
            }
        }
        let present = log.present();
        for other in names.iter().filter(|o| **o != receiver) {
            assert!(
                present.contains(*other),
                "{label}: {receiver} does not list {other} (roster {:?})",
                log.roster
            );
        }
    }
    let left_events: usize = names
        .iter()
        .map(|n| span[*n].roster.iter().filter(|(_, _, j)| !j).count())
        .sum();
    println!(
        "{label}: cross-node meeting resumed with packets sent {} ms after NATS returned \
         (slowest pair; first arrival {} ms after); {} PARTICIPANT_LEFT seen meanwhile",
        slowest.as_millis(),
        slowest_arrival.as_millis(),
        left_events
    );
    assert!(
        slowest <= RESUME_WITHIN,
        "{label}: the cross-node meeting took {slowest:?} to resume"
    );
    let same_node = |r: &str, s: &str| node(r) == node(s);
    assert_kept(
        &format!("{label}, span meeting within a node"),
        figures(&span, &names, clean, same_node),
        figures(&span, &names, during, same_node),
    );
    let after = (
        back_us + RESUME_WITHIN.as_micros() as u64,
        back_us + (RESUME_WITHIN + WINDOW).as_micros() as u64,
    );
    assert_kept(
        &format!("{label}, span meeting after the return"),
        figures(&span, &names, clean, all),
        figures(&span, &names, after, all),
    );
    let dropped = read_metric(http_a, "videocall_bus_dropped_total")
        .await
        .expect("bus counter");
    println!(
        "{label}: node A dropped {} bus publications while cut off",
        dropped - dropped_before
    );
    assert!(
        dropped > dropped_before,
        "publications made while cut off are counted"
    );
    let dropped_b = read_metric(http_b, "videocall_bus_dropped_total").await;
    assert!(dropped_b.is_some_and(|d| d > 0.0), "{dropped_b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_for_5_s_local_meetings_go_on_and_the_cross_node_one_resumes_without_replay() {
    nats_outage(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_for_30_s_local_meetings_go_on_and_the_cross_node_one_resumes_without_replay() {
    nats_outage(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_given_two_nodes_moves_to_the_second_when_the_first_is_killed() {
    let nats = NatsServer::start();
    let (a, http_a) = ws_node_on_nats(&nats, &["--e2ee", "off"]);
    let (_b, http_b) = ws_node_on_nats(&nats, &["--e2ee", "off"]);
    let mut watcher = ws(http_b, "watcher", "move").await;
    watcher
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await;
    let args: Vec<String> = [
        "stream",
        "--user-id",
        "mover",
        "--meeting-id",
        "move",
        "--transport",
        "websocket",
        "--url",
        &format!("http://127.0.0.1:{http_a}"),
        "--url",
        &format!("http://127.0.0.1:{http_b}"),
        "--e2ee",
        "off",
        "--test-pattern",
        "--resolution",
        "192x112",
        "--fps",
        "15",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cli = tokio::task::spawn_blocking(move || {
        Service::start(&binary("videocall-cli"), &args, &[], "joined meeting")
    })
    .await
    .expect("the CLI started");
    let is_mover_media = |w: &PacketWrapper| {
        w.packet_type == PacketType::Media as i32 && w.user_id == "mover".as_bytes()
    };
    let first = watcher.recv_until(is_mover_media).await;

    let killed = Instant::now();
    // Dropping the service SIGKILLs it: the node says nothing to anyone.
    drop(a);
    let again = watcher
        .recv_until(|w| is_mover_media(w) && w.session_id != first.session_id)
        .await;
    let failover = killed.elapsed();
    println!(
        "node killed: the client was back in the meeting through the other node {} ms later",
        failover.as_millis()
    );
    assert!(
        failover <= FAILOVER_WITHIN,
        "took {failover:?} to move to the second node"
    );
    assert_ne!(again.session_id, first.session_id);
    let _cli = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cli.stdout.recv_timeout(left) {
                Ok(line) if line.contains("reconnected as session") => return cli,
                Ok(_) => {}
                Err(e) => panic!("the CLI never said it reconnected: {e}"),
            }
        }
    })
    .await
    .expect("stdout read");
    // Media keeps flowing through the second node.
    for _ in 0..5 {
        watcher
            .recv_until(|w| is_mover_media(w) && w.session_id == again.session_id)
            .await;
    }
}

/// A single node whose meeting of five (one over WebTransport) is measured clean, then with
/// `offender` joined; returns the others' figures (clean, with the offender), once the
/// offender has been cut off.
async fn meeting_with_an_offender(
    label: &str,
    flags: &[&str],
    offender: impl AsyncFnOnce(u16) -> Instant,
) -> (Figures, Figures) {
    let _turn = MEASURING.lock().await;
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let _node = single_node_on(http, udp, flags);
    let mut parts = Vec::new();
    for name in ["p1", "p2", "p3", "p4"] {
        parts.push(Participant::start(name, ws(http, name, "m").await).await);
    }
    parts.push(Participant::start("p5", wt(http, udp, "p5", "m").await).await);
    let all = |_: &str, _: &str| true;
    until_all_hear_each_other(&parts.iter().collect::<Vec<_>>(), all).await;
    // Past the joins' backlog before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let clean = (now_us(), now_us() + WINDOW.as_micros() as u64);
    tokio::time::sleep(WINDOW).await;

    let started = now_us();
    let cut_off = offender(http).await;
    let cut_us = at_us(cut_off);
    let until = (started + WINDOW.as_micros() as u64).max(cut_us);
    let left = Duration::from_micros(until.saturating_sub(now_us())) + TAIL;
    tokio::time::sleep(left).await;
    let logs = finish_all(parts).await;
    let names = ["p1", "p2", "p3", "p4", "p5"];
    for name in names {
        assert!(
            logs[name].closed.is_none(),
            "{label}: {name} was cut off too: {:?}",
            logs[name].closed
        );
    }
    println!(
        "{label}: offender cut off {} ms after it started",
        (cut_us - started) / 1000
    );
    let clean = figures(&logs, &names, clean, all);
    let faulty = figures(&logs, &names, (started, until), all);
    assert_kept(label, clean, faulty);
    (clean, faulty)
}

/// Metric of sessions the relay closed for `reason`.
fn closed_metric(reason: &str) -> String {
    format!("videocall_closed_sessions_total{{reason=\"{reason}\"}}")
}

/// A stalled reader is cut off once its queue in the relay has been full, with nothing written,
/// for the stall timeout (10 s by default), and that queue only fills once the kernel's socket
/// buffers have: ~4.7 MB on this machine (tcp_wmem max 4 MiB), several seconds at the
/// meeting's rate. About twice the measured time, for a loaded machine.
const STALL_CUT_OFF_WITHIN: Duration = Duration::from_secs(60);
/// A flooder is cut off after 3 s over the limit (--rate-limit-grace-ms); measured 3–7 s on the
/// loaded machine.
const OFFENDER_CUT_OFF_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stalls_is_cut_off_and_counted_while_the_others_keep_their_delivery() {
    meeting_with_an_offender("stalled reader", &[], async |http| {
        // A participant that sends its heartbeat but never reads: its socket's buffers fill,
        // then its queue in the relay.
        let url = format!("ws://127.0.0.1:{http}/lobby/stalled/m");
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connects");
        let (mut sink, stream) = socket.split();
        let heartbeat = tokio::spawn(async move {
            loop {
                let beat = media(MediaType::Heartbeat, "", vec![]);
                if sink.send(tungstenite::Message::Binary(beat)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let cut_off =
            metric_reaches(http, &closed_metric("stalled"), 1.0, STALL_CUT_OFF_WITHIN).await;
        heartbeat.abort();
        // The relay forgot it: five participants again.
        let sessions = read_metric(http, "videocall_sessions").await;
        assert_eq!(sessions, Some(5.0), "the stalled session is gone");
        // Reading now, it finds the end of its connection after a bounded amount of data.
        let (mut bytes, mut end) = (0usize, None);
        let mut stream = stream;
        let drained = tokio::time::timeout(PATIENCE, async {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(tungstenite::Message::Binary(b)) => bytes += b.len(),
                    Ok(tungstenite::Message::Close(frame)) => {
                        end = Some(frame.map(|f| f.reason.to_string()).unwrap_or_default());
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        end = Some(e.to_string());
                        break;
                    }
                }
            }
        })
        .await;
        println!(
            "stalled reader: {} KiB were waiting for it; its connection ended with {end:?}",
            bytes / 1024
        );
        assert!(
            drained.is_ok(),
            "the stalled reader's connection never ended"
        );
        cut_off
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_at_ten_times_the_rate_limit_is_cut_off_and_counted_while_the_others_keep_theirs()
{
    const LIMIT: u64 = 200;
    let limit = LIMIT.to_string();
    let flags = ["--max-inbound-packets-per-sec", limit.as_str()];
    meeting_with_an_offender("flooder", &flags, async |http| {
        // The flood runs on a thread and runtime of its own so that, in this one test process,
        // it does not take the participants' threads: their p99 is what is measured.
        let (stop, mut stopped) = watch::channel(false);
        let flood = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the flooder");
            runtime.block_on(async move {
                let mut flooder = ws(http, "flooder", "m").await;
                let junk = media(MediaType::Audio, "key", b"junk".to_vec());
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                loop {
                    tokio::select! {
                        // Cut off: how its connection ended.
                        _ = stopped.changed() => return flooder.closed().await,
                        _ = tick.tick() => {
                            // Ten times the limit: LIMIT / 10 packets every 10 ms.
                            for _ in 0..LIMIT / 10 {
                                flooder.send(junk.clone());
                            }
                        }
                    }
                }
            })
        });
        let closed = closed_metric("rate_limited");
        // The relay's word, not the client's: the close frame waits behind its queue.
        let cut_off = metric_reaches(http, &closed, 1.0, OFFENDER_CUT_OFF_WITHIN).await;
        let _ = stop.send(true);
        let reason = tokio::task::spawn_blocking(move || flood.join())
            .await
            .expect("joined")
            .expect("the flooder thread ran");
        println!("flooder: closed with {reason:?}");
        assert!(reason.contains("rate limit"), "closed for {reason}");
        let sessions = read_metric(http, "videocall_sessions").await;
        assert_eq!(sessions, Some(5.0), "the flooder's session is gone");
        let dropped = read_metric(
            http,
            "videocall_dropped_packets_total{reason=\"rate_limited\"}",
        )
        .await;
        assert!(dropped.is_some_and(|n| n >= 1.0), "{dropped:?}");
        cut_off
    })
    .await;
}
