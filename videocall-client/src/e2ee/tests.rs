//! Tests of the E2EE state machine: participants exchange key packets in memory, as the relay
//! would deliver them (identity stamped).

use std::collections::HashSet;

use bytes::Bytes;
use prost::Message;
use videocall_types::{MediaPacket, MediaType, PacketType, PacketWrapper, packets};

use super::test_keys;
use super::*;

/// One participant: its state machine, user id and session.
pub(super) struct Member {
    pub(super) e2ee: E2ee,
    pub(super) user: String,
    pub(super) session: u64,
}

pub(super) fn member(n: usize, session: u64) -> Member {
    let user = format!("user-{n}");
    let mut e2ee = E2ee::with_identity(
        E2eeConfig::default(),
        user.clone(),
        test_keys::identity(n),
        test_keys::rng(n as u64),
    );
    e2ee.set_meeting("m1");
    Member {
        e2ee,
        user,
        session,
    }
}

/// Everything `m` wants to send, as the relay would stamp and deliver it.
pub(super) fn outbox(m: &mut Member) -> Vec<PacketWrapper> {
    std::iter::from_fn(|| m.e2ee.poll_transmit())
        .map(|k| PacketWrapper {
            packet_type: k.packet_type as i32,
            user_id: Bytes::copy_from_slice(m.user.as_bytes()),
            data: k.data,
            session_id: m.session,
        })
        .collect()
}

/// Delivers key packets among `members` until nobody has anything left to send; returns every
/// packet delivered (what a relay could record).
pub(super) fn exchange(members: &mut [&mut Member]) -> Vec<PacketWrapper> {
    let mut all = Vec::new();
    loop {
        let mut sent = Vec::new();
        for m in members.iter_mut() {
            sent.extend(outbox(m));
        }
        if sent.is_empty() {
            return all;
        }
        all.extend(sent.iter().cloned());
        for packet in &sent {
            for m in members.iter_mut() {
                if m.session != packet.session_id {
                    m.e2ee.handle_key_packet(packet).unwrap();
                }
            }
        }
    }
}

/// [`exchange`] where refusals are expected: returns how many packets were refused.
pub(super) fn exchange_tolerant(members: &mut [&mut Member]) -> usize {
    let mut refused = 0;
    loop {
        let mut sent = Vec::new();
        for m in members.iter_mut() {
            sent.extend(outbox(m));
        }
        if sent.is_empty() {
            return refused;
        }
        for packet in &sent {
            for m in members.iter_mut() {
                if m.session != packet.session_id && m.e2ee.handle_key_packet(packet).is_err() {
                    refused += 1;
                }
            }
        }
    }
}

/// `new` joins while `present` are in the meeting: each is told of the other, keys flow.
pub(super) fn join(new: &mut Member, present: &mut [&mut Member]) -> Vec<PacketWrapper> {
    new.e2ee.handle_joined(new.session);
    for p in present.iter_mut() {
        new.e2ee.handle_peer_joined(p.session, &p.user);
        p.e2ee.handle_peer_joined(new.session, &new.user);
    }
    let mut all: Vec<&mut Member> = present.iter_mut().map(|p| &mut **p).collect();
    all.push(new);
    exchange(&mut all)
}

/// `members` join one after the other.
pub(super) fn meeting(members: &mut [&mut Member]) {
    for i in 0..members.len() {
        let (present, rest) = members.split_at_mut(i);
        join(rest[0], present);
    }
}

pub(super) fn video(frame: u64, payload: &[u8]) -> MediaPacket {
    MediaPacket {
        media_type: MediaType::Video as i32,
        user_id: Bytes::from_static(b"user-0"),
        data: Bytes::copy_from_slice(payload),
        frame_type: if frame.is_multiple_of(30) {
            "key"
        } else {
            "delta"
        }
        .into(),
        timestamp: frame as f64 * 33.3,
        ..Default::default()
    }
}

