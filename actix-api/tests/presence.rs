//! Presence in O(N) (issue #17) through real relays: a client that asks for PRESENCE digests
//! (`?presence=1`, as ours do) sees a peer's camera toggle within 200 ms but not its unchanged
//! heartbeats, and gets digests; a client of the original (no parameter) still receives every
//! heartbeat. On the single node over WebSocket and WebTransport, and across two nodes on a real
//! `nats-server`.

use std::time::{Duration, Instant};

use videocall_testkit::client::TestClient;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::{audio, heartbeat, heartbeat_from, is_audio, presence_of};
use videocall_testkit::process::{Service, binary, certificate_hash, single_node, wait_for_status};
use videocall_testkit::{PATIENCE, free_tcp_port};
use videocall_types::SYSTEM_USER_ID;
use videocall_types::presence::{AUDIO, VIDEO};

/// Unchanged heartbeats a sender repeats in each phase.
const REPEATS: usize = 10;
/// How soon a state change must be seen.
const PROMPT: Duration = Duration::from_millis(200);

async fn ws(http: u16, user: &str, query: &str) -> TestClient {
    let url = format!("ws://127.0.0.1:{http}/lobby/{user}/m1{query}");
    TestClient::websocket(&url)
        .await
        .expect("WebSocket connects")
}

/// Receives until the audio tagged `mark`, taking and counting the heartbeats from `from` on
/// the way (each counted once: taken, it is not seen again).
async fn heartbeats_until(client: &mut TestClient, from: u64, mark: &str) -> usize {
    let mut beats = 0;
    loop {
        let w = client
            .recv_until(|w| heartbeat_from(w, from).is_some() || is_audio(w, mark))
            .await;
        if is_audio(&w, mark) {
            return beats;
        }
        beats += 1;
    }
}

/// `sender` (a client of the original) heartbeats with its camera off, turns it on, and goes
/// on: each of `ours` sees the first state and the change (the change within [`PROMPT`]) and
/// none of the repeats, then a digest with the new state; `original` sees every heartbeat.
async fn camera_toggle(
    sender: &mut TestClient,
    sender_id: u64,
    ours: &mut [TestClient],
    original: &mut TestClient,
) {
    for _ in 0..=REPEATS {
        sender.send(heartbeat(false));
    }
    sender.send(audio("mark 1"));
    for client in ours.iter_mut() {
        let beats = heartbeats_until(client, sender_id, "mark 1").await;
        assert_eq!(beats, 1, "{}: only the first state", client.transport);
    }
    let toggled = Instant::now();
    sender.send(heartbeat(true));
    for client in ours.iter_mut() {
        let change = client
            .try_recv_until(PROMPT, |w| {
                heartbeat_from(w, sender_id).is_some_and(|h| h.video_enabled)
            })
            .await;
        assert!(
            change.is_some(),
            "{}: the camera toggle took over {PROMPT:?}",
            client.transport
        );
    }
    let seen_in = toggled.elapsed();
    for _ in 0..REPEATS {
        sender.send(heartbeat(true));
    }
    sender.send(audio("mark 2"));
    for client in ours.iter_mut() {
        let beats = heartbeats_until(client, sender_id, "mark 2").await;
        assert_eq!(
            beats, 0,
            "{}: unchanged heartbeats were forwarded",
            client.transport
        );
    }
    let all = 2 * REPEATS + 2;
    assert_eq!(heartbeats_until(original, sender_id, "mark 2").await, all);
    // The low-rate digest tells the same state.
    for client in ours.iter_mut() {
        let digest = client
            .recv_until(|w| {
                presence_of(w).is_some_and(|d| {
                    d.entries
                        .iter()
                        .any(|e| e.session_id == sender_id && e.flags == VIDEO | AUDIO)
                })
            })
            .await;
        assert_eq!(digest.user_id, SYSTEM_USER_ID.as_bytes());
    }
    assert!(
        original
            .try_recv_until(Duration::from_millis(600), |w| presence_of(w).is_some())
            .await
            .is_none(),
        "a client of the original was sent a PRESENCE packet"
    );
    eprintln!("camera toggle seen by every digest taker in {seen_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_node_over_websocket_and_webtransport_changes_travel_at_once_and_repeats_do_not() {
    let (_node, http, udp) = single_node(&["--presence-digest-ms", "500"]);
    let hash = certificate_hash(http);
    let mut alice = ws(http, "alice", "").await;
    let alice_id = alice.session_assigned().await;
    let mut bob = ws(http, "bob", "?presence=1").await;
    bob.session_assigned().await;
    let url = format!("https://127.0.0.1:{udp}/lobby/carol/m1?presence=1");
    let mut carol = TestClient::webtransport(&url, hash)
        .await
        .expect("WebTransport connects");
    carol.session_assigned().await;
    let mut dave = ws(http, "dave", "").await;
    dave.session_assigned().await;
    let mut ours = [bob, carol];
    camera_toggle(&mut alice, alice_id, &mut ours, &mut dave).await;
}

fn node_on(nats: &NatsServer) -> (Service, u16) {
    let http = free_tcp_port();
    let args = [
        "--listen".to_owned(),
        format!("127.0.0.1:{http}"),
        "--nats-url".to_owned(),
        nats.url(),
        "--presence-digest-ms".to_owned(),
        "500".to_owned(),
    ];
    let service = Service::start(&binary("actix-api"), &args, &[], "Ctrl-C stops.");
    wait_for_status(http, "/healthz", 200);
    (service, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_two_nodes_on_nats_changes_travel_at_once_and_repeats_do_not() {
    let nats = NatsServer::start();
    let (_one, http1) = node_on(&nats);
    let (_two, http2) = node_on(&nats);
    let mut alice = ws(http1, "alice", "").await;
    let alice_id = alice.session_assigned().await;
    let mut bob = ws(http2, "bob", "?presence=1").await;
    bob.session_assigned().await;
    let mut dave = ws(http2, "dave", "").await;
    dave.session_assigned().await;
    // Node 2 knows alice (her JOINED came over the bus) before she speaks.
    for client in [&mut bob, &mut dave] {
        client
            .recv_until(|w| videocall_testkit::packets::is_joined(w, "alice"))
            .await;
    }
    let started = Instant::now();
    camera_toggle(&mut alice, alice_id, &mut [bob], &mut dave).await;
    assert!(started.elapsed() < PATIENCE);
}
