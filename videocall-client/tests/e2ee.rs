//! E2EE driven end to end through the real relay core, in memory: sessions that encrypt
//! (`Session::with_e2ee`, as every client runs them), and a record of every byte the relay
//! forwards. The meeting runs on the shared harness (`harness::Net`): a virtual clock that jumps
//! to the next `poll_timeout` or arrival.

mod harness;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use harness::{Conditions, Net};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity, SafetyCode};
use videocall_client::{ClientConfig, Event, Session};
use videocall_types::{MediaPacket, MediaType, MeetingId, UserId};

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

/// Clients made up front (encrypting or not, some with their private key outside) and started
/// one by one into a [`Net`]: the real relay core, links without delay or loss, the clock jumping
/// to the next thing due.
struct World {
    net: Net,
    /// Sessions made and not started yet, by client number.
    made: Vec<Option<Session>>,
    /// Outside keys of clients not started yet.
    outside: HashMap<usize, (Identity, bool)>,
    /// Client number → its index in the net, once started.
    index: Vec<Option<usize>>,
}

impl World {
    fn new(users: &[&str]) -> Self {
        Self::mixed(users, &vec![true; users.len()])
    }

    /// Clients that encrypt or not (`encrypts[i]`).
    fn mixed(users: &[&str], encrypts: &[bool]) -> Self {
        let made = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let config =
                    ClientConfig::new(UserId::new(*u).unwrap(), MeetingId::new("m1").unwrap());
                Some(if encrypts[i] {
                    let rng = ChaCha20Rng::seed_from_u64(i as u64);
                    let e2ee = E2ee::with_identity(E2eeConfig::default(), *u, identity(i), rng);
                    Session::with_e2ee(config, e2ee)
                } else {
                    Session::new(config)
                })
            })
            .collect();
        Self {
            net: Net::new(Conditions::default(), 1),
            made,
            outside: HashMap::new(),
            index: vec![None; users.len()],
        }
    }

    /// Client `i`'s private key is held outside its session (`Identity::external`); unwraps
    /// fail when `fail`.
    fn externalise(&mut self, i: usize, fail: bool) {
        let session = self.made[i].as_ref().expect("not started yet");
        let config = session.config().clone();
        let external = Identity::external(identity(i).public_key_der()).unwrap();
        let rng = ChaCha20Rng::seed_from_u64(50 + i as u64);
        let e2ee = E2ee::with_identity(
            E2eeConfig::default(),
            config.user_id.as_str(),
            external,
            rng,
        );
        self.made[i] = Some(Session::with_e2ee(config, e2ee));
        self.outside.insert(i, (identity(i), fail));
    }

    fn start(&mut self, i: usize) {
        let at = self.net.clients.len();
        if let Some(outside) = self.outside.remove(&i) {
            self.net.outside.insert(at, outside);
        }
        let session = self.made[i].take().expect("started once");
        self.index[i] = Some(self.net.add(session));
    }

    fn at(&self, i: usize) -> usize {
        self.index[i].expect("client started")
    }

    fn session(&mut self, i: usize) -> &mut Session {
        let at = self.at(i);
        &mut self.net.clients[at]
    }

    fn e2ee(&self, i: usize) -> &E2ee {
        self.net.clients[self.at(i)]
            .e2ee()
            .expect("this client encrypts")
    }

    fn refused(&self, i: usize) -> u64 {
        self.e2ee(i).stats().dropped.total()
    }

    fn events(&self, i: usize) -> &[Event] {
        &self.net.events[self.at(i)]
    }

    /// The safety codes client `i` was told, in order.
    fn codes(&self, i: usize) -> Vec<SafetyCode> {
        let codes = self.events(i).iter().filter_map(|e| match e {
            Event::SafetyCode(code) => Some(*code),
            _ => None,
        });
        codes.collect()
    }

    /// Keyframes client `i` was asked for.
    fn keyframe_requests(&self, i: usize) -> usize {
        let asked = self.events(i).iter();
        asked
            .filter(|e| matches!(e, Event::KeyframeRequested))
            .count()
    }

    /// Peers client `i` was told do not agree on encryption: (user, peer encrypts).
    fn mismatches(&self, i: usize) -> Vec<(String, bool)> {
        let told = self.events(i).iter().filter_map(|e| match e {
            Event::E2eeMismatch {
                user,
                peer_encrypts,
                ..
            } => Some((user.to_string(), *peer_encrypts)),
            _ => None,
        });
        told.collect()
    }

    fn advance(&mut self, by: Duration) {
        self.net.run_for(by);
    }

    /// Client `i` sends `media` (the session seals it).
    fn send(&mut self, i: usize, media: &MediaPacket) {
        self.session(i).send_media(media.clone()).unwrap();
        self.net.drive();
    }

    /// Client `i` leaves.
    fn leave(&mut self, i: usize) {
        self.session(i).leave();
        self.net.drive();
    }

    /// The video frames client `i` opened from `user`, in order.
    fn opened_from(&self, i: usize, user: &str) -> Vec<&MediaPacket> {
        let opened = self.events(i).iter().filter_map(|e| match e {
            Event::Media(m) if m.user == user && m.packet.media_type == MediaType::Video as i32 => {
                Some(&m.packet)
            }
            _ => None,
        });
        opened.collect()
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
    let code = w.e2ee(0).safety_code();
    assert_eq!(w.e2ee(1).safety_code(), code);
    assert_eq!(w.e2ee(2).safety_code(), code);

    for n in 0..60 {
        w.send(0, &frame(n));
    }
    for i in [1, 2] {
        let got = w.opened_from(i, "alice");
        assert_eq!(got.len(), 60, "client {i}");
        assert!(got.iter().zip(0..).all(|(p, n)| p.data == test_pattern(n)));
        assert_eq!(w.refused(i), 0);
    }

    let mut plaintext_windows = HashSet::new();
    for n in 0..60 {
        let data = test_pattern(n);
        plaintext_windows.extend(data.windows(16).map(<[u8]>::to_vec));
    }
    assert!(!w.net.forwarded.is_empty());
    for packet in &w.net.forwarded {
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
    let epochs = (w.e2ee(0).epoch(), w.e2ee(1).epoch());
    w.leave(2);
    // The relay announces the leave after its reconnect grace.
    w.advance(Duration::from_secs(5));
    assert_eq!(w.e2ee(0).epoch(), epochs.0 + 1);
    assert_eq!(w.e2ee(1).epoch(), epochs.1 + 1);
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
    assert_eq!(w.refused(0) + w.refused(1), 0);
    let safety = w.e2ee(0).safety_code();
    assert_eq!(w.e2ee(1).safety_code(), safety);
}

#[test]
fn every_client_is_told_the_same_safety_code() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for i in 0..3 {
        w.start(i);
    }
    let told: Vec<SafetyCode> = (0..3)
        .map(|i| *w.codes(i).last().expect("a safety code was told"))
        .collect();
    assert_eq!(told[0], told[1]);
    assert_eq!(told[1], told[2]);
    assert_eq!(told[0], w.e2ee(0).safety_code());
    // Alone in the meeting, alice's code was another one.
    assert_ne!(w.codes(0)[0], told[0]);
}