/// An RSA_PUB_KEY for `session` and `user` of meeting "m1" with keys of the attacker's own
/// (`identity` and a fresh signing key): what a key-substituting relay sends.
pub(super) fn announce_as(identity: &Identity, session: u64, user: &str) -> Bytes {
    let signer = super::signing::Signer::random(&mut test_keys::rng(session ^ 0x5eed));
    super::key_packets::announce(&signer, identity, "m1", session, user)
}

pub(super) fn pair() -> (Member, Member) {
    let (mut a, mut b) = (member(0, 100), member(1, 200));
    meeting(&mut [&mut a, &mut b]);
    (a, b)
}

#[test]
fn a_sealed_frame_opens_to_the_original_packet() {
    let (mut a, mut b) = pair();
    assert!(b.e2ee.has_key_from(a.session));
    let media = video(0, b"hello frame");
    let envelope = a.e2ee.seal(&media).unwrap();
    assert_eq!(b.e2ee.open(a.session, &envelope).unwrap(), media);
    assert_eq!(b.e2ee.stats().opened, 1);
    assert_eq!(a.e2ee.stats().sealed, 1);
}

#[test]
fn the_envelope_keeps_routing_hints_in_clear_and_nothing_else() {
    let (mut a, _b) = pair();
    let envelope = a.e2ee.seal(&video(0, b"secret")).unwrap();
    let clear = MediaPacket::decode(envelope).unwrap();
    assert_eq!(clear.media_type, MediaType::Video as i32);
    assert_eq!(clear.frame_type, "key");
    assert!(clear.data.is_empty() && clear.user_id.is_empty() && clear.timestamp == 0.0);
    let sealed = clear.sealed.unwrap();
    assert_eq!(
        (sealed.stream_id, sealed.epoch, sealed.counter),
        (0, a.e2ee.epoch(), 0)
    );
}

#[test]
fn a_flipped_bit_in_the_ciphertext_fails_to_open_and_is_counted() {
    let (mut a, mut b) = pair();
    let mut envelope = a.e2ee.seal_envelope(&video(1, &[7; 100]), 0).unwrap();
    let mut ct = envelope.sealed.as_ref().unwrap().ciphertext.to_vec();
    for bit in [0, 9 * 8 + 3, ct.len() * 8 - 1] {
        ct[bit / 8] ^= 1 << (bit % 8);
        envelope.sealed.as_mut().unwrap().ciphertext = Bytes::from(ct.clone());
        assert_eq!(
            b.e2ee.open_envelope(a.session, &envelope),
            Err(E2eeError::Authentication)
        );
        ct[bit / 8] ^= 1 << (bit % 8);
    }
    assert_eq!(b.e2ee.stats().dropped.authentication, 3);
    assert_eq!(b.e2ee.stats().opened, 0);
}

#[test]
fn altered_routing_hints_fail_to_open() {
    let (mut a, mut b) = pair();
    let envelope = a.e2ee.seal_envelope(&video(1, &[7; 100]), 0).unwrap();
    let with_sealed = |f: &dyn Fn(&mut videocall_types::proto::SealedMedia)| {
        let mut e = envelope.clone();
        f(e.sealed.as_mut().unwrap());
        e
    };
    let tampered = [
        MediaPacket {
            media_type: MediaType::Audio as i32,
            ..envelope.clone()
        },
        MediaPacket {
            frame_type: "key".into(),
            ..envelope.clone()
        },
        with_sealed(&|s| s.stream_id = 1),
        with_sealed(&|s| s.counter = 1),
    ];
    for t in &tampered {
        assert_eq!(
            b.e2ee.open_envelope(a.session, t),
            Err(E2eeError::Authentication),
            "{t:?}"
        );
    }
    // An altered epoch selects no key at all.
    assert_eq!(
        b.e2ee
            .open_envelope(a.session, &with_sealed(&|s| s.epoch = 5)),
        Err(E2eeError::NoKey {
            from: a.session,
            epoch: 5
        })
    );
    // The untouched frame still opens: failures did not consume its counter.
    assert!(b.e2ee.open_envelope(a.session, &envelope).is_ok());
}

