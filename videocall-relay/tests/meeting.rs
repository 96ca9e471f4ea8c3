//! Whole meetings driven through the sans-IO core: many sessions, several nodes, a virtual clock.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use harness::{Cluster, media, wrapper};
use prost::Message;
use videocall_relay::{CloseReason, DropReason, InboundError, JoinError, RelayConfig};
use videocall_types::{
    MediaType, MeetingEventType, MeetingId, PacketType, SYSTEM_USER_ID, SessionId,
    SubscriptionPacket, UserId,
};

fn audio(tag: &str) -> Bytes {
    media(MediaType::Audio, "key", tag.as_bytes().to_vec())
}

#[test]
fn every_packet_reaches_the_49_others_exactly_once_and_never_its_sender_or_another_meeting() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let ids: Vec<SessionId> = (0..50)
        .map(|i| c.join(0, &format!("user{i}"), "m1"))
        .collect();
    let outsiders: Vec<SessionId> = (0..3)
        .map(|i| c.join(0, &format!("other{i}"), "m2"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        c.send(*id, audio(&format!("from-{i}"))).unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let got = c.media(*id);
        assert_eq!(got.len(), 49, "session {i} got {} packets", got.len());
        let mut seen = HashMap::new();
        for (received, media) in got {
            let tag = String::from_utf8(media.data.to_vec()).unwrap();
            let sender: usize = tag.trim_start_matches("from-").parse().unwrap();
            assert_ne!(sender, i, "a session received its own packet");
            *seen.entry(sender).or_insert(0) += 1;
            // Identity is the relay's, not what the client wrote into the packet.
            assert_eq!(received.wrapper.user_id, format!("user{sender}").as_bytes());
            assert_eq!(received.wrapper.session_id, ids[sender].get());
        }
        assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");
    }
    for id in outsiders {
        assert!(c.media(id).is_empty(), "another meeting heard meeting m1");
    }
}

#[test]
fn a_joining_session_is_assigned_its_id_first_and_everyone_hears_it_joined() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");

    let first = &c.received[&bob][0];
    assert_eq!(first.packet_type(), PacketType::SessionAssigned);
    assert_eq!(first.wrapper.session_id, bob.get());
    assert_eq!(first.wrapper.user_id, SYSTEM_USER_ID.as_bytes());
    assert!(first.wrapper.data.is_empty());

    // Each hears its own reconnect secret, for itself only.
    let secrets = |s| {
        c.events(s)
            .into_iter()
            .filter(|e| e.event_type == MeetingEventType::ReconnectSecret as i32)
            .collect::<Vec<_>>()
    };
    let (bob_secret, alice_secret) = (secrets(bob), secrets(alice));
    assert_eq!((bob_secret.len(), alice_secret.len()), (1, 1));
    assert_eq!(bob_secret[0].session_id, bob.get());
    assert!(!bob_secret[0].room_token.is_empty());
    assert_ne!(bob_secret[0].room_token, alice_secret[0].room_token);
    // Bob learns that Alice is there; Alice learns that Bob joined.
    let joined = |s| {
        c.events(s)
            .into_iter()
            .filter(|e| e.event_type != MeetingEventType::ReconnectSecret as i32)
            .collect::<Vec<_>>()
    };
    let to_bob = joined(bob);
    assert_eq!(to_bob.len(), 1);
    assert_eq!(to_bob[0].target_user_id, "alice".as_bytes());
    assert_eq!(to_bob[0].session_id, alice.get());
    let to_alice = joined(alice);
    assert_eq!(to_alice.len(), 1);
    assert_eq!(
        to_alice[0].event_type,
        MeetingEventType::ParticipantJoined as i32
    );
    assert_eq!(to_alice[0].target_user_id, "bob".as_bytes());
    assert_eq!(to_alice[0].session_id, bob.get());
    assert_eq!(to_alice[0].room_id, "m1");
    assert_eq!(to_alice[0].participant_count, 2);
}

