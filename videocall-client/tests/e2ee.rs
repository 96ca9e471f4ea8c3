//! E2EE driven end to end through the real relay core, in memory: sessions and E2EE state
//! machines wired as a client driver wires them, and a record of every byte the relay forwards.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, E2eeError, Identity};
use videocall_client::{Action, ClientConfig, Event, Session};
use videocall_relay::{Output, Relay, RelayConfig};
use videocall_types::{MediaPacket, MediaType, MeetingId, PacketType, SessionId, UserId};

/// RSA identity `i` (0..3), generated once for all tests of this binary.
fn identity(i: usize) -> Identity {
    static KEYS: OnceLock<Vec<Identity>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..3)
            .map(|i| {
                Identity::generate(&mut ChaCha20Rng::seed_from_u64(100 + i), 2048)
                    .expect("valid size")
            })
            .collect()
    })[i]
        .clone()
}

struct Client {
    session: Session,
    e2ee: E2ee,
    /// Opened frames: (sender user, packet).
    opened: Vec<(String, MediaPacket)>,
    refused: Vec<E2eeError>,
}

struct World {
    start: Instant,
    now: Duration,
    relay: Relay,
    clients: Vec<Client>,
    links: HashMap<usize, SessionId>,
    /// Every packet the relay handed to a transport.
    forwarded: Vec<Bytes>,
}

impl World {
    fn new(users: &[&str]) -> Self {
        let clients = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let rng = ChaCha20Rng::seed_from_u64(i as u64);
                let identity = identity(i);
                Client {
                    session: Session::new(ClientConfig::new(
                        UserId::new(*u).unwrap(),
                        MeetingId::new("m1").unwrap(),
                    )),
                    e2ee: E2ee::with_identity(E2eeConfig::default(), *u, identity, rng),
                    opened: Vec::new(),
                    refused: Vec::new(),
                }
            })
            .collect();
        Self {
            start: Instant::now(),
            now: Duration::ZERO,
            relay: Relay::new(RelayConfig::default()),
            clients,
            links: HashMap::new(),
            forwarded: Vec::new(),
        }
    }

    fn at(&self) -> Instant {
        self.start + self.now
    }

    fn start(&mut self, i: usize) {
        self.clients[i].session.handle_start(self.now);
        self.drive();
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_millis(100);
            let at = self.at();
            self.relay.handle_timeout(at);
            for c in &mut self.clients {
                c.session.handle_timeout(self.now);
            }
            self.drive();
        }
    }

    /// Seals `media` with client `i`'s sender key and sends it.
    fn send_sealed(&mut self, i: usize, media: &MediaPacket) {
        let c = &mut self.clients[i];
        let envelope = c.e2ee.seal(media).unwrap();
        c.session.send_packet(PacketType::Media, envelope).unwrap();
        self.drive();
    }

    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(action) = self.clients[i].session.poll_action() {
                    moved = true;
                    match action {
                        Action::Connect { .. } => {
                            let config = self.clients[i].session.config().clone();
                            let id = self
                                .relay
                                .handle_join(self.at(), config.user_id, config.meeting_id)
                                .unwrap();
                            self.links.insert(i, id);
                            self.clients[i].session.handle_connected(self.now);
                        }
                        Action::Close => {
                            if let Some(id) = self.links.remove(&i) {
                                self.relay.handle_leave(self.at(), id);
                            }
                        }
                    }
                }
                let at = self.at();
                let c = &mut self.clients[i];
                // Key packets go out before any media sealed under the key they carry.
                while let Some(k) = c.e2ee.poll_transmit() {
                    moved = true;
                    c.session.send_packet(k.packet_type, k.data).unwrap();
                }
                while let Some(bytes) = c.session.poll_transmit() {
                    moved = true;
                    if let Some(id) = self.links.get(&i) {
                        let _ = self.relay.handle_inbound(at, *id, bytes);
                    }
                }
                while let Some(event) = c.session.poll_event() {
                    moved = true;
                    match event {
                        Event::Joined { session } => c.e2ee.handle_joined(session.get()),
                        Event::PeerJoined { session, user } => {
                            c.e2ee.handle_peer_joined(session, &user)
                        }
                        Event::PeerLeft { session, .. } => c.e2ee.handle_peer_left(session),
                        Event::Other(w)
                            if w.packet_type == PacketType::RsaPubKey as i32
                                || w.packet_type == PacketType::AesKey as i32 =>
                        {
                            c.e2ee.handle_key_packet(&w).unwrap();
                        }
                        Event::Media(m) if m.packet.sealed.is_some() => {
                            match c.e2ee.open_envelope(m.session, &m.packet) {
                                Ok(packet) => c.opened.push((m.user, packet)),
                                Err(e) => c.refused.push(e),
                            }
                        }
                        _ => {}
                    }
                }
            }
            while let Some(output) = self.relay.poll_output() {
                moved = true;
                if let Output::Transmit { session, packet } = output {
                    self.relay.handle_transmitted(session, packet.len());
                    self.forwarded.push(packet.clone());
                    if let Some((&i, _)) = self.links.iter().find(|(_, s)| **s == session) {
                        self.clients[i]
                            .session
                            .handle_packet(self.now, packet)
                            .unwrap();
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("livelock");
    }

    fn opened_from(&self, i: usize, user: &str) -> Vec<&MediaPacket> {
        self.clients[i]
            .opened
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, p)| p)
            .collect()
    }
}

