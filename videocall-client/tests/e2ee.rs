//! E2EE driven end to end through the real relay core, in memory: sessions that encrypt
//! (`Session::with_e2ee`, as every client runs them), and a record of every byte the relay
//! forwards.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity, SafetyCode};
use videocall_client::{Action, ClientConfig, Event, Session};
use videocall_relay::{Output, Relay, RelayConfig};
use videocall_types::{MediaPacket, MediaType, MeetingId, SessionId, UserId};

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
    /// Opened frames: (sender user, packet).
    opened: Vec<(String, MediaPacket)>,
    /// The safety codes the session told, in order.
    codes: Vec<SafetyCode>,
    /// Peers reported as not agreeing on encryption: (user, peer encrypts).
    mismatches: Vec<(String, bool)>,
    /// Keyframes the session asked us for.
    keyframe_requests: usize,
    /// For a client whose identity is external (as in the browser): the private key the
    /// "outside" unwraps with, and whether it should fail.
    outside: Option<(Identity, bool)>,
}

impl Client {
    fn e2ee(&self) -> &E2ee {
        self.session.e2ee().expect("every client here encrypts")
    }

    fn refused(&self) -> u64 {
        self.e2ee().stats().dropped.total()
    }
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
        Self::mixed(users, &vec![true; users.len()])
    }

    /// Clients that encrypt or not (`encrypts[i]`).
    fn mixed(users: &[&str], encrypts: &[bool]) -> Self {
        let clients = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let config =
                    ClientConfig::new(UserId::new(*u).unwrap(), MeetingId::new("m1").unwrap());
                let session = if encrypts[i] {
                    let rng = ChaCha20Rng::seed_from_u64(i as u64);
                    let e2ee = E2ee::with_identity(E2eeConfig::default(), *u, identity(i), rng);
                    Session::with_e2ee(config, e2ee)
                } else {
                    Session::new(config)
                };
                Client {
                    session,
                    opened: Vec::new(),
                    codes: Vec::new(),
                    mismatches: Vec::new(),
                    keyframe_requests: 0,
                    outside: None,
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

    /// Client `i`'s private key is held outside its session (`Identity::external`); unwraps
    /// fail when `fail`.
    fn externalise(&mut self, i: usize, fail: bool) {
        let user = self.clients[i].session.config().user_id.as_str().to_owned();
        let external = Identity::external(identity(i).public_key_der()).unwrap();
        let rng = ChaCha20Rng::seed_from_u64(50 + i as u64);
        let e2ee = E2ee::with_identity(E2eeConfig::default(), user, external, rng);
        let config = self.clients[i].session.config().clone();
        self.clients[i].session = Session::with_e2ee(config, e2ee);
        self.clients[i].outside = Some((identity(i), fail));
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

    /// Client `i` sends `media` (the session seals it).
    fn send(&mut self, i: usize, media: &MediaPacket) {
        self.clients[i].session.send_media(media.clone()).unwrap();
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
                while let Some(request) = c.session.poll_unwrap() {
                    moved = true;
                    let (private, fail) = c.outside.as_ref().expect("only external identities ask");
                    let mut rng = ChaCha20Rng::seed_from_u64(7);
                    let secret = private.unwrap(&mut rng, &request.wrapped).ok();
                    let secret = secret.filter(|_| !fail);
                    let _ = c.session.handle_unwrapped(
                        self.now,
                        &request,
                        secret.as_deref().map(|s| &s[..]),
                    );
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
                        Event::Media(m) if m.packet.media_type == MediaType::Video as i32 => {
                            c.opened.push((m.user, m.packet))
                        }
                        Event::SafetyCode(code) => c.codes.push(code),
                        Event::KeyframeRequested => c.keyframe_requests += 1,
                        Event::E2eeMismatch {
                            user,
                            peer_encrypts,
                            ..
                        } => c.mismatches.push((user, peer_encrypts)),
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
    let code = w.clients[0].e2ee().safety_code();
    assert_eq!(w.clients[1].e2ee().safety_code(), code);
    assert_eq!(w.clients[2].e2ee().safety_code(), code);

    for n in 0..60 {
        w.send(0, &frame(n));
    }
    for i in [1, 2] {
        let got = w.opened_from(i, "alice");
        assert_eq!(got.len(), 60, "client {i}");
        assert!(got.iter().zip(0..).all(|(p, n)| p.data == test_pattern(n)));
        assert_eq!(w.clients[i].refused(), 0);
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
        w.send(0, &frame(n));
    }
    // Every join rotated the keys of those present; the leave rotates once more.
    let epochs = (w.clients[0].e2ee().epoch(), w.clients[1].e2ee().epoch());
    w.clients[2].session.leave();
    w.drive();
    // The relay announces the leave after its reconnect grace.
    w.advance(Duration::from_secs(5));
    assert_eq!(w.clients[0].e2ee().epoch(), epochs.0 + 1);
    assert_eq!(w.clients[1].e2ee().epoch(), epochs.1 + 1);
    for n in 30..90 {
        w.send(0, &frame(n));
        w.send(1, &frame(n));
    }
    let from_alice = w.opened_from(1, "alice");
    assert_eq!(from_alice.len(), 90, "bob decodes every frame of alice");
    assert_eq!(
        w.opened_from(0, "bob").len(),
        60,
        "alice decodes every frame of bob"
    );
    assert_eq!(w.clients[0].refused() + w.clients[1].refused(), 0);
    let safety = w.clients[0].e2ee().safety_code();
    assert_eq!(w.clients[1].e2ee().safety_code(), safety);
}

#[test]
fn every_client_is_told_the_same_safety_code() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for i in 0..3 {
        w.start(i);
    }
    let told: Vec<SafetyCode> = w
        .clients
        .iter()
        .map(|c| *c.codes.last().expect("a safety code was told"))
        .collect();
    assert_eq!(told[0], told[1]);
    assert_eq!(told[1], told[2]);
    assert_eq!(told[0], w.clients[0].e2ee().safety_code());
    // Alone in the meeting, alice's code was another one.
    assert_ne!(w.clients[0].codes[0], told[0]);
}

#[test]
fn a_sender_is_asked_for_a_keyframe_when_a_newcomer_gets_its_key() {
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    assert_eq!(w.clients[0].keyframe_requests, 0, "alone: nobody to start");
    w.start(1);
    assert!(w.clients[0].keyframe_requests >= 1);
    assert!(w.clients[1].keyframe_requests >= 1);
}

#[test]
fn clear_media_in_an_encrypted_meeting_is_refused_and_reported_both_ways() {
    let mut w = World::mixed(&["alice", "mallory"], &[true, false]);
    w.start(0);
    w.start(1);
    for n in 0..10 {
        w.send(0, &frame(n));
        w.send(1, &frame(n));
    }
    assert!(
        w.opened_from(0, "mallory").is_empty(),
        "clear video is never shown"
    );
    assert_eq!(w.clients[0].mismatches, vec![("mallory".to_owned(), false)]);
    assert!(w.clients[0].session.mismatch_drops() >= 10);
    assert!(w.opened_from(1, "alice").is_empty());
    assert_eq!(w.clients[1].mismatches, vec![("alice".to_owned(), true)]);
}

#[test]
fn a_private_key_held_outside_the_core_unwraps_there_and_decodes() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.externalise(1, false);
    for i in 0..3 {
        w.start(i);
    }
    assert!(w.clients[1].e2ee().identity().is_external());
    for n in 0..30 {
        w.send(0, &frame(n));
        w.send(1, &frame(n));
    }
    assert_eq!(
        w.opened_from(1, "alice").len(),
        30,
        "bob opens with keys unwrapped outside"
    );
    assert_eq!(
        w.opened_from(2, "bob").len(),
        30,
        "carol opens bob's frames"
    );
    let code = w.clients[0].e2ee().safety_code();
    assert_eq!(w.clients[1].e2ee().safety_code(), code);
    // A leave rotates: the new keys are unwrapped outside too.
    w.clients[2].session.leave();
    w.drive();
    w.advance(Duration::from_secs(5));
    for n in 30..60 {
        w.send(0, &frame(n));
    }
    assert_eq!(w.opened_from(1, "alice").len(), 60);
    assert_eq!(w.clients[1].refused(), 0);
}

#[test]
fn a_failed_outside_unwrap_is_counted_and_installs_nothing() {
    let mut w = World::new(&["alice", "bob"]);
    w.externalise(1, true);
    w.start(0);
    w.start(1);
    w.send(0, &frame(0));
    assert!(w.opened_from(1, "alice").is_empty());
    let stats = *w.clients[1].e2ee().stats();
    assert!(stats.key_packets_refused >= 1, "{stats:?}");
    assert_eq!(stats.keys_installed, 0);
    assert!(stats.dropped.no_key >= 1);
}
