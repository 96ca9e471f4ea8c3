//! Graceful drain for rolling updates, on real processes: a `nats-server`, two `actix-api`
//! nodes sharing a `JWT_SECRET` (so each verifies the other's reconnect secrets), and the real
//! client core (`videocall_client::native::Client`, end-to-end encrypted) as publisher and
//! receiver. SIGTERM to the publisher's node: it must move to the other node at once and the
//! receiver must keep hearing it, with no more than a second of missing media.
//!
//! The figures are printed (`cargo test -p actix-api --test drain -- --nocapture`) for
//! docs/RELIABILITY.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use videocall_client::e2ee::{Identity, OsRng};
use videocall_client::native::{Client, NativeConfig, RelayUrls, Status, Update};
use videocall_client::{ClientConfig, ConnectionState, Event};
use videocall_testkit::PATIENCE;
use videocall_testkit::client::TestClient;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::numbered_audio;
use videocall_testkit::process::{Service, http_get, single_node, ws_node_on_nats};
use videocall_types::{
    MeetingEventType, MeetingId, MeetingPacket, PacketType, PacketWrapper, SessionId, UserId,
};

/// `--drain-seconds` of the nodes: how long a stopping node waits for its clients to move.
const DRAIN_SECONDS: u64 = 10;
/// The publisher's audio rate: a packet every 20 ms.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// What the move may cost the receiver, at most (the bound).
const MOST_MISSING: Duration = Duration::from_secs(1);
/// Shared by the nodes of one deployment: room tokens and reconnect secrets verify anywhere.
const JWT_SECRET: &str = "drain-test-secret-shared-by-both-nodes";

/// An `actix-api` node on `nats`, WebSocket only: (process, http port).
fn node_on_nats(nats: &NatsServer) -> (Service, u16) {
    let drain = DRAIN_SECONDS.to_string();
    ws_node_on_nats(
        &nats.url(),
        &["--drain-seconds", &drain, "--jwt-secret", JWT_SECRET],
    )
}

fn relay(http: u16) -> RelayUrls {
    RelayUrls {
        webtransport_url: None,
        websocket_url: Some(format!("http://127.0.0.1:{http}")),
    }
}

/// A client of the real client core, end-to-end encrypting, on `relays` (tried in order).
async fn client(user: &str, relays: Vec<RelayUrls>) -> Client {
    let identity = tokio::task::spawn_blocking(|| Identity::generate(&mut OsRng, 2048))
        .await
        .expect("key generation ran")
        .expect("a 2048-bit key");
    let mut native = NativeConfig::with_relays(relays);
    native.e2ee = Some(identity);
    let config = ClientConfig::new(UserId::new(user).unwrap(), MeetingId::new("drain").unwrap());
    Client::start(config, native)
}