/// A test-pattern-like frame: colour bars, a ramp and a caption with the frame number.
fn test_pattern(frame: u64) -> Vec<u8> {
    let mut data = Vec::new();
    for bar in [0xeb_u8, 0xd2, 0xaa, 0x91, 0x6a, 0x51, 0x29, 0x10] {
        data.extend(std::iter::repeat_n(bar, 128));
    }
    data.extend((0..512).map(|i| (i % 251) as u8));
    data.extend(
        format!("videocall test pattern frame {frame:06} ")
            .repeat(8)
            .bytes(),
    );
    data
}

fn frame(n: u64) -> MediaPacket {
    MediaPacket {
        media_type: MediaType::Video as i32,
        data: Bytes::from(test_pattern(n)),
        frame_type: if n.is_multiple_of(30) { "key" } else { "delta" }.into(),
        timestamp: n as f64 * 33.0,
        ..Default::default()
    }
}

#[test]
fn the_relay_forwards_no_plaintext_and_every_peer_decodes_every_frame() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for i in 0..3 {
        w.start(i);
    }
    let code = w.clients[0].e2ee.safety_code();
    assert_eq!(w.clients[1].e2ee.safety_code(), code);
    assert_eq!(w.clients[2].e2ee.safety_code(), code);

    for n in 0..60 {
        w.send_sealed(0, &frame(n));
    }
    for i in [1, 2] {
        let got = w.opened_from(i, "alice");
        assert_eq!(got.len(), 60, "client {i}");
        assert!(got.iter().zip(0..).all(|(p, n)| p.data == test_pattern(n)));
        assert!(w.clients[i].refused.is_empty());
    }

    let mut plaintext_windows = HashSet::new();
    for n in 0..60 {
        let data = test_pattern(n);
        plaintext_windows.extend(data.windows(16).map(<[u8]>::to_vec));
    }
    assert!(!w.forwarded.is_empty());
    for packet in &w.forwarded {
        assert!(
            !packet
                .windows(16)
                .any(|win| plaintext_windows.contains(win)),
            "the relay forwarded 16 plaintext bytes of the test pattern"
        );
    }
}

#[test]
fn after_a_leave_the_remaining_two_decode_without_a_gap_under_a_new_key() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for i in 0..3 {
        w.start(i);
    }
    for n in 0..30 {
        w.send_sealed(0, &frame(n));
    }
    w.clients[2].session.leave();
    w.drive();
    // The relay announces the leave after its reconnect grace.
    w.advance(Duration::from_secs(5));
    assert_eq!(w.clients[0].e2ee.epoch(), 1);
    assert_eq!(w.clients[1].e2ee.epoch(), 1);
    for n in 30..90 {
        w.send_sealed(0, &frame(n));
        w.send_sealed(1, &frame(n));
    }
    let from_alice = w.opened_from(1, "alice");
    assert_eq!(from_alice.len(), 90, "bob decodes every frame of alice");
    assert_eq!(
        w.opened_from(0, "bob").len(),
        60,
        "alice decodes every frame of bob"
    );
    assert!(w.clients[0].refused.is_empty() && w.clients[1].refused.is_empty());
    let safety = w.clients[0].e2ee.safety_code();
    assert_eq!(w.clients[1].e2ee.safety_code(), safety);
}