#[test]
fn a_leave_is_announced_after_the_grace_unless_the_user_comes_back() {
    let config = RelayConfig {
        reconnect_grace: Duration::from_secs(3),
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");
    let left = |c: &Cluster| {
        c.events(alice)
            .iter()
            .filter(|e| e.event_type == MeetingEventType::ParticipantLeft as i32)
            .count()
    };

    // Bob drops and reconnects within the grace: no PARTICIPANT_LEFT, a JOINED for the new id.
    c.leave(bob);
    c.advance(Duration::from_secs(2));
    let bob2 = c.join(0, "bob", "m1");
    c.advance(Duration::from_secs(5));
    assert_eq!(left(&c), 0);
    assert_eq!(c.events(alice).last().unwrap().session_id, bob2.get());

    // Bob leaves for good: announced once the grace is over, not before.
    c.leave(bob2);
    c.advance(Duration::from_millis(2900));
    assert_eq!(left(&c), 0);
    c.advance(Duration::from_millis(200));
    assert_eq!(left(&c), 1);
    let event = c.events(alice).pop().unwrap();
    assert_eq!(event.session_id, bob2.get());
    assert_eq!(event.participant_count, 1);
}

#[test]
fn the_node_subscribes_once_per_meeting_and_unsubscribes_when_it_empties() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let a = c.join(0, "a", "m1");
    let b = c.join(0, "b", "m1");
    assert!(c.subscribed(0, "m1"));
    c.leave(a);
    c.leave(b);
    assert!(
        c.subscribed(0, "m1"),
        "pending leaves still need the meeting"
    );
    c.advance(Duration::from_secs(10));
    assert!(!c.subscribed(0, "m1"));
    assert_eq!(c.nodes[0].meeting_count(), 0);
}

/// A publisher at 30 fps (keyframe every second) with audio at 50 packets/s, one receiver that
/// reads everything and one whose socket stops reading for `stall_secs`.
fn run_with_a_stalled_receiver(stall_secs: u64, total_secs: u64) -> (Cluster, [SessionId; 3]) {
    let config = RelayConfig {
        queue_video_bytes: 64 * 1024,
        queue_audio_headroom_bytes: 64 * 1024,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let publisher = c.join(0, "pub", "m1");
    let fast = c.join(0, "fast", "m1");
    let slow = c.join(0, "slow", "m1");
    c.stalled.insert(slow);
    // 10 ms ticks: video every 30 ms-ish (3 ticks), audio every 2 ticks.
    let mut frame = 0u32;
    for tick in 0..total_secs * 100 {
        if tick == stall_secs * 100 {
            c.stalled.remove(&slow);
            c.drain(slow);
        }
        if tick.is_multiple_of(3) {
            let key = frame.is_multiple_of(30);
            let size = if key { 7_500 } else { 1_900 };
            let mut payload = frame.to_be_bytes().to_vec();
            payload.resize(size, 0xAB);
            let kind = if key { "key" } else { "delta" };
            c.send(publisher, media(MediaType::Video, kind, payload))
                .unwrap();
            frame += 1;
        }
        if tick.is_multiple_of(2) {
            c.send(publisher, audio(&format!("a{tick}"))).unwrap();
        }
        c.advance(Duration::from_millis(10));
    }
    (c, [publisher, fast, slow])
}

fn video_frames(c: &Cluster, s: SessionId) -> Vec<(u32, bool)> {
    c.media(s)
        .into_iter()
        .filter(|(_, m)| m.media_type == MediaType::Video as i32)
        .map(|(_, m)| {
            let n = u32::from_be_bytes(m.data[..4].try_into().unwrap());
            (n, m.frame_type == "key")
        })
        .collect()
}

#[test]
fn slow_subscriber_does_not_change_what_the_others_receive() {
    let (c, [_, fast, slow]) = run_with_a_stalled_receiver(3, 6);
    let frames = video_frames(&c, fast);
    let expected: Vec<u32> = (0..frames.len() as u32).collect();
    assert_eq!(
        frames.iter().map(|f| f.0).collect::<Vec<_>>(),
        expected,
        "the fast receiver missed or reordered frames"
    );
    assert_eq!(frames.len(), 200);
    let audio = |s| {
        c.media(s)
            .iter()
            .filter(|(_, m)| m.media_type == MediaType::Audio as i32)
            .count()
    };
    assert_eq!(audio(fast), 300);
    // The slow one kept all its audio, lost video, and resumed video at a keyframe.
    assert_eq!(audio(slow), 300);
    let slow_frames = video_frames(&c, slow);
    assert!(slow_frames.len() < frames.len());
    assert!(c.nodes[0].metrics().drops(DropReason::Congestion) > 0);
    let mut previous = None;
    for (n, key) in &slow_frames {
        if let Some(p) = previous
            && *n != p + 1
        {
            assert!(
                key,
                "after a gap (frame {p} -> {n}) video resumed on a delta frame"
            );
        }
        previous = Some(*n);
    }
    assert!(
        slow_frames.iter().any(|(n, _)| *n > 100),
        "video never resumed after the reader caught up"
    );
}

#[test]
fn a_congested_publisher_hears_at_most_one_congestion_signal_per_second() {
    let (c, [publisher, _, slow]) = run_with_a_stalled_receiver(10, 10);
    let signals = c.of_type(publisher, PacketType::Congestion);
    assert!(signals.len() >= 2, "congestion went unreported");
    for pair in signals.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(1));
    }
    for s in &signals {
        assert_eq!(
            s.wrapper.user_id,
            "slow".as_bytes(),
            "names the dropping receiver"
        );
        assert_eq!(
            s.wrapper.session_id,
            publisher.get(),
            "names the sender's session"
        );
        assert!(s.wrapper.data.is_empty());
    }
    // The relay also asked the publisher for keyframes, no more than twice a second.
    let requests: Vec<_> = c
        .media(publisher)
        .into_iter()
        .filter(|(_, m)| m.media_type == MediaType::KeyframeRequest as i32)
        .collect();
    assert!(!requests.is_empty());
    for w in requests.windows(3) {
        assert!(w[2].0.at - w[0].0.at >= Duration::from_secs(1));
    }
    assert!(c.nodes[0].session_info(slow).unwrap().queued_bytes <= 128 * 1024);
}

