//! Attacks on a real node process, and what the other meetings see meanwhile: the worst gap
//! between their packets, health and metrics answering, and a stop signal under load.

use std::time::{Duration, Instant};

use prost::Message;
use videocall_testkit::client::TestClient;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::{audio, is_joined, video, video_seq};
use videocall_testkit::process::{Service, http_get, single_node, ws_node_on_nats};
use videocall_types::{
    MeetingEventType, MeetingPacket, PacketType, PacketWrapper, SubscriptionPacket,
};

async fn ws(http: u16, user: &str, meeting: &str) -> TestClient {
    TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/{user}/{meeting}"))
        .await
        .expect("WebSocket connects")
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

fn subscription(video: Vec<u64>, all: bool) -> bytes::Bytes {
    let sub = SubscriptionPacket {
        video,
        screen: vec![],
        all,
    };
    PacketWrapper {
        packet_type: PacketType::Subscription as i32,
        data: sub.encode_to_vec().into(),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// The most an attack may add to the worst gap between another meeting's frames: the issue's
/// bound for "without a gap" (a fifth of a second is a visible freeze).
const STALL: Duration = Duration::from_millis(250);

/// The worst gap of [`worst_gap_during`] with no attack, on this node and machine now: what
/// scheduling alone costs (tens of ms when the machine is idle, hundreds when other builds
/// share its two cores), so that the assertion is about what the attack adds.
async fn clean_gap(http: u16) -> Duration {
    let (worst, missed) = worst_gap_during(http, "clean", async {}).await;
    assert_eq!(missed, 0, "frames lost with no attack");
    eprintln!("worst gap with no attack: {worst:?}");
    worst
}

/// A publisher and a viewer in `meeting` exchange a video frame every 10 ms while `attack`
/// runs; returns the worst gap between two frames the viewer received, and how many it missed.
async fn worst_gap_during(
    http: u16,
    meeting: &str,
    attack: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Duration, usize) {
    let publisher = ws(http, "publisher", meeting).await;
    let mut viewer = ws(http, "viewer", meeting).await;
    viewer.recv_until(|w| is_joined(w, "publisher")).await;
    let frames = 300u32; // 3 s
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for seq in 0..frames {
            tick.tick().await;
            publisher.send(video(seq, seq % 30 == 0, 1200));
        }
        publisher
    });
    // The attack starts once media flows.
    let first = viewer.recv_until(|w| video_seq(w).is_some()).await;
    let attacking = tokio::spawn(attack);
    let mut seen = vec![video_seq(&first).unwrap()];
    let mut last = Instant::now();
    let mut worst = Duration::ZERO;
    while *seen.last().unwrap() + 1 < frames {
        let Some(got) = viewer
            .try_recv_until(Duration::from_secs(5), |w| video_seq(w).is_some())
            .await
        else {
            panic!("the viewer got nothing for 5 s after frame {seen:?}");
        };
        worst = worst.max(last.elapsed());
        last = Instant::now();
        seen.push(video_seq(&got).unwrap());
    }
    attacking.await.unwrap();
    let _publisher = sending.await.unwrap();
    let missed = (seen[0]..frames).count() - seen.len();
    (worst, missed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_id_subscription_leaves_other_meetings_without_a_gap() {
    let (_node, http, _) = single_node(&[]);
    let clean = clean_gap(http).await;
    let attacker = ws(http, "mallory", "storm").await;
    let _victim = ws(http, "bob", "storm").await;
    let attack = async move {
        attacker.send(subscription(vec![], false));
        // ≈ 3 MB each: under the 4 MiB frame limit. The old core spent minutes on one.
        let ids: Vec<u64> = (1..=1_000_000u64).map(|i| (1 << 20) | i).collect();
        let packet = subscription(ids, false);
        for _ in 0..3 {
            attacker.send(packet.clone());
            let (status, _) = tokio::task::spawn_blocking(move || http_get(http, "/healthz"))
                .await
                .unwrap();
            assert_eq!(status, 200, "health during the attack");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Keep the connection (and its queued packets) until the end.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(attacker);
    };
    let (worst, missed) = worst_gap_during(http, "calm", attack).await;
    eprintln!("worst gap in the other meeting: {worst:?}, frames missed: {missed}");
    assert!(
        worst < clean + STALL,
        "the other meeting stood still for {worst:?} ({clean:?} with no attack)"
    );
    assert_eq!(missed, 0);
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"subscription_too_large\"}"
        ) >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_control_traffic_and_oversized_frames_leave_other_meetings_without_a_gap() {
    let (_node, http, _) = single_node(&[]);
    let clean = clean_gap(http).await;
    let junk = ws(http, "junk", "storm").await;
    let mut victim = ws(http, "bob", "storm").await;
    let attack = async move {
        // DIAGNOSTICS junk at many times the control rate, and frames no queue can hold.
        let diagnostics: bytes::Bytes = PacketWrapper {
            packet_type: PacketType::Diagnostics as i32,
            data: vec![0u8; 4096].into(),
            ..Default::default()
        }
        .encode_to_vec()
        .into();
        for round in 0..20 {
            for _ in 0..50 {
                junk.send(diagnostics.clone());
            }
            if round % 5 == 0 {
                junk.send(video(round, true, 1024 * 1024));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(junk);
    };
    let (worst, missed) = worst_gap_during(http, "calm", attack).await;
    eprintln!("worst gap in the other meeting: {worst:?}, frames missed: {missed}");
    assert!(
        worst < clean + STALL,
        "gap of {worst:?} ({clean:?} with no attack)"
    );
    assert_eq!(missed, 0);
    // The junk's own meeting peer was told nothing it could not hold; the sender was told why.
    let notice = victim
        .try_recv_until(Duration::from_millis(200), |w| {
            w.packet_type == PacketType::RelayNotice as i32
        })
        .await;
    assert!(notice.is_none(), "notices go to the offender only");
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"control_rate_limited\"}"
        ) > 0
    );
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"frame_too_large\"}"
        ) > 0
    );
    assert!(metric(&metrics, "videocall_relay_notices_total") > 0);
}

fn node_on_nats(nats: &NatsServer, extra: &[&str]) -> (Service, u16) {
    ws_node_on_nats(&nats.url(), extra)
}

fn is_left(wrapper: &PacketWrapper, user: &str) -> bool {
    wrapper.packet_type == PacketType::Meeting as i32
        && MeetingPacket::decode(wrapper.data.clone()).is_ok_and(|m| {
            m.event_type == MeetingEventType::ParticipantLeft as i32
                && m.target_user_id == user.as_bytes()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_publishes_the_leaves_first_and_exits_within_the_drain_limit() {
    let nats = NatsServer::start();
    // A long reconnect grace: only the shutdown's own leave can reach the other node in time.
    // No drain (its clients would not move anyway): the stop itself is measured.
    let grace = [
        "--reconnect-grace-ms",
        "60000",
        "--drain-seconds",
        "0",
        "--drain-timeout-secs",
        "3",
    ];
    let (mut leaving, http_a) = node_on_nats(&nats, &grace);
    let (_staying, http_b) = node_on_nats(&nats, &grace);
    let mut remote = ws(http_b, "remote", "m1").await;
    let _local = ws(http_a, "local", "m1").await;
    remote.recv_until(|w| is_joined(w, "local")).await;
    // Load on the stopping node: senders at their rate limit until the end.
    let mut loaders = Vec::new();
    for i in 0..4 {
        let client = ws(http_a, &format!("load{i}"), "busy").await;
        loaders.push(tokio::spawn(async move {
            for n in 0.. {
                client.send(audio(&format!("load {n}")));
                if n % 200 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if n > 200_000 {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    leaving.terminate();
    let left = remote
        .try_recv_until(Duration::from_secs(5), |w| is_left(w, "local"))
        .await;
    let heard_after = started.elapsed();
    let status = tokio::task::spawn_blocking(move || leaving.wait_exit(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("exited within the drain limit plus a second");
    let exited_after = started.elapsed();
    for l in loaders {
        l.abort();
    }
    eprintln!("leave heard after {heard_after:?}, process gone after {exited_after:?}");
    assert!(left.is_some(), "the other node never heard the leave");
    assert!(heard_after < Duration::from_secs(3), "{heard_after:?}");
    assert!(exited_after < Duration::from_secs(4), "{exited_after:?}");
    assert!(status.success(), "exit status {status}");
    let _ = http_b;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webtransport_reader_that_stops_reading_its_framed_stream_is_closed() {
    let (_node, http, udp) = single_node(&["--stall-timeout-secs", "2"]);
    let hash = videocall_testkit::process::certificate_hash(http);
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .build();
    let connection = wtransport::Endpoint::client(config)
        .unwrap()
        .connect(format!("https://127.0.0.1:{udp}/lobby/stalled/m1?framed=1"))
        .await
        .unwrap();
    // Take the framed stream and never read it: QUIC flow control soon stops the server's
    // writes, as a client that hung would.
    let _stream = connection.accept_uni().await.unwrap();
    let mut publisher = ws(http, "publisher", "m1").await;
    publisher.recv_until(|w| is_joined(w, "stalled")).await;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut seq = 0;
    let closed = loop {
        tokio::select! {
            _ = tick.tick() => {
                publisher.send(video(seq, seq % 30 == 0, 30_000));
                seq += 1;
            }
            reason = connection.closed() => break reason,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stalled reader was never closed"
        );
    };
    eprintln!("closed after {:?}: {closed}", started.elapsed());
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "videocall_closed_sessions_total{reason=\"stalled\"}"
        ),
        1
    );
}
