//! What a relay (or anyone publishing on the bus) can try against the E2EE core, issue #16:
//! each test plays the attacker with the bytes a relay holds and asserts the attack fails.

use bytes::Bytes;
use prost::Message;
use videocall_types::proto::{SealedMedia, SenderKeyPacket, WrappedSenderKey};
use videocall_types::{MediaPacket, PacketType, PacketWrapper, packets};

use super::sender_key::{FrameHeader, KeyMaterial, SendingKey};
use super::test_keys;
use super::tests::{Member, exchange, join, member, outbox, pair, video};

/// The sessions an AES_KEY packet carries a wrap for.
fn recipients(packet: &PacketWrapper) -> Vec<u64> {
    if packet.packet_type != PacketType::AesKey as i32 {
        return Vec::new();
    }
    SenderKeyPacket::decode(packet.data.clone())
        .expect("our own AES_KEY decodes")
        .keys
        .iter()
        .map(|k| k.recipient_session)
        .collect()
}

/// A frame sealed under `key`, as the attacker would seal media "from" someone.
fn forge_frame(key: KeyMaterial, media: &MediaPacket) -> Bytes {
    let epoch = key.epoch;
    let mut sending = SendingKey::new(key);
    let counter = sending
        .next_counter()
        .expect("a fresh key has counters left");
    let header = FrameHeader {
        packet_type: PacketType::Media as i32,
        media_type: media.media_type,
        frame_type: &media.frame_type,
        stream_id: 0,
        epoch,
        counter,
    };
    let inner = MediaPacket {
        sealed: None,
        ..media.clone()
    };
    let ciphertext = sending
        .seal(&header, &inner.encode_to_vec())
        .expect("sealing under a fresh key succeeds");
    packets::encode(&MediaPacket {
        media_type: media.media_type,
        frame_type: media.frame_type.clone(),
        sealed: Some(SealedMedia {
            stream_id: 0,
            epoch,
            counter,
            ciphertext: ciphertext.into(),
        }),
        ..Default::default()
    })
}

/// Delivers `packets` to `m` as a relay would, ignoring refusals (the attacker's packets are
/// expected to be refused).
fn deliver(m: &mut Member, packets: &[PacketWrapper]) {
    for p in packets {
        let _ = m.e2ee.handle_key_packet(p);
    }
}

#[test]
fn a_ghost_public_key_from_outside_the_roster_gets_no_wrap_and_changes_no_code() {
    let (mut a, mut b) = pair();
    let code = a.e2ee.safety_code();
    // A session the relay never announced in the roster publishes a public key to everyone.
    let mut ghost = member(2, 999);
    ghost.e2ee.handle_joined(ghost.session);
    let announce = outbox(&mut ghost);
    assert!(!announce.is_empty());
    deliver(&mut a, &announce);
    deliver(&mut b, &announce);
    let mut sent = outbox(&mut a);
    // And at every rotation.
    a.e2ee.rotate_for_test();
    sent.extend(outbox(&mut a));
    assert!(sent.iter().any(|p| recipients(p).contains(&b.session)));
    assert!(
        sent.iter().all(|p| !recipients(p).contains(&ghost.session)),
        "a sender key was wrapped for a session outside the roster"
    );
    assert_eq!(a.e2ee.safety_code(), code);
    assert_eq!(b.e2ee.safety_code(), code);
    assert!(
        a.e2ee
            .key_holders()
            .iter()
            .all(|h| h.session != ghost.session)
    );
}

#[test]
fn a_forged_sender_key_with_the_last_epoch_is_not_installed() {
    let (mut a, mut b) = pair();
    // The relay knows Bob's public key: it wraps a key of its own for him, "from Alice".
    let mut rng = test_keys::rng(77);
    let forged = KeyMaterial::random(&mut rng, u32::MAX);
    let wrapped = b
        .e2ee
        .identity()
        .public_key()
        .wrap(&mut rng, &forged.to_secret())
        .unwrap();
    let packet = SenderKeyPacket {
        version: super::SENDER_KEY_VERSION,
        epoch: u32::MAX,
        keys: vec![WrappedSenderKey {
            recipient_session: b.session,
            wrapped: wrapped.into(),
        }],
        ..Default::default()
    };
    let wrapper = PacketWrapper {
        packet_type: PacketType::AesKey as i32,
        user_id: Bytes::copy_from_slice(a.user.as_bytes()),
        data: packets::encode(&packet),
        session_id: a.session,
    };
    let refused = b.e2ee.stats().key_packets_refused;
    assert!(b.e2ee.handle_key_packet(&wrapper).is_err());
    assert_eq!(b.e2ee.stats().key_packets_refused, refused + 1);
    let frame = forge_frame(
        KeyMaterial::from_secret(&forged.to_secret()).unwrap(),
        &video(0, b"forged"),
    );
    assert!(b.e2ee.open(a.session, &frame).is_err());
    // Alice's real keys still count: her next rotation is installed and her frames open.
    a.e2ee.rotate_for_test();
    deliver(&mut b, &outbox(&mut a));
    let real = a.e2ee.seal(&video(1, b"real")).unwrap();
    assert_eq!(
        b.e2ee.open(a.session, &real).unwrap().data,
        Bytes::from_static(b"real")
    );
}