#[test]
fn two_nodes_joined_by_the_bus_behave_as_one_meeting() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let a1 = c.join(0, "a1", "m1");
    let a2 = c.join(0, "a2", "m1");
    let b1 = c.join(1, "b1", "m1");
    let b2 = c.join(1, "b2", "m1");
    let lone = c.join(1, "lone", "m2");
    let all = [a1, a2, b1, b2];
    for (i, s) in all.iter().enumerate() {
        c.send(*s, audio(&format!("{i}"))).unwrap();
    }
    for (i, s) in all.iter().enumerate() {
        let mut senders: Vec<u64> = c
            .media(*s)
            .iter()
            .map(|(r, _)| r.wrapper.session_id)
            .collect();
        senders.sort();
        let mut expected: Vec<u64> = all.iter().filter(|o| *o != s).map(|o| o.get()).collect();
        expected.sort();
        assert_eq!(senders, expected, "session {i}");
    }
    assert!(c.media(lone).is_empty());
    // Joins crossed the bus: a1 heard of b1 and b2; b2 was told a1, a2 and b1 were there.
    let joined_users = |s| {
        let mut users: Vec<String> = c
            .events(s)
            .iter()
            .filter(|e| e.event_type == MeetingEventType::ParticipantJoined as i32)
            .map(|e| String::from_utf8(e.target_user_id.to_vec()).unwrap())
            .collect();
        users.sort();
        users
    };
    assert_eq!(joined_users(a1), ["a2", "b1", "b2"]);
    assert_eq!(joined_users(b2), ["a1", "a2", "b1"]);
    // A leave on node 1 reaches node 0 after the grace.
    c.leave(b1);
    c.advance(Duration::from_secs(5));
    let left: Vec<u64> = c
        .events(a1)
        .iter()
        .filter(|e| e.event_type == MeetingEventType::ParticipantLeft as i32)
        .map(|e| e.session_id)
        .collect();
    assert_eq!(left, [b1.get()]);
}