#[test]
fn a_replayed_frame_is_refused_and_counted() {
    let (mut a, mut b) = pair();
    let first = a.e2ee.seal(&video(0, b"one")).unwrap();
    let second = a.e2ee.seal(&video(1, b"two")).unwrap();
    assert!(b.e2ee.open(a.session, &second).is_ok());
    // Reordered but new: opens.
    assert!(b.e2ee.open(a.session, &first).is_ok());
    assert_eq!(b.e2ee.open(a.session, &first), Err(E2eeError::Replayed(0)));
    assert_eq!(b.e2ee.open(a.session, &second), Err(E2eeError::Replayed(1)));
    assert_eq!(b.e2ee.stats().dropped.replayed, 2);
}

#[test]
fn a_frame_older_than_the_replay_window_is_refused() {
    let (mut a, mut b) = pair();
    let old = a.e2ee.seal(&video(0, b"old")).unwrap();
    let mut last = Bytes::new();
    for i in 1..=1100 {
        last = a.e2ee.seal(&video(i, b"x")).unwrap();
    }
    assert!(b.e2ee.open(a.session, &last).is_ok());
    assert_eq!(b.e2ee.open(a.session, &old), Err(E2eeError::TooOld(0)));
}

#[test]
fn garbage_and_unsealed_packets_are_errors_not_panics() {
    let (mut a, mut b) = pair();
    assert!(matches!(
        b.e2ee.open(a.session, &[0xff, 0xff, 0xff]),
        Err(E2eeError::Malformed(_))
    ));
    let plain = packets::encode(&video(0, b"plain"));
    assert_eq!(b.e2ee.open(a.session, &plain), Err(E2eeError::NotSealed));
    let envelope = a.e2ee.seal(&video(0, b"x")).unwrap();
    assert_eq!(
        b.e2ee.open(999, &envelope),
        Err(E2eeError::UnknownSender(999))
    );
    let garbage_key = PacketWrapper {
        packet_type: PacketType::AesKey as i32,
        data: Bytes::from_static(&[0xff; 8]),
        session_id: a.session,
        ..Default::default()
    };
    assert!(b.e2ee.handle_key_packet(&garbage_key).is_err());
    // The original's AesPacket (1: key, 2: iv) decodes as version 0.
    let original = PacketWrapper {
        data: packets::encode(&videocall_types::AesPacket {
            key: Bytes::from_static(&[1; 16]),
            iv: Bytes::from_static(&[2; 16]),
        }),
        ..garbage_key
    };
    assert_eq!(
        b.e2ee.handle_key_packet(&original),
        Err(E2eeError::UnsupportedVersion(0))
    );
    assert_eq!(b.e2ee.stats().key_packets_refused, 2);
    assert_eq!(b.e2ee.stats().dropped.total(), 3);
}

#[test]
fn nonces_never_repeat_across_a_million_frames() {
    let (mut a, mut b) = pair();
    let media = MediaPacket {
        media_type: MediaType::Audio as i32,
        ..Default::default()
    };
    let mut seen = HashSet::with_capacity(1_000_000);
    let mut last = None;
    for _ in 0..1_000_000 {
        let envelope = a.e2ee.seal_envelope(&media, 0).unwrap();
        let sealed = envelope.sealed.unwrap();
        assert_eq!(sealed.epoch, a.e2ee.epoch());
        // The nonce is salt ∥ counter under one key: distinct counters are distinct nonces.
        assert!(
            last < Some(sealed.counter),
            "counter must strictly increase"
        );
        last = Some(sealed.counter);
        assert!(seen.insert(sealed.counter));
    }
    assert_eq!(seen.len(), 1_000_000);
    // The last frames still open (the window moved along with them).
    let envelope = a.e2ee.seal(&media).unwrap();
    assert!(b.e2ee.open(a.session, &envelope).is_ok());
}