#[test]
fn recorded_frames_do_not_open_for_a_joiner() {
    let (mut a, mut b) = pair();
    let recorded: Vec<Bytes> = (0..3)
        .map(|f| a.e2ee.seal(&video(f, b"before you came")).unwrap())
        .collect();
    for r in &recorded {
        b.e2ee.open(a.session, r).unwrap();
    }
    let mut c = member(2, 300);
    join(&mut c, &mut [&mut a, &mut b]);
    assert!(c.e2ee.has_key_from(a.session));
    for r in &recorded {
        assert!(
            c.e2ee.open(a.session, r).is_err(),
            "a frame sealed before the join opened for the joiner"
        );
    }
    // What Alice seals now opens for both.
    let now = a.e2ee.seal(&video(3, b"after")).unwrap();
    assert!(b.e2ee.open(a.session, &now).is_ok());
    assert!(c.e2ee.open(a.session, &now).is_ok());
}

#[test]
fn recorded_frames_do_not_open_again_for_a_rejoiner_given_the_same_session() {
    let mut a = member(0, 100);
    let mut b = member(1, 200);
    join(&mut a, &mut []);
    let keys = join(&mut b, &mut [&mut a]);
    let recorded: Vec<Bytes> = (0..3)
        .map(|f| a.e2ee.seal(&video(f, b"seen once")).unwrap())
        .collect();
    for r in &recorded {
        b.e2ee.open(a.session, r).unwrap();
    }
    // Bob reconnects; the relay gives him the same session, tells Alice nothing and replays
    // Alice's recorded key packets, then her recorded frames.
    b.e2ee.handle_joined(b.session);
    b.e2ee.handle_peer_joined(a.session, &a.user);
    let from_alice: Vec<PacketWrapper> = keys
        .into_iter()
        .filter(|p| p.session_id == a.session)
        .collect();
    deliver(&mut b, &from_alice);
    for r in &recorded {
        assert!(
            b.e2ee.open(a.session, r).is_err(),
            "a replayed frame opened a second time"
        );
    }
    let _ = exchange(&mut [&mut a, &mut b]);
}

#[test]
fn the_safety_code_shows_at_least_60_digits() {
    let (a, b) = pair();
    let text = a.e2ee.safety_code().to_string();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    assert!(digits >= 60, "{digits} digits: {text}");
    assert_eq!(text, b.e2ee.safety_code().to_string());
}

#[test]
fn key_packets_signed_for_another_meeting_are_refused_and_counted() {
    // Alice of meeting "m2" (a relay replaying her packets into "m1", or a bug) is in Bob's
    // roster under the same session and user.
    let mut a = member(0, 100);
    a.e2ee.set_meeting("m2");
    let mut b = member(1, 200);
    a.e2ee.handle_joined(a.session);
    b.e2ee.handle_joined(b.session);
    a.e2ee.handle_peer_joined(b.session, &b.user);
    b.e2ee.handle_peer_joined(a.session, &a.user);
    let from_a = outbox(&mut a);
    assert!(!from_a.is_empty());
    for p in &from_a {
        assert!(matches!(
            b.e2ee.handle_key_packet(p),
            Err(super::E2eeError::BadSignature(_))
        ));
    }
    assert_eq!(
        b.e2ee.stats().unauthenticated_key_packets,
        from_a.len() as u64
    );
    assert_eq!(b.e2ee.key_holders().len(), 1, "only Bob himself");
}

#[test]
fn an_unsigned_public_key_is_refused() {
    let (a, mut b) = pair();
    let code = b.e2ee.safety_code();
    let unsigned = PacketWrapper {
        packet_type: PacketType::RsaPubKey as i32,
        user_id: Bytes::copy_from_slice(a.user.as_bytes()),
        data: packets::encode(&videocall_types::RsaPacket {
            public_key_der: Bytes::copy_from_slice(test_keys::identity(3).public_key_der()),
            ..Default::default()
        }),
        session_id: 555,
    };
    b.e2ee.handle_peer_joined(555, &a.user);
    assert!(matches!(
        b.e2ee.handle_key_packet(&unsigned),
        Err(super::E2eeError::BadSignature(_))
    ));
    assert!(b.e2ee.key_holders().iter().all(|h| h.session != 555));
    // The join made Bob rotate, but the code only moves with key holders.
    assert_eq!(b.e2ee.safety_code(), code);
}

