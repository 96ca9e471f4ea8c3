//! Issue #16 through real relays: two `actix-api` nodes on a real `nats-server`, a real
//! end-to-end encrypted client core on each (alice on node 1, bob on node 2), and an injecting
//! raw NATS client (async-nats) that records the meeting's bus traffic and publishes what a
//! NATS user could:
//!
//! - a **ghost** RSA_PUB_KEY (properly signed by the ghost's own keys) from a session that never
//!   joined, addressed to each real client: neither wraps a key for it, and it is in neither
//!   key-holder list nor safety code (both codes stay equal over exactly alice and bob);
//! - a **forged AES_KEY "from alice"** with epoch `u32::MAX`: bob refuses and counts it
//!   (`unauthenticated_key_packets`);
//! - a **replayed** recorded frame of alice's: bob refuses and counts it (`replayed`);
//!
//! and alice's real media keeps opening at bob's throughout, with no frame failing to
//! authenticate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use videocall_client::e2ee::{E2ee, E2eeConfig, E2eeStats, Identity, KeyHolder, OsRng};
use videocall_client::native::{Client, NativeConfig, RelayUrls, Status, Update};
use videocall_client::{ClientConfig, ConnectionState, Event};
use videocall_testkit::PATIENCE;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::numbered_audio;
use videocall_testkit::process::{Service, ws_node_on_nats};
use videocall_types::proto::{SenderKeyPacket, WrappedSenderKey};
use videocall_types::{MediaPacket, MeetingId, PacketType, PacketWrapper, SessionId, UserId};

const MEETING: &str = "inj";

/// An `actix-api` node on `nats`, WebSocket only: (process, http port).
fn node_on_nats(nats: &NatsServer) -> (Service, u16) {
    ws_node_on_nats(&nats.url(), &[])
}

/// One real client and what it showed: its latest key holders and safety code.
struct Peer {
    client: Client,
    holders: Vec<KeyHolder>,
    code: Option<String>,
}

impl Peer {
    /// Reads every update already queued (the channel is unbounded; nothing waits on us).
    async fn drain(&mut self) {
        while let Ok(Some(update)) =
            tokio::time::timeout(Duration::ZERO, self.client.next_update()).await
        {
            match update {
                Update::KeyHolders(holders) => self.holders = holders,
                Update::Session(Event::SafetyCode(code)) => self.code = Some(code.to_string()),
                _ => {}
            }
        }
    }