#[test]
fn three_members_one_leaves_and_cannot_open_what_follows() {
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    meeting(&mut [&mut a, &mut b, &mut c]);
    for (x, y) in [(0, 1), (0, 2), (1, 2)] {
        let ms = [&a, &b, &c];
        assert!(ms[x].e2ee.has_key_from(ms[y].session));
        assert!(ms[y].e2ee.has_key_from(ms[x].session));
    }
    // Frames in flight under the current epoch when c leaves.
    let before = a.e2ee.epoch();
    let in_flight: Vec<Bytes> = (0..3)
        .map(|i| a.e2ee.seal(&video(i, b"before")).unwrap())
        .collect();
    for f in &in_flight[..2] {
        assert!(c.e2ee.open(a.session, f).is_ok());
    }

    // c leaves: a and b rotate and re-key each other; c hears nothing more.
    a.e2ee.handle_peer_left(c.session);
    b.e2ee.handle_peer_left(c.session);
    assert_eq!(a.e2ee.epoch(), before + 1);
    let rekeys: Vec<PacketWrapper> = outbox(&mut a).into_iter().chain(outbox(&mut b)).collect();
    assert!(!rekeys.is_empty());
    for k in &rekeys {
        let wrapped = SenderKeyPacketView::of(k);
        assert!(!wrapped.contains(&c.session), "nobody wraps for the leaver");
        // Even if the relay hands the re-key to c, there is nothing in it for c.
        c.e2ee.handle_key_packet(k).unwrap();
    }
    for k in &rekeys {
        let receiver = if k.session_id == a.session {
            &mut b
        } else {
            &mut a
        };
        receiver.e2ee.handle_key_packet(k).unwrap();
    }

    // No gap for b: the last frame of the old epoch still opens, then the new one does.
    assert!(b.e2ee.open(a.session, &in_flight[0]).is_ok());
    assert!(b.e2ee.open(a.session, &in_flight[2]).is_ok());
    for i in 3..100 {
        let from_a = a.e2ee.seal(&video(i, b"after a")).unwrap();
        let from_b = b.e2ee.seal(&video(i, b"after b")).unwrap();
        assert!(b.e2ee.open(a.session, &from_a).is_ok(), "frame {i} of a");
        assert!(a.e2ee.open(b.session, &from_b).is_ok(), "frame {i} of b");
        // c still holds the old keys of a and b and cannot open anything sealed since.
        assert_eq!(
            c.e2ee.open(a.session, &from_a),
            Err(E2eeError::NoKey {
                from: a.session,
                epoch: before + 1
            })
        );
        assert!(c.e2ee.open(b.session, &from_b).is_err());
    }
    assert_eq!(b.e2ee.stats().dropped.total(), 0);
    assert_eq!(a.e2ee.stats().dropped.total(), 0);
    // c cannot open the new frame with a's old key either, even forcing the epoch.
    let after = a.e2ee.seal_envelope(&video(200, b"after"), 0).unwrap();
    let mut forced = after.clone();
    forced.sealed.as_mut().unwrap().epoch = before;
    assert_eq!(
        c.e2ee.open_envelope(a.session, &forced),
        Err(E2eeError::Authentication)
    );
}

#[test]
fn the_previous_epoch_is_forgotten_after_the_grace() {
    let (mut a, mut b) = pair();
    let old_epoch = a.e2ee.epoch();
    let old = a.e2ee.seal(&video(0, b"old")).unwrap();
    let mut c = member(2, 300);
    c.e2ee.handle_joined(c.session);
    a.e2ee.handle_peer_joined(c.session, &c.user);
    a.e2ee.handle_peer_left(c.session);
    for k in outbox(&mut a) {
        b.e2ee.handle_key_packet(&k).unwrap();
    }
    let grace = E2eeConfig::default().previous_epoch_grace_frames;
    for i in 0..grace {
        let f = a.e2ee.seal(&video(i, b"new")).unwrap();
        b.e2ee.open(a.session, &f).unwrap();
    }
    assert_eq!(
        b.e2ee.open(a.session, &old),
        Err(E2eeError::StaleEpoch {
            from: a.session,
            epoch: old_epoch
        })
    );
}