#[test]
fn a_replayed_signed_sender_key_is_refused_as_stale_and_counted() {
    let mut a = member(0, 100);
    let mut b = member(1, 200);
    join(&mut a, &mut []);
    let recorded = join(&mut b, &mut [&mut a]);
    let old_key: Vec<PacketWrapper> = recorded
        .into_iter()
        .filter(|p| p.session_id == a.session && p.packet_type == PacketType::AesKey as i32)
        .collect();
    assert_eq!(old_key.len(), 1);
    a.e2ee.rotate_for_test();
    deliver(&mut b, &outbox(&mut a));
    assert_eq!(
        b.e2ee.handle_key_packet(&old_key[0]),
        Err(super::E2eeError::StaleKey {
            from: a.session,
            epoch: a.e2ee.epoch() - 1
        })
    );
    assert_eq!(b.e2ee.stats().stale_key_packets, 1);
    // Alice's current frames still open.
    let f = a.e2ee.seal(&video(0, b"current")).unwrap();
    assert!(b.e2ee.open(a.session, &f).is_ok());
}

#[test]
fn a_sender_key_wraps_for_one_recipient_per_packet() {
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    join(&mut a, &mut []);
    join(&mut b, &mut [&mut a]);
    let packets = join(&mut c, &mut [&mut a, &mut b]);
    let keys: Vec<&PacketWrapper> = packets
        .iter()
        .filter(|p| p.packet_type == PacketType::AesKey as i32)
        .collect();
    assert!(!keys.is_empty());
    for k in keys {
        assert_eq!(
            recipients(k).len(),
            1,
            "one wrap, so the relay can address it"
        );
    }
}

#[test]
fn a_receiver_that_missed_its_key_asks_for_it_and_is_repaired() {
    let (mut a, mut b, mut c) = (member(0, 100), member(1, 200), member(2, 300));
    join(&mut a, &mut []);
    join(&mut b, &mut [&mut a]);
    join(&mut c, &mut [&mut a, &mut b]);
    // c leaves; Alice's re-key for Bob is lost on the way.
    a.e2ee.handle_peer_left(c.session);
    b.e2ee.handle_peer_left(c.session);
    let lost = outbox(&mut a);
    assert!(lost.iter().any(|p| recipients(p) == [b.session]));
    let _ = exchange(&mut [&mut a, &mut b]);
    // A few of Alice's frames fail (her wrap normally overtakes them; here it never comes)...
    for n in 0..u64::from(super::machine::KEY_ASK_FRAMES) {
        assert!(outbox(&mut b).is_empty(), "not asked yet after {n} frames");
        let frame = a.e2ee.seal(&video(n, b"after the leave")).unwrap();
        assert!(matches!(
            b.e2ee.open(a.session, &frame),
            Err(super::E2eeError::NoKey { .. })
        ));
    }
    // ... so Bob asks Alice (only her), she answers him alone.
    let asks = outbox(&mut b);
    assert_eq!(asks.len(), 1);
    assert_eq!(asks[0].packet_type, PacketType::KeyRequest as i32);
    deliver(&mut a, &asks);
    let answer = outbox(&mut a);
    assert_eq!(answer.len(), 1);
    assert_eq!(recipients(&answer[0]), [b.session]);
    deliver(&mut b, &answer);
    let next = a.e2ee.seal(&video(9, b"repaired")).unwrap();
    assert!(b.e2ee.open(a.session, &next).is_ok());
    assert_eq!(b.e2ee.stats().key_requests_sent, 1);
    assert_eq!(a.e2ee.stats().key_requests_answered, 1);
    // A second request for the same epoch is not answered again.
    deliver(&mut a, &asks);
    assert!(outbox(&mut a).is_empty());
}

#[test]
fn a_key_request_from_outside_the_roster_gets_nothing() {
    let (mut a, _b) = pair();
    let ask = PacketWrapper {
        packet_type: PacketType::KeyRequest as i32,
        user_id: Bytes::from_static(b"ghost"),
        data: super::key_packets::key_request(a.session, a.e2ee.epoch()),
        session_id: 999,
    };
    assert_eq!(
        a.e2ee.handle_key_packet(&ask),
        Err(super::E2eeError::OutsideRoster(999))
    );
    assert!(outbox(&mut a).is_empty());
}