/// Polls the client's status until `done` holds (or panics after [`PATIENCE`]).
async fn until_status(client: &Client, what: &str, done: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = client.status();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "never {what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the receiver noticed of the publisher, with when.
#[derive(Debug, Default)]
struct Heard {
    /// (arrival, audio sequence, sender session) of every packet opened.
    media: Vec<(Instant, u64, SessionId)>,
    /// The publisher's sessions joining (true) and leaving (false), in order.
    roster: Vec<(Instant, bool, SessionId)>,
    /// The receiver's own connection dropped (it must not).
    disconnects: Vec<String>,
}

/// Reads the receiver's updates into `heard` until the client stops.
fn listen(mut receiver: Client, publisher: &'static str) -> Arc<Mutex<Heard>> {
    let heard = Arc::new(Mutex::new(Heard::default()));
    let log = heard.clone();
    tokio::spawn(async move {
        while let Some(update) = receiver.next_update().await {
            let Update::Session(event) = update else {
                continue;
            };
            let now = Instant::now();
            let mut log = log.lock().unwrap();
            match event {
                Event::Media(m) if m.user == publisher => {
                    if let Some(audio) = &m.packet.audio_metadata {
                        log.media.push((now, audio.sequence, m.session));
                    }
                }
                Event::PeerJoined { session, user } if user == publisher => {
                    log.roster.push((now, true, session));
                }
                Event::PeerLeft { session, user } if user == publisher => {
                    log.roster.push((now, false, session));
                }
                Event::Disconnected { reason, .. } => log.disconnects.push(reason),
                _ => {}
            }
        }
    });
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_a_draining_node_moves_to_the_other_and_its_meeting_goes_on() {
    let nats = NatsServer::start();
    let (mut draining, http_1) = node_on_nats(&nats);
    let (_staying, http_2) = node_on_nats(&nats);

    let receiver = client("receiver", vec![relay(http_2)]).await;
    until_status(&receiver, "joined", |s| s.joins == 1).await;
    let heard = listen(receiver, "publisher");
    // The publisher knows both nodes and starts on the first.
    let publisher = client("publisher", vec![relay(http_1), relay(http_2)]).await;
    until_status(&publisher, "joined node 1", |s| {
        s.joins == 1 && s.relay == Some(0)
    })
    .await;

    // Audio at a steady rate, numbered: the receiver's log shows every gap.
    let handle = publisher.handle().clone();
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PACKET_INTERVAL);
        for sequence in 0.. {
            tick.tick().await;
            handle.send_media(numbered_audio(sequence));
        }
    });
    // Steady state: the receiver opens the publisher's audio (keys exchanged).
    let deadline = Instant::now() + PATIENCE;
    while heard.lock().unwrap().media.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "the receiver never heard the publisher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let terminated = Instant::now();
    draining.terminate();
    let moved = until_status(&publisher, "moved to node 2", |s| {
        s.joins == 2
            && s.relay == Some(1)
            && matches!(s.state, Some(ConnectionState::Joined { .. }))
    })
    .await;
    let moved_after = terminated.elapsed();
    let exit = tokio::task::spawn_blocking(move || {
        let status = draining.wait_exit(Duration::from_secs(DRAIN_SECONDS + 10));
        (status, terminated.elapsed())
    });
    let (status, exited_after) = exit.await.expect("waited");
    let status = status.expect("node 1 exited");
    // The meeting goes on through node 2 for a while, then the publisher stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sending.abort();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let heard = heard.lock().unwrap();
    // Gaps in arrival around the move, and sequences that never arrived.
    let arrivals: Vec<Instant> = heard
        .media
        .iter()
        .map(|(at, _, _)| *at)
        .filter(|at| *at + Duration::from_secs(1) >= terminated)
        .collect();
    let worst_gap = arrivals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let first = heard.media.first().map(|m| m.1).unwrap_or_default();
    let last = heard.media.last().map(|m| m.1).unwrap_or_default();
    let received: std::collections::HashSet<u64> = heard.media.iter().map(|m| m.1).collect();
    let missing = (first..=last).filter(|s| !received.contains(s)).count() as u32;
    let missing_time = PACKET_INTERVAL * missing;
    let sessions: Vec<SessionId> = {
        let mut s: Vec<SessionId> = heard.media.iter().map(|m| m.2).collect();
        s.dedup();
        s
    };
    println!(
        "drain: publisher back through node 2 {} ms after SIGTERM; node 1 exited after {} ms \
         (drain limit {DRAIN_SECONDS} s); receiver's largest gap {} ms, {missing} of {} packets \
         missing ({} ms of audio); publisher dropped {} packets while moving; roster seen: {:?}",
        moved_after.as_millis(),
        exited_after.as_millis(),
        worst_gap.as_millis(),
        last - first + 1,
        missing_time.as_millis(),
        moved.dropped_media,
        heard
            .roster
            .iter()
            .map(|(at, joined, s)| format!(
                "{} {:x} at {:+} ms",
                if *joined { "joined" } else { "left" },
                s.get(),
                ms_since(terminated, *at)
            ))
            .collect::<Vec<_>>(),
    );

    assert!(status.success(), "node 1 exit status {status}");
    assert!(
        exited_after < Duration::from_secs(DRAIN_SECONDS),
        "node 1 took {exited_after:?} to stop: it waited for the drain limit"
    );
    assert!(
        worst_gap <= MOST_MISSING,
        "the receiver heard nothing from the publisher for {worst_gap:?}"
    );
    assert!(
        missing_time <= MOST_MISSING,
        "{missing_time:?} of the publisher's audio never arrived"
    );
    assert_eq!(sessions.len(), 2, "heard from sessions {sessions:x?}");
    assert!(
        heard.media.last().is_some_and(|m| m.2 == sessions[1]),
        "the new session's audio arrives to the end"
    );
    assert!(heard.disconnects.is_empty(), "{:?}", heard.disconnects);
    // The receiver saw the publisher's first session replaced by its second — the client
    // core's PeerLeft + PeerJoined of one JOINED — and never a departure of its own.
    let roster: Vec<(bool, SessionId)> = heard.roster.iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(
        roster,
        [
            (true, sessions[0]),
            (false, sessions[0]),
            (true, sessions[1])
        ],
        "the receiver's view of the publisher"
    );
    let replaced = heard.roster[2].0 - heard.roster[1].0;
    assert!(replaced < Duration::from_millis(50), "{replaced:?}");
}