#[test]
fn a_new_joiner_gets_every_senders_current_key() {
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    meeting(&mut [&mut a, &mut b]);
    // Rotate before c arrives (d joins and leaves), so "current" is not the first key.
    let mut d = member(3, 400);
    join(&mut d, &mut [&mut a, &mut b]);
    a.e2ee.handle_peer_left(d.session);
    b.e2ee.handle_peer_left(d.session);
    exchange(&mut [&mut a, &mut b]);
    let epochs = (a.e2ee.epoch(), b.e2ee.epoch());
    join(&mut c, &mut [&mut a, &mut b]);
    assert!(c.e2ee.has_key_from(a.session) && c.e2ee.has_key_from(b.session));
    // Each rotated once more for c's join.
    assert_eq!(
        (a.e2ee.epoch(), b.e2ee.epoch()),
        (epochs.0 + 1, epochs.1 + 1)
    );
    for sender in [&mut a, &mut b] {
        let f = sender.e2ee.seal(&video(0, b"to c")).unwrap();
        assert!(c.e2ee.open(sender.session, &f).is_ok());
    }
}

#[test]
fn safety_codes_agree_without_substitution_and_differ_with_it() {
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    meeting(&mut [&mut a, &mut b, &mut c]);
    let code = a.e2ee.safety_code();
    assert_eq!(b.e2ee.safety_code(), code);
    assert_eq!(c.e2ee.safety_code(), code);

    // A relay that substitutes its own key for c's when talking to b.
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    for m in [&mut a, &mut b, &mut c] {
        m.e2ee.handle_joined(m.session);
    }
    let mitm = test_keys::identity(3);
    let users = [(100, "user-0"), (200, "user-1"), (300, "user-2")];
    for m in [&mut a, &mut b, &mut c] {
        for (s, u) in users {
            m.e2ee.handle_peer_joined(s, u);
        }
    }
    let mut announced = Vec::new();
    for m in [&mut a, &mut b, &mut c] {
        announced.extend(outbox(m));
    }
    for packet in announced
        .iter()
        .filter(|p| p.packet_type == PacketType::RsaPubKey as i32)
    {
        for m in [&mut a, &mut b, &mut c] {
            if m.session == packet.session_id {
                continue;
            }
            let mut delivered = packet.clone();
            if m.session == 200 && packet.session_id == 300 {
                delivered.data = announce_as(&mitm, 300, "user-2");
            }
            m.e2ee.handle_key_packet(&delivered).unwrap();
        }
    }
    assert_eq!(a.e2ee.safety_code(), c.e2ee.safety_code());
    assert_ne!(b.e2ee.safety_code(), a.e2ee.safety_code());
}

#[test]
fn a_second_different_public_key_for_a_session_is_refused() {
    let (a, mut b) = pair();
    let other = PacketWrapper {
        packet_type: PacketType::RsaPubKey as i32,
        user_id: Bytes::copy_from_slice(a.user.as_bytes()),
        data: announce_as(&test_keys::identity(3), a.session, &a.user),
        session_id: a.session,
    };
    let code = b.e2ee.safety_code();
    assert_eq!(
        b.e2ee.handle_key_packet(&other),
        Err(E2eeError::KeyChanged(a.session))
    );
    assert_eq!(b.e2ee.safety_code(), code);
}