#[test]
fn congestion_on_one_node_reaches_a_publisher_on_another() {
    let config = RelayConfig {
        queue_video_bytes: 16 * 1024,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(2, config);
    let publisher = c.join(0, "pub", "m1");
    let slow = c.join(1, "slow", "m1");
    c.stalled.insert(slow);
    for i in 0..20u8 {
        c.send(publisher, media(MediaType::Video, "delta", vec![i; 2000]))
            .unwrap();
    }
    let signals = c.of_type(publisher, PacketType::Congestion);
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].wrapper.user_id, "slow".as_bytes());
    assert!(
        c.media(publisher)
            .iter()
            .any(|(_, m)| m.media_type == MediaType::KeyframeRequest as i32)
    );
}

#[test]
fn subscribers_get_only_the_video_they_asked_for_and_always_audio() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let viewer = c.join(0, "viewer", "m1");
    let shown = c.join(0, "shown", "m1");
    let hidden = c.join(0, "hidden", "m1");
    let subscribe = |video: Vec<u64>| {
        wrapper(
            PacketType::Subscription,
            SubscriptionPacket {
                video,
                screen: vec![],
                all: false,
            }
            .encode_to_vec(),
        )
    };
    c.send(viewer, subscribe(vec![shown.get()])).unwrap();
    for s in [shown, hidden] {
        c.send(s, media(MediaType::Video, "key", vec![1; 100]))
            .unwrap();
        c.send(s, audio("hi")).unwrap();
    }
    let got = c.media(viewer);
    let from = |s: SessionId, t: MediaType| {
        got.iter()
            .filter(|(r, m)| r.wrapper.session_id == s.get() && m.media_type == t as i32)
            .count()
    };
    assert_eq!(from(shown, MediaType::Video), 1);
    assert_eq!(from(hidden, MediaType::Video), 0);
    assert_eq!(from(shown, MediaType::Audio), 1);
    assert_eq!(from(hidden, MediaType::Audio), 1);

    // Switching to `hidden`: its stream starts at a keyframe, which the relay asks it for.
    c.send(viewer, subscribe(vec![hidden.get()])).unwrap();
    assert!(
        c.media(hidden)
            .iter()
            .any(|(_, m)| m.media_type == MediaType::KeyframeRequest as i32)
    );
    c.send(hidden, media(MediaType::Video, "delta", vec![2; 100]))
        .unwrap();
    c.send(hidden, media(MediaType::Video, "key", vec![3; 100]))
        .unwrap();
    c.send(hidden, media(MediaType::Video, "delta", vec![4; 100]))
        .unwrap();
    let hidden_video: Vec<u8> = c
        .media(viewer)
        .iter()
        .filter(|(r, m)| {
            r.wrapper.session_id == hidden.get() && m.media_type == MediaType::Video as i32
        })
        .map(|(_, m)| m.data[0])
        .collect();
    assert_eq!(hidden_video, [3, 4]);
}

/// A receiver's KEYFRAME_REQUEST names the publisher's user in its `MediaPacket`.
fn keyframe_request_for(user: &str) -> Bytes {
    let media = videocall_types::MediaPacket {
        media_type: MediaType::KeyframeRequest as i32,
        user_id: Bytes::copy_from_slice(user.as_bytes()),
        ..Default::default()
    };
    wrapper(PacketType::Media, media.encode_to_vec())
}

fn keyframe_requests(c: &Cluster, s: SessionId) -> usize {
    c.media(s)
        .iter()
        .filter(|(_, m)| m.media_type == MediaType::KeyframeRequest as i32)
        .count()
}

#[test]
fn keyframe_requests_reach_only_their_publisher_and_at_most_once_per_interval() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let publisher = c.join(0, "pub", "m1");
    let askers: Vec<_> = (0..5).map(|i| c.join(0, &format!("a{i}"), "m1")).collect();
    // Five receivers ask at once: one keyframe serves them all.
    for &a in &askers {
        assert!(c.send(a, keyframe_request_for("pub")).is_ok());
    }
    assert_eq!(keyframe_requests(&c, publisher), 1);
    for &a in &askers {
        assert_eq!(
            keyframe_requests(&c, a),
            0,
            "requests go to the publisher only"
        );
    }
    let m = c.nodes[0].metrics();
    assert_eq!(m.drops(DropReason::KeyframeRequestAggregated), 4);
    // Half a second later one more gets through, whoever asks.
    c.advance(videocall_relay::KEYFRAME_FORWARD_INTERVAL);
    c.send(askers[0], keyframe_request_for("pub")).unwrap();
    c.send(askers[1], keyframe_request_for("pub")).unwrap();
    assert_eq!(keyframe_requests(&c, publisher), 2);
    // Each receiver may still ask at most twice a second, and asking for nobody goes nowhere.
    assert_eq!(
        c.send(askers[0], keyframe_request_for("pub")),
        Err(InboundError::KeyframeRequestThrottled)
    );
    c.send(askers[2], keyframe_request_for("nobody")).unwrap();
    let m = c.nodes[0].metrics();
    assert_eq!(m.drops(DropReason::KeyframeRequestThrottled), 1);
    assert_eq!(m.drops(DropReason::KeyframeRequestUnknownTarget), 1);
}