/// Milliseconds from `start` to `at`, negative when `at` came first.
fn ms_since(start: Instant, at: Instant) -> i64 {
    at.saturating_duration_since(start).as_millis() as i64
        - start.saturating_duration_since(at).as_millis() as i64
}

fn is_draining(wrapper: &PacketWrapper) -> bool {
    wrapper.packet_type == PacketType::Meeting as i32
        && MeetingPacket::decode(wrapper.data.clone())
            .is_ok_and(|m| m.event_type == MeetingEventType::NodeDraining as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_fails_health_checks_refuses_joins_and_closes_who_stays_at_the_limit() {
    let (mut node, http, udp) = single_node(&["--drain-seconds", "2"]);
    let hash = videocall_testkit::process::certificate_hash(http);
    // A client that does not know NODE_DRAINING (an old one): it stays.
    let url = |user: &str| format!("ws://127.0.0.1:{http}/lobby/{user}/m1");
    let mut stays = TestClient::websocket(&url("stays")).await.unwrap();
    stays
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await;

    let terminated = Instant::now();
    node.terminate();
    stays.recv_until(is_draining).await;
    let (status, body) = tokio::task::spawn_blocking(move || http_get(http, "/healthz"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    // Neither transport takes a join any more.
    let refused = TestClient::websocket(&url("late")).await;
    let error = refused
        .expect_err("a join while draining is refused")
        .to_string();
    assert!(error.contains("503"), "{error}");
    // WebTransport: accepted, then closed at once with 4000 + the status.
    let refused =
        match TestClient::webtransport(&format!("https://127.0.0.1:{udp}/lobby/late/m1"), hash)
            .await
        {
            Err(e) => format!("{e:#}"),
            Ok(mut client) => client.closed().await,
        };
    assert!(refused.contains("4503"), "{refused}");

    // The drain limit closes whoever stayed, then the node exits.
    let reason = stays.closed().await;
    let closed_after = terminated.elapsed();
    assert!(reason.contains("shutting down"), "{reason}");
    let status = tokio::task::spawn_blocking(move || node.wait_exit(Duration::from_secs(8)))
        .await
        .unwrap()
        .expect("exited within the drain limits");
    println!(
        "drain limit 2 s: the client that stayed was closed after {} ms, the node was gone \
         after {} ms",
        closed_after.as_millis(),
        terminated.elapsed().as_millis()
    );
    assert!(status.success(), "exit status {status}");
    assert!(
        closed_after >= Duration::from_millis(1900),
        "closed after {closed_after:?}, before the drain limit"
    );
}