#[test]
fn the_relay_sees_no_plaintext_window_of_a_test_pattern() {
    let (mut a, mut b) = pair();
    // A test-pattern-like frame: colour bars, a ramp, then text, 4 KB.
    let mut pattern = Vec::new();
    for bar in [0xeb_u8, 0xd2, 0xaa, 0x91, 0x6a, 0x51, 0x29, 0x10] {
        pattern.extend(std::iter::repeat_n(bar, 256));
    }
    pattern.extend((0..1024).map(|i| (i % 251) as u8));
    pattern.extend(b"videocall test pattern frame 0000 ".repeat(30));
    let mut wire = Vec::new();
    for i in 0..30 {
        let media = video(i, &pattern);
        let envelope = a.e2ee.seal(&media).unwrap();
        // What the relay forwards: the wrapper with the envelope as its data.
        wire.push(packets::encode(&PacketWrapper {
            packet_type: PacketType::Media as i32,
            user_id: Bytes::copy_from_slice(a.user.as_bytes()),
            data: envelope.clone(),
            session_id: a.session,
        }));
        assert_eq!(b.e2ee.open(a.session, &envelope).unwrap().data, pattern);
    }
    let windows: HashSet<&[u8]> = pattern.windows(16).collect();
    for packet in &wire {
        assert!(
            !packet.windows(16).any(|w| windows.contains(w)),
            "a 16-byte plaintext window appears on the wire"
        );
    }
}

/// Recipients of an AES_KEY packet.
struct SenderKeyPacketView;

impl SenderKeyPacketView {
    fn of(packet: &PacketWrapper) -> Vec<u64> {
        videocall_types::proto::SenderKeyPacket::decode(packet.data.clone())
            .map(|p| p.keys.iter().map(|k| k.recipient_session).collect())
            .unwrap_or_default()
    }
}

#[test]
fn a_participant_with_the_system_rng_seals_for_a_seeded_one() {
    let mut a = E2ee::new(E2eeConfig::default(), "os", OsRng).unwrap();
    a.set_meeting("m1");
    let mut b = member(1, 200);
    a.handle_joined(100);
    b.e2ee.handle_joined(200);
    a.handle_peer_joined(200, &b.user);
    b.e2ee.handle_peer_joined(100, "os");
    for _ in 0..2 {
        for k in std::iter::from_fn(|| a.poll_transmit()).collect::<Vec<_>>() {
            let w = PacketWrapper {
                packet_type: k.packet_type as i32,
                user_id: Bytes::from_static(b"os"),
                data: k.data,
                session_id: 100,
            };
            b.e2ee.handle_key_packet(&w).unwrap();
        }
        for w in outbox(&mut b) {
            a.handle_key_packet(&w).unwrap();
        }
    }
    let envelope = a.seal(&video(0, b"from the os rng")).unwrap();
    assert_eq!(
        b.e2ee.open(100, &envelope).unwrap().data,
        &b"from the os rng"[..]
    );
    assert_eq!(a.safety_code(), b.e2ee.safety_code());
}

#[test]
fn mutated_envelopes_and_key_packets_are_refused_without_panicking() {
    use rand_core::RngCore;
    let (mut a, mut b) = pair();
    let mut rng = test_keys::rng(77);
    let envelope = a.e2ee.seal(&video(0, &[9; 64])).unwrap().to_vec();
    let mut c = member(2, 300);
    c.e2ee.handle_joined(c.session);
    c.e2ee.handle_peer_joined(b.session, &b.user);
    b.e2ee.handle_peer_joined(c.session, &c.user);
    let key_packets = outbox(&mut c);
    for round in 0..5_000 {
        let mut bytes = if round % 2 == 0 {
            envelope.clone()
        } else {
            key_packets[round % key_packets.len()].data.to_vec()
        };
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = rng.next_u32() as usize % bytes.len();
            bytes[at] = rng.next_u32() as u8;
        }
        bytes.truncate(bytes.len() - rng.next_u32() as usize % 3);
        if round % 2 == 0 {
            // Only a mutation that changed nothing that counts (same bytes, or a protobuf
            // encoding of the same fields) may open, and then to the genuine frame.
            if let Ok(opened) = b.e2ee.open(a.session, &bytes) {
                assert_eq!(opened, video(0, &[9; 64]));
            }
        } else {
            for packet_type in [PacketType::RsaPubKey, PacketType::AesKey] {
                let _ = b.e2ee.handle_key_packet(&PacketWrapper {
                    packet_type: packet_type as i32,
                    user_id: Bytes::from_static(b"user-2"),
                    data: Bytes::from(bytes.clone()),
                    session_id: c.session,
                });
            }
        }
    }
    // Counter 0 opened at most once, whatever came in.
    let _ = b.e2ee.open(a.session, &envelope);
    assert_eq!(b.e2ee.stats().opened, 1);
}