#[test]
fn a_sender_is_asked_for_a_keyframe_when_a_newcomer_gets_its_key() {
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    assert_eq!(w.keyframe_requests(0), 0, "alone: nobody to start");
    w.start(1);
    assert!(w.keyframe_requests(0) >= 1);
    assert!(w.keyframe_requests(1) >= 1);
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
    assert_eq!(w.mismatches(0), vec![("mallory".to_owned(), false)]);
    assert!(w.session(0).mismatch_drops() >= 10);
    assert!(w.opened_from(1, "alice").is_empty());
    assert_eq!(w.mismatches(1), vec![("alice".to_owned(), true)]);
}

#[test]
fn a_private_key_held_outside_the_core_unwraps_there_and_decodes() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.externalise(1, false);
    for i in 0..3 {
        w.start(i);
    }
    assert!(w.e2ee(1).identity().is_external());
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
    let code = w.e2ee(0).safety_code();
    assert_eq!(w.e2ee(1).safety_code(), code);
    // A leave rotates: the new keys are unwrapped outside too.
    w.leave(2);
    w.advance(Duration::from_secs(5));
    for n in 30..60 {
        w.send(0, &frame(n));
    }
    assert_eq!(w.opened_from(1, "alice").len(), 60);
    assert_eq!(w.refused(1), 0);
}

#[test]
fn a_failed_outside_unwrap_is_counted_and_installs_nothing() {
    let mut w = World::new(&["alice", "bob"]);
    w.externalise(1, true);
    w.start(0);
    w.start(1);
    w.send(0, &frame(0));
    assert!(w.opened_from(1, "alice").is_empty());
    let stats = *w.e2ee(1).stats();
    assert!(stats.key_packets_refused >= 1, "{stats:?}");
    assert_eq!(stats.keys_installed, 0);
    assert!(stats.dropped.no_key >= 1);
}