#[test]
fn keyframe_requests_for_a_publisher_on_another_node_are_aggregated_there_too() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let publisher = c.join(0, "pub", "m1");
    let askers: Vec<_> = (0..3).map(|i| c.join(1, &format!("a{i}"), "m1")).collect();
    let local = c.join(0, "local", "m1");
    for &a in &askers {
        c.send(a, keyframe_request_for("pub")).unwrap();
    }
    c.send(local, keyframe_request_for("pub")).unwrap();
    assert_eq!(keyframe_requests(&c, publisher), 1);
}

#[test]
fn rtt_probes_come_back_to_their_sender_only() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let a = c.join(0, "a", "m1");
    let b = c.join(0, "b", "m1");
    let probe = media(MediaType::Rtt, "", b"t=5".to_vec());
    c.send(a, probe.clone()).unwrap();
    assert_eq!(c.media(a).len(), 1);
    assert_eq!(c.media(a)[0].1.data, "t=5".as_bytes());
    assert!(c.media(b).is_empty());
}

#[test]
fn bad_input_is_refused_with_a_reason_and_counted() {
    let config = RelayConfig {
        max_frame_bytes: 1024,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let a = c.join(0, "a", "m1");
    let b = c.join(0, "b", "m1");
    let before = c.received[&b].len();

    assert!(matches!(
        c.send(a, Bytes::from_static(&[0xff, 0xff, 0xff])),
        Err(InboundError::Malformed(_))
    ));
    assert_eq!(
        c.send(a, wrapper(PacketType::Unknown, vec![])),
        Err(InboundError::UnknownPacketType(0))
    );
    let unknown: Bytes = vec![0x08, 42].into();
    assert_eq!(c.send(a, unknown), Err(InboundError::UnknownPacketType(42)));
    let big = media(MediaType::Audio, "key", vec![0; 2000]);
    let len = big.len();
    assert_eq!(
        c.send(a, big),
        Err(InboundError::Oversize { len, max: 1024 })
    );
    for server_only in [
        PacketType::SessionAssigned,
        PacketType::Congestion,
        PacketType::Meeting,
    ] {
        assert_eq!(
            c.send(a, wrapper(server_only, vec![])),
            Err(InboundError::ServerOnly(server_only))
        );
    }
    let gone = SessionId::new(1, 999_999);
    assert_eq!(
        c.nodes[0].handle_inbound(c.now, gone, audio("x")),
        Err(InboundError::UnknownSession)
    );
    c.nodes[0].handle_bus(c.now, "room.m1.not-a-session", audio("x"));
    c.nodes[0].handle_bus(c.now, "room.m1.77777777777", Bytes::from_static(&[0xff; 5]));
    c.drive();

    assert_eq!(c.received[&b].len(), before, "bad input reached a peer");
    let m = c.nodes[0].metrics();
    assert_eq!(m.drops(DropReason::Malformed), 1);
    assert_eq!(m.drops(DropReason::UnknownType), 2);
    assert_eq!(m.drops(DropReason::Oversize), 1);
    assert_eq!(m.drops(DropReason::ServerOnly), 3);
    assert_eq!(m.drops(DropReason::BusMalformed), 2);
    assert!(MeetingId::new("room.*").is_err());
    assert!(MeetingId::new("m1 >").is_err());
    // The session still works.
    c.send(a, audio("ok")).unwrap();
    assert_eq!(c.media(b).len(), 1);
}

#[test]
fn a_flooding_session_is_rate_limited_without_hurting_others() {
    let config = RelayConfig {
        max_inbound_packets_per_sec: 100,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let flooder = c.join(0, "flood", "m1");
    let listener = c.join(0, "listener", "m1");
    let calm = c.join(0, "calm", "m1");
    let mut refused = 0;
    for _ in 0..1000 {
        if c.send(flooder, audio("spam")) == Err(InboundError::RateLimited) {
            refused += 1;
        }
    }
    assert_eq!(refused, 800, "burst of two seconds' worth, then refused");
    c.send(calm, audio("calm")).unwrap();
    let from_calm = c
        .media(listener)
        .iter()
        .filter(|(r, _)| r.wrapper.session_id == calm.get())
        .count();
    assert_eq!(from_calm, 1);
    assert_eq!(c.nodes[0].metrics().drops(DropReason::RateLimited), 800);
}

#[test]
fn silent_sessions_are_closed_after_the_idle_timeout_and_talkers_are_not() {
    let config = RelayConfig {
        idle_timeout: Duration::from_secs(30),
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let silent = c.join(0, "silent", "m1");
    let talker = c.join(0, "talker", "m1");
    for _ in 0..40 {
        c.advance(Duration::from_secs(1));
        c.send(talker, media(MediaType::Heartbeat, "", vec![]))
            .unwrap();
    }
    assert_eq!(c.closed, [(silent, CloseReason::IdleTimeout)]);
    assert!(c.nodes[0].session_info(talker).is_some());
    assert!(c.nodes[0].session_info(silent).is_none());
    assert_eq!(c.nodes[0].metrics().idle_closes, 1);
    assert!(c.nodes[0].poll_timeout().is_some());
}

#[test]
fn limits_on_meeting_size_and_meeting_count_are_explicit_errors() {
    let config = RelayConfig {
        max_sessions_per_meeting: 2,
        max_meetings: 2,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    c.join(0, "a", "m1");
    c.join(0, "b", "m1");
    let user = UserId::new("c").unwrap();
    let now = c.now;
    assert_eq!(
        c.nodes[0].handle_join(now, user.clone(), MeetingId::new("m1").unwrap()),
        Err(JoinError::MeetingFull {
            meeting: MeetingId::new("m1").unwrap(),
            max: 2
        })
    );
    c.join(0, "c", "m2");
    assert_eq!(
        c.nodes[0].handle_join(now, user, MeetingId::new("m3").unwrap()),
        Err(JoinError::NodeFull { max: 2 })
    );
    assert_eq!(c.nodes[0].metrics().joins_refused, 2);
}

#[test]
fn remote_participants_that_go_silent_are_announced_as_left() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let local = c.join(0, "local", "m1");
    let _remote = c.join(1, "remote", "m1");
    // Node 1 vanishes (no more bus traffic): node 0 forgets its participant after the timeout.
    let node1 = c.nodes.pop().unwrap();
    for _ in 0..31 {
        c.advance(Duration::from_secs(1));
        c.send(local, media(MediaType::Heartbeat, "", vec![]))
            .unwrap();
    }
    let left: Vec<_> = c
        .events(local)
        .into_iter()
        .filter(|e| e.event_type == MeetingEventType::ParticipantLeft as i32)
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].target_user_id, "remote".as_bytes());
    drop(node1);
}

#[test]
fn random_bytes_never_panic_the_relay() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let a = c.join(0, "a", "m1");
    let _b = c.join(1, "b", "m1");
    // xorshift: deterministic, no dependency.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half of the inputs start like a wrapper so decoding gets past the first byte.
        if next().is_multiple_of(2) && !bytes.is_empty() {
            bytes[0] = 0x08;
        }
        if c.nodes[0]
            .handle_inbound(c.now, a, bytes.clone().into())
            .is_ok()
        {
            accepted += 1;
        }
        c.nodes[1].handle_bus(c.now, "room.m1.4294967297", bytes.into());
        c.advance(Duration::from_millis(1));
    }
    assert!(accepted > 0, "the generator never produced a valid packet");
}