    /// Polls until `done` holds (or panics after [`PATIENCE`]); returns the status.
    async fn until(&mut self, what: &str, done: impl Fn(&Status, &E2eeStats) -> bool) -> Status {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.drain().await;
            let status = self.client.status();
            let stats = status.e2ee_stats.unwrap_or_default();
            if done(&status, &stats) {
                return status;
            }
            assert!(Instant::now() < deadline, "never {what}: {status:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A real E2EE client of `user` on node `http`.
async fn client(user: &str, http: u16) -> Peer {
    let identity = tokio::task::spawn_blocking(|| Identity::generate(&mut OsRng, 2048))
        .await
        .expect("key generation ran")
        .expect("a 2048-bit key");
    let mut native = NativeConfig::with_relays(vec![RelayUrls {
        webtransport_url: None,
        websocket_url: Some(format!("http://127.0.0.1:{http}")),
    }]);
    native.e2ee = Some(identity);
    let config = ClientConfig::new(UserId::new(user).unwrap(), MeetingId::new(MEETING).unwrap());
    Peer {
        client: Client::start(config, native),
        holders: Vec::new(),
        code: None,
    }
}

fn session_of(status: &Status) -> u64 {
    match status.state {
        Some(ConnectionState::Joined { session }) => session.get(),
        ref other => panic!("not joined: {other:?}"),
    }
}

/// The packets of one NATS message on `room.<meeting>.…`: (subject tail, payload). A batch
/// (`room.<meeting>.batch`, version 1: `tail_len:u8 tail payload_len:u32le payload`…) is split.
fn packets_of(subject: &str, payload: &Bytes) -> Vec<(String, Bytes)> {
    let prefix = format!("room.{MEETING}.");
    let Some(tail) = subject.strip_prefix(&prefix) else {
        return Vec::new();
    };
    if tail != "batch" {
        return vec![(tail.to_owned(), payload.clone())];
    }
    assert_eq!(payload.first(), Some(&1), "batch version");
    let mut out = Vec::new();
    let mut at = 1;
    while at < payload.len() {
        let n = usize::from(payload[at]);
        let tail = String::from_utf8(payload[at + 1..at + 1 + n].to_vec()).unwrap();
        at += 1 + n;
        let len = u32::from_le_bytes(payload[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        out.push((tail, payload.slice(at..at + len)));
        at += len;
    }
    out
}

fn wrapper(packet_type: PacketType, user: &str, session: u64, data: Bytes) -> Bytes {
    PacketWrapper {
        packet_type: packet_type as i32,
        user_id: Bytes::copy_from_slice(user.as_bytes()),
        session_id: session,
        data,
    }
    .encode_to_vec()
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_user_cannot_add_a_hidden_key_holder_forge_alices_key_or_replay_her_frames() {
    let nats = NatsServer::start();
    let (_node_1, http_1) = node_on_nats(&nats);
    let (_node_2, http_2) = node_on_nats(&nats);
    // The injector: a plain NATS connection, recording everything said in the meeting.
    let injector = async_nats::connect(nats.url())
        .await
        .expect("NATS connects");
    let mut subscription = injector
        .subscribe(format!("room.{MEETING}.>"))
        .await
        .unwrap();
    injector.flush().await.unwrap();
    let recorded: Arc<Mutex<Vec<(String, PacketWrapper)>>> = Arc::default();
    let log = recorded.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            for (tail, payload) in packets_of(message.subject.as_str(), &message.payload) {
                if let Ok(w) = PacketWrapper::decode(payload) {
                    log.lock().unwrap().push((tail, w));
                }
            }
        }
    });

    let mut alice = client("alice", http_1).await;
    let mut bob = client("bob", http_2).await;
    let alice_session = session_of(&alice.until("alice joined", |s, _| s.joins == 1).await);
    let bob_session = session_of(&bob.until("bob joined", |s, _| s.joins == 1).await);
    // Alice speaks: numbered audio every 20 ms.
    let handle = alice.client.handle().clone();
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for sequence in 0.. {
            tick.tick().await;
            handle.send_media(numbered_audio(sequence));
        }
    });
    bob.until("bob opens alice's audio", |_, e| e.opened >= 20)
        .await;

    // (a) The ghost: its own keys, correctly signed for its own session; it never joined.
    let ghost_session = SessionId::new(0x7777, 1).get();
    let mut ghost = tokio::task::spawn_blocking(|| {
        E2ee::new(E2eeConfig::default(), "ghost", OsRng).expect("ghost identity")
    })
    .await
    .unwrap();
    ghost.set_meeting(MEETING);
    ghost.handle_joined(ghost_session);
    let announce = std::iter::from_fn(|| ghost.poll_transmit())
        .find(|k| k.packet_type == PacketType::RsaPubKey)
        .expect("the ghost announces its key");
    let ghost_packet = wrapper(PacketType::RsaPubKey, "ghost", ghost_session, announce.data);
    for target in [alice_session, bob_session] {
        // Addressed to one session: the relay delivers it without announcing the ghost.
        injector
            .publish(
                format!("room.{MEETING}.{ghost_session}.{target}"),
                ghost_packet.clone(),
            )
            .await
            .unwrap();
    }
    injector.flush().await.unwrap();
    for (who, c) in [("alice", &mut alice), ("bob", &mut bob)] {
        c.until(&format!("{who} holds the ghost's key aside"), |_, e| {
            e.outside_roster >= 1
        })
        .await;
    }

    // (b) A forged AES_KEY "from alice" for bob, of the largest epoch, not signed by alice.
    let bob_before = bob.until("bob has stats", |_, _| true).await;
    let bob_before = bob_before.e2ee_stats.unwrap();
    let forged = SenderKeyPacket {
        version: 2,
        epoch: u32::MAX,
        keys: vec![WrappedSenderKey {
            recipient_session: bob_session,
            wrapped: vec![0x42; 256].into(),
        }],
        signature: vec![0x13; 64].into(),
    };
    injector
        .publish(
            format!("room.{MEETING}.{alice_session}.{bob_session}"),
            wrapper(
                PacketType::AesKey,
                "alice",
                alice_session,
                forged.encode_to_vec().into(),
            ),
        )
        .await
        .unwrap();
    injector.flush().await.unwrap();
    bob.until("bob refuses the forged key", |_, e| {
        e.unauthenticated_key_packets > bob_before.unauthenticated_key_packets
    })
    .await;

    // (b) Replay: one of alice's sealed frames recorded off the bus, once bob has opened it
    // and plenty after it, published again as alice's.
    let frame = recorded
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(tail, w)| {
            *tail == alice_session.to_string()
                && w.packet_type == PacketType::Media as i32
                && MediaPacket::decode(w.data.clone()).is_ok_and(|m| m.sealed.is_some())
        })
        .map(|(_, w)| w.clone())
        .expect("alice's sealed audio crossed the bus");
    let opened = bob.client.status().e2ee_opened;
    bob.until("bob opens 25 more frames", |s, _| {
        s.e2ee_opened >= opened + 25
    })
    .await;
    let replayed_before = bob.client.status().e2ee_stats.unwrap().dropped.replayed;
    injector
        .publish(
            format!("room.{MEETING}.{alice_session}"),
            Bytes::from(frame.encode_to_vec()),
        )
        .await
        .unwrap();
    injector.flush().await.unwrap();
    bob.until("bob refuses the replayed frame", |_, e| {
        e.dropped.replayed > replayed_before
    })
    .await;

