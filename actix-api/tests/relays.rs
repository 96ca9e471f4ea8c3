//! The relays as real processes on real sockets: the all-in-one single node, scale-out over a
//! real `nats-server`, bad clients, a NATS restart and SIGTERM.

use std::time::Duration;

use videocall_testkit::client::TestClient;
use videocall_testkit::free_tcp_port;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::{audio, is_audio, is_joined, media, video, video_seq};
use videocall_testkit::process::{
    Service, binary, certificate_hash, http_get, single_node, wait_for_status,
    webtransport_server_on,
};
use videocall_types::framing::Deframer;
use videocall_types::{MediaType, PacketType};

fn api_on_nats(nats: &NatsServer) -> (Service, u16) {
    let http = free_tcp_port();
    let args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{http}"),
        "--nats-url".to_owned(),
        nats.url(),
    ];
    let service = Service::start(&binary("actix-api"), &args, &[], "Ctrl-C stops.");
    (service, http)
}

async fn ws(http: u16, user: &str, meeting: &str) -> TestClient {
    TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/{user}/{meeting}"))
        .await
        .expect("WebSocket connects")
}

async fn wt(udp: u16, hash: [u8; 32], user: &str, meeting: &str) -> TestClient {
    TestClient::webtransport(
        &format!("https://127.0.0.1:{udp}/lobby/{user}/{meeting}"),
        hash,
    )
    .await
    .expect("WebTransport connects")
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_webtransport_clients_share_a_meeting_on_the_single_node() {
    let (_node, http, udp) = single_node(&[]);
    let hash = certificate_hash(http);
    let mut alice = ws(http, "alice", "m1").await;
    let alice_id = alice.session_assigned().await;
    let mut bob = wt(udp, hash, "bob", "m1").await;
    let bob_id = bob.session_assigned().await;
    let mut eve = ws(http, "eve", "m2").await;
    eve.session_assigned().await;
    alice.recv_until(|w| is_joined(w, "bob")).await;
    bob.recv_until(|w| is_joined(w, "alice")).await;

    alice.send(audio("from-alice"));
    let got = bob.recv_until(|w| is_audio(w, "from-alice")).await;
    assert_eq!(
        (got.user_id.as_ref(), got.session_id),
        (&b"alice"[..], alice_id)
    );
    bob.send(audio("from-bob"));
    let got = alice
        .recv_until(|w| {
            assert!(!is_audio(w, "from-alice"), "alice got her own packet back");
            is_audio(w, "from-bob")
        })
        .await;
    assert_eq!(
        (got.user_id.as_ref(), got.session_id),
        (&b"bob"[..], bob_id)
    );
    // A video frame over WebTransport the other way, large enough to span QUIC packets.
    bob.send(video(7, true, 20_000));
    let got = alice.recv_until(|w| video_seq(w) == Some(7)).await;
    assert_eq!(got.session_id, bob_id);

    let heard = eve
        .try_recv_until(Duration::from_millis(300), |w| {
            w.packet_type == PacketType::Media as i32
        })
        .await;
    assert!(heard.is_none(), "another meeting heard meeting m1");

    let (status, body) = http_get(http, "/lobby/alice/bad.meeting");
    assert_eq!(status, 400);
    assert!(body.contains("meeting id"), "{body}");
    let (status, metrics) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&metrics, "videocall_sessions"), 3);
    assert_eq!(metric(&metrics, "videocall_ws_refused_total"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_websocket_nodes_and_a_webtransport_node_on_nats_form_one_meeting() {
    let nats = NatsServer::start();
    let (_api1, http1) = api_on_nats(&nats);
    let (_api2, http2) = api_on_nats(&nats);
    let (_wt, health, udp) = webtransport_server_on(&nats.url(), &[]);
    let hash = certificate_hash(health);
    wait_for_status(http1, "/healthz", 200);
    wait_for_status(http2, "/healthz", 200);

    let mut clients = vec![
        ("one", ws(http1, "one", "scale").await),
        ("two", ws(http2, "two", "scale").await),
        ("three", wt(udp, hash, "three", "scale").await),
    ];
    let names = ["one", "two", "three"];
    for (name, client) in &mut clients {
        client.session_assigned().await;
        for other in names.iter().filter(|o| *o != name) {
            client.recv_until(|w| is_joined(w, other)).await;
        }
    }
    for (name, client) in &clients {
        client.send(audio(&format!("hello from {name}")));
    }
    for (name, client) in &mut clients {
        for other in names.iter().filter(|o| *o != name) {
            let tag = format!("hello from {other}");
            let got = client.recv_until(|w| is_audio(w, &tag)).await;
            assert_eq!(got.user_id, other.as_bytes());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_are_cut_off_or_counted_while_the_meeting_goes_on_without_a_gap() {
    let (_node, http, udp) = single_node(&[
        "--idle-timeout-secs",
        "2",
        "--max-inbound-packets-per-sec",
        "300",
    ]);
    let hash = certificate_hash(http);
    let mut publisher = ws(http, "publisher", "m1").await;
    let mut viewer = wt(udp, hash, "viewer", "m1").await;
    viewer.session_assigned().await;
    publisher.recv_until(|w| is_joined(w, "viewer")).await;
    let garbage = ws(http, "garbage", "m1").await;
    let flood = ws(http, "flood", "m1").await;
    let mut idle = ws(http, "idle", "m1").await;

    let mut received = Vec::new();
    let frames = 200u32;
    for seq in 0..frames {
        publisher.send(video(seq, seq % 30 == 0, 1500));
        match seq {
            10 => garbage.send(vec![0xff; 64].into()),
            // Over the relay's 4 MiB limit, within the WebSocket message slack: the relay
            // refuses and counts it, the connection stays.
            20 => garbage.send(vec![0u8; 4 * 1024 * 1024 + 1024].into()),
            30 => {
                for i in 0..3000 {
                    flood.send(audio(&format!("spam {i}")));
                }
            }
            _ => {}
        }
        if seq % 25 == 0 {
            // The viewer keeps its session alive as real clients do.
            viewer.send(media(MediaType::Heartbeat, "", vec![]));
            garbage.send(media(MediaType::Heartbeat, "", vec![]));
            flood.send(media(MediaType::Heartbeat, "", vec![]));
        }
        let got = viewer.recv_until(|w| video_seq(w).is_some()).await;
        received.push(video_seq(&got).expect("filtered on video"));
        tokio::time::sleep(Duration::from_millis(10)).await; // the publisher's frame pacing
    }
    assert_eq!(
        received,
        (0..frames).collect::<Vec<_>>(),
        "the viewer saw a gap"
    );

    let reason = idle.closed().await;
    assert!(reason.contains("idle timeout"), "{reason}");
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"malformed\"}"
        ) >= 1
    );
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"oversize\"}"
        ) >= 1
    );
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"rate_limited\"}"
        ) >= 1
    );
    assert!(metric(&metrics, "videocall_idle_closes_total") >= 1);
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(&metrics, "videocall_sessions"),
        4,
        "only the idle one was closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_services_ride_out_a_nats_restart() {
    let mut nats = NatsServer::start();
    let (_api, http) = api_on_nats(&nats);
    let (_wt, health, udp) = webtransport_server_on(&nats.url(), &[]);
    let hash = certificate_hash(health);
    wait_for_status(http, "/healthz", 200);
    let mut on_ws = ws(http, "ws-user", "m1").await;
    let mut on_wt = wt(udp, hash, "wt-user", "m1").await;
    on_ws.session_assigned().await;
    on_wt.session_assigned().await;
    on_ws.recv_until(|w| is_joined(w, "wt-user")).await;
    on_ws.send(audio("before"));
    on_wt.recv_until(|w| is_audio(w, "before")).await;

    nats.stop();
    wait_for_status(http, "/healthz", 503);
    wait_for_status(health, "/healthz", 503);
    nats.restart();
    wait_for_status(http, "/healthz", 200);
    wait_for_status(health, "/healthz", 200);

    let mut resumed = false;
    for attempt in 0..60 {
        let tag = format!("after {attempt}");
        on_ws.send(audio(&tag));
        on_wt.send(media(MediaType::Heartbeat, "", vec![]));
        if on_wt
            .try_recv_until(Duration::from_millis(250), |w| is_audio(w, &tag))
            .await
            .is_some()
        {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "traffic did not resume after NATS came back");
    on_wt.send(audio("and back"));
    on_ws.recv_until(|w| is_audio(w, "and back")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_and_exits_zero_within_five_seconds() {
    // No drain (tests/drain.rs has it): the stop that closes everyone at once.
    let (mut node, http, udp) = single_node(&["--drain-seconds", "0"]);
    let hash = certificate_hash(http);
    let mut on_ws = ws(http, "a", "m1").await;
    let mut on_wt = wt(udp, hash, "b", "m1").await;
    on_ws.session_assigned().await;
    on_wt.session_assigned().await;

    let started = std::time::Instant::now();
    node.terminate();
    let reason = on_ws.closed().await;
    assert!(reason.contains("shutting down"), "{reason}");
    let reason = on_wt.closed().await;
    assert!(reason.contains("shutting down"), "{reason}");
    let status = tokio::task::spawn_blocking(move || node.wait_exit(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("exited within 5 s");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_a_webtransport_client_complete() {
    let (_node, http, udp) = single_node(&[]);
    let hash = certificate_hash(http);
    let mut sender = ws(http, "sender", "m1").await;
    let mut receiver = wt(udp, hash, "receiver", "m1").await;
    receiver.session_assigned().await;
    sender.recv_until(|w| is_joined(w, "receiver")).await;
    for i in 0..200 {
        sender.send(audio(&format!("burst {i}")));
    }
    for i in 0..200 {
        let tag = format!("burst {i}");
        receiver.recv_until(|w| is_audio(w, &tag)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_with_client_routes_falling_back_to_its_index() {
    let dir = std::env::temp_dir().join(format!("videocall-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<html>videocall app</html>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log('app')").unwrap();
    let (_node, http, _) = single_node(&["--ui-dir", dir.to_str().unwrap()]);
    for path in ["/", "/meeting/alice/standup"] {
        let (status, body) = http_get(http, path);
        assert_eq!(
            (status, body.as_str()),
            (200, "<html>videocall app</html>"),
            "{path}"
        );
    }
    assert_eq!(
        http_get(http, "/app.js"),
        (200, "console.log('app')".to_owned())
    );
    // API routes are not swallowed by the fallback.
    assert_eq!(http_get(http, "/healthz"), (200, "ok\n".to_owned()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn meetings_are_end_to_end_encrypted_unless_set_otherwise() {
    let (_node, http, _) = single_node(&["--plaintext-meeting", "lobby-tv"]);
    let (status, body) = http_get(http, "/api/v1/meetings/standup");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"e2ee":true,"meeting_id":"standup"}"#);
    let (status, body) = http_get(http, "/api/v1/meetings/lobby-tv");
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"e2ee":false,"meeting_id":"lobby-tv"}"#)
    );
    let (status, body) = http_get(http, "/api/v1/meetings/bad%20id");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid meeting id"), "{body}");

    let (_clear, http, _) = single_node(&["--e2ee", "off"]);
    let (_, body) = http_get(http, "/api/v1/meetings/standup");
    assert_eq!(body, r#"{"e2ee":false,"meeting_id":"standup"}"#);
}

/// Reads the packets of a framed stream until `want` has seen what it needs.
async fn read_framed(
    stream: &mut wtransport::RecvStream,
    frames: &mut Deframer,
    mut want: impl FnMut(&videocall_types::PacketWrapper) -> bool,
) {
    use prost::Message;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(packet) = frames.next_packet().unwrap() {
            if want(&videocall_types::PacketWrapper::decode(packet).unwrap()) {
                return;
            }
        }
        let n = tokio::time::timeout(videocall_testkit::PATIENCE, stream.read(&mut chunk))
            .await
            .expect("the framed stream goes on")
            .unwrap()
            .expect("the relay keeps its framed stream open");
        frames.push(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webtransport_client_asking_for_framing_gets_everything_in_order_on_one_stream() {
    let (_node, http, udp) = single_node(&[]);
    let hash = certificate_hash(http);
    let mut sender = ws(http, "sender", "m1").await;
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .build();
    let connection = wtransport::Endpoint::client(config)
        .unwrap()
        .connect(format!("https://127.0.0.1:{udp}/lobby/framed/m1?framed=1"))
        .await
        .unwrap();
    let mut stream = connection.accept_uni().await.unwrap();
    let mut frames = Deframer::default();
    // The framed stream starts with 0 (no PacketWrapper does), then SESSION_ASSIGNED.
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 0);
    read_framed(&mut stream, &mut frames, |w| {
        assert_eq!(w.packet_type, PacketType::SessionAssigned as i32, "{w:?}");
        true
    })
    .await;
    sender.recv_until(|w| is_joined(w, "framed")).await;
    for i in 0..200 {
        sender.send(audio(&format!("burst {i}")));
    }
    // All 200 arrive on this one stream, in the order they were sent.
    let mut next = 0;
    read_framed(&mut stream, &mut frames, |w| {
        if w.packet_type == PacketType::Media as i32
            && (0..200).any(|i| is_audio(w, &format!("burst {i}")))
        {
            assert!(is_audio(w, &format!("burst {next}")), "out of order: {w:?}");
            next += 1;
        }
        next == 200
    })
    .await;
}