#[test]
fn a_peer_cannot_make_us_unwrap_more_keys_than_leaves_justify() {
    let (mut a, mut b) = pair();
    let installed = b.e2ee.stats().keys_installed;
    // a rotates over and over with nobody leaving (as a hostile client could), each time with a
    // new RSA wrap: b unwraps a few for slack, then refuses without decrypting.
    let mut refused = 0;
    for _ in 0..10 {
        a.e2ee.forget_channels_for_test();
        a.e2ee.rotate_for_test();
        for k in outbox(&mut a) {
            if b.e2ee.handle_key_packet(&k) == Err(E2eeError::TooManyKeys(a.session)) {
                refused += 1;
            }
        }
    }
    let unwrapped = b.e2ee.stats().keys_installed - installed;
    assert_eq!(unwrapped + refused, 10);
    assert!(unwrapped <= 4, "{unwrapped} unwraps");
    // A join and a leave in the meeting justify more: b, whose channel key from a is one a
    // since replaced in a refused wrap, asks for and gets a new RSA wrap.
    let mut c = member(2, 300);
    c.e2ee.handle_joined(c.session);
    for p in [&mut a, &mut b] {
        c.e2ee.handle_peer_joined(p.session, &p.user);
        p.e2ee.handle_peer_joined(c.session, &c.user);
    }
    exchange_tolerant(&mut [&mut a, &mut b, &mut c]);
    a.e2ee.handle_peer_left(c.session);
    b.e2ee.handle_peer_left(c.session);
    let refusals = exchange_tolerant(&mut [&mut a, &mut b]);
    assert!(refusals <= 1, "{refusals} refusals");
    let f = a.e2ee.seal(&video(0, b"after the leave")).unwrap();
    assert!(b.e2ee.open(a.session, &f).is_ok());
}

#[test]
fn rotations_after_the_first_wrap_travel_under_the_channel_key_without_rsa() {
    let (mut a, mut b) = pair();
    let installed = b.e2ee.stats().keys_installed;
    // Rotations cost b no RSA decryption (channel wraps are not limited by the RSA credit)...
    for round in 0..10u64 {
        a.e2ee.rotate_for_test();
        let packets = outbox(&mut a);
        assert_eq!(packets.len(), 1);
        let data =
            videocall_types::proto::SenderKeyPacket::decode(packets[0].data.clone()).unwrap();
        assert_eq!(data.version, crate::e2ee::SENDER_KEY_CHANNEL_VERSION);
        for k in packets {
            b.e2ee.handle_key_packet(&k).unwrap();
        }
        let f = a.e2ee.seal(&video(round, b"x")).unwrap();
        assert!(b.e2ee.open(a.session, &f).is_ok(), "round {round}");
    }
    assert_eq!(b.e2ee.stats().keys_installed - installed, 10);
    assert_eq!(b.e2ee.stats().channel_unwraps, 10);
    // ... and one for another recipient, delivered to b, installs nothing.
    let mut c = member(2, 300);
    join(&mut c, &mut [&mut a, &mut b]);
    a.e2ee.rotate_for_test();
    let for_c: Vec<_> = outbox(&mut a)
        .into_iter()
        .filter(|k| SenderKeyPacketView::of(k) == [c.session])
        .collect();
    assert_eq!(for_c.len(), 1);
    let before = b.e2ee.stats().keys_installed;
    let _ = b.e2ee.handle_key_packet(&for_c[0]);
    assert_eq!(b.e2ee.stats().keys_installed, before);
}