    // Alice's real media still opens at bob's, and nothing ever failed to authenticate (the
    // forged key was never installed).
    let opened = bob.client.status().e2ee_opened;
    let after = bob
        .until("alice's audio keeps opening", |s, _| {
            s.e2ee_opened >= opened + 25
        })
        .await;
    sending.abort();
    let stats = after.e2ee_stats.unwrap();
    assert_eq!(stats.dropped.authentication, 0, "{stats:?}");
    assert_eq!(stats.keys_installed, bob_before.keys_installed, "{stats:?}");

    // Nobody wrapped a key for the ghost: no AES_KEY for its session crossed the bus (alice's
    // and bob's keys for each other do), and it is in no key-holder list or code.
    let wraps_for = |session: u64| {
        recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, w)| w.packet_type == PacketType::AesKey as i32)
            .filter_map(|(_, w)| SenderKeyPacket::decode(w.data.clone()).ok())
            .filter(|k| k.signature.len() == 64 && k.epoch != u32::MAX)
            .filter(|k| k.keys.iter().any(|key| key.recipient_session == session))
            .count()
    };
    assert!(
        wraps_for(bob_session) >= 1,
        "alice's key for bob crossed the bus"
    );
    assert_eq!(
        wraps_for(ghost_session),
        0,
        "a key was wrapped for the ghost"
    );
    alice.drain().await;
    for shown in [&alice, &bob] {
        let mut users: Vec<&str> = shown.holders.iter().map(|h| h.user.as_str()).collect();
        users.sort();
        assert_eq!(users, ["alice", "bob"], "{:?}", shown.holders);
        assert!(shown.holders.iter().all(|h| h.session != ghost_session));
    }
    assert!(alice.code.is_some());
    assert_eq!(alice.code, bob.code, "one code over the same two holders");
    eprintln!(
        "bob: {} opened, forged key refused ({} unauthenticated), {} replayed refused, \
         ghost held aside ({} outside roster)",
        after.e2ee_opened,
        stats.unauthenticated_key_packets,
        stats.dropped.replayed,
        stats.outside_roster
    );
}