#[test]
fn a_channel_wrap_without_its_channel_key_asks_for_a_new_rsa_wrap() {
    let (mut a, mut b) = pair();
    // b forgets a's channel key as if the RSA wrap that carried it had been lost.
    b.e2ee.forget_received_channels_for_test();
    a.e2ee.rotate_for_test();
    for k in outbox(&mut a) {
        assert_eq!(
            b.e2ee.handle_key_packet(&k),
            Err(E2eeError::NoChannel(a.session))
        );
    }
    // b asks; a answers with an RSA wrap carrying a new channel key; b opens a's frames again,
    // and the next rotation travels under the new channel key.
    exchange(&mut [&mut a, &mut b]);
    let f = a.e2ee.seal(&video(0, b"repaired")).unwrap();
    assert!(b.e2ee.open(a.session, &f).is_ok());
    assert_eq!(b.e2ee.stats().key_requests_sent, 1);
    a.e2ee.rotate_for_test();
    exchange(&mut [&mut a, &mut b]);
    let f = a.e2ee.seal(&video(1, b"again")).unwrap();
    assert!(b.e2ee.open(a.session, &f).is_ok());
    assert_eq!(b.e2ee.stats().channel_unwraps, 1);
}

#[test]
fn a_join_ratchets_keys_forward_with_one_wrap_for_the_joiner_only() {
    let (mut a, mut b) = pair();
    let before_join = a.e2ee.seal(&video(0, b"before c joined")).unwrap();
    assert!(b.e2ee.open(a.session, &before_join).is_ok());
    let (epoch, ratchets) = (a.e2ee.epoch(), a.e2ee.stats().ratchets);

    // c joins: a's key moves one epoch forward; a sends a wrap to c and to nobody else.
    let mut c = member(2, 300);
    c.e2ee.handle_joined(c.session);
    for p in [&mut a, &mut b] {
        c.e2ee.handle_peer_joined(p.session, &p.user);
        p.e2ee.handle_peer_joined(c.session, &c.user);
    }
    let packets = exchange(&mut [&mut a, &mut b, &mut c]);
    assert_eq!(a.e2ee.epoch(), epoch + 1);
    assert_eq!(a.e2ee.stats().ratchets, ratchets + 1);
    let wrapped_by_a: Vec<Vec<u64>> = packets
        .iter()
        .filter(|p| p.session_id == a.session && p.packet_type == PacketType::AesKey as i32)
        .map(SenderKeyPacketView::of)
        .collect();
    assert_eq!(
        wrapped_by_a,
        vec![vec![c.session]],
        "one wrap, for the joiner"
    );

    // b derives a's new key from the one it holds; c opens the new epoch...
    let after_join = a.e2ee.seal(&video(1, b"after c joined")).unwrap();
    let followed = b.e2ee.stats().ratchets_followed;
    assert!(b.e2ee.open(a.session, &after_join).is_ok());
    assert_eq!(b.e2ee.stats().ratchets_followed, followed + 1);
    assert!(c.e2ee.open(a.session, &after_join).is_ok());
    // ... and cannot open what a sealed before it joined (the ratchet is one-way).
    assert!(c.e2ee.open(a.session, &before_join).is_err());
}

#[test]
fn the_ratchet_is_deterministic_bounded_and_never_goes_back() {
    use super::sender_key::{KeyMaterial, RATCHET_MAX_STEPS};
    let base = KeyMaterial::random(&mut test_keys::rng(9), 10);
    let one = base.ratchet(11).unwrap();
    let two = base.ratchet(12).unwrap();
    assert_eq!(one.epoch, 11);
    assert_ne!(one.key.as_ref(), base.key.as_ref());
    assert_eq!(one.ratchet(12).unwrap().key.as_ref(), two.key.as_ref());
    assert_eq!(one.ratchet(12).unwrap().salt, two.salt);
    assert!(base.ratchet(10).is_none());
    assert!(base.ratchet(9).is_none());
    assert!(base.ratchet(10 + RATCHET_MAX_STEPS).is_some());
    assert!(base.ratchet(11 + RATCHET_MAX_STEPS).is_none());
    assert!(base.ratchet(u32::MAX).is_none());
}
