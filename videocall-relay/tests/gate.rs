//! Admission and host controls in the relay core: grants (observers), no takeover (tokens and
//! reconnect secrets), removal, ask-to-mute and end, on one node and across two.

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::{Cluster, media, wrapper};
use prost::Message;
use videocall_relay::{CloseReason, DropReason, Grants, Join, JoinError, Proof, RelayConfig};
use videocall_types::{
    MediaType, MeetingEventType, MeetingId, MeetingPacket, PacketType, SessionId, UserId,
};

fn open(user: &str, meeting: &str) -> Join {
    Join::open(UserId::new(user).unwrap(), MeetingId::new(meeting).unwrap())
}

fn with_grants(user: &str, meeting: &str, grants: Grants) -> Join {
    Join {
        grants,
        proof: Proof::Token,
        ..open(user, meeting)
    }
}

const OBSERVER: Grants = Grants {
    publish: false,
    subscribe: true,
    host: false,
};
const HOST: Grants = Grants {
    publish: true,
    subscribe: true,
    host: true,
};

fn audio(tag: &str) -> Bytes {
    media(MediaType::Audio, "", tag.as_bytes().to_vec())
}

fn heard_audio(c: &Cluster, s: SessionId, tag: &str) -> usize {
    c.media(s)
        .iter()
        .filter(|(_, m)| m.media_type == MediaType::Audio as i32 && m.data == tag.as_bytes())
        .count()
}

fn events_of(c: &Cluster, s: SessionId, kind: MeetingEventType) -> Vec<MeetingPacket> {
    c.events(s)
        .into_iter()
        .filter(|e| e.event_type == kind as i32)
        .collect()
}

fn secret_of(c: &Cluster, s: SessionId) -> String {
    events_of(c, s, MeetingEventType::ReconnectSecret)
        .pop()
        .expect("a joined session is sent its reconnect secret")
        .room_token
}

fn host_request(kind: MeetingEventType, target: &str) -> Bytes {
    let event = MeetingPacket {
        event_type: kind as i32,
        target_user_id: Bytes::copy_from_slice(target.as_bytes()),
        ..Default::default()
    };
    wrapper(PacketType::Meeting, event.encode_to_vec())
}

#[test]
fn an_observers_media_never_reaches_others_while_its_heartbeats_and_keys_do() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let viewer = c.admit(0, with_grants("viewer", "m1", OBSERVER)).unwrap();
    let here = c.join(0, "here", "m1");
    let there = c.join(1, "there", "m1");
    for kind in [MediaType::Audio, MediaType::Video, MediaType::Screen] {
        let err = c
            .send(viewer, media(kind, "key", b"secret".to_vec()))
            .unwrap_err();
        assert_eq!(err, videocall_relay::InboundError::NotPublisher);
    }
    c.send(viewer, media(MediaType::Heartbeat, "", vec![]))
        .unwrap();
    c.send(viewer, wrapper(PacketType::RsaPubKey, b"spki".to_vec()))
        .unwrap();
    for s in [here, there] {
        let kinds: Vec<i32> = c.media(s).iter().map(|(_, m)| m.media_type).collect();
        assert_eq!(
            kinds,
            vec![MediaType::Heartbeat as i32],
            "{s} got the observer's media"
        );
        assert_eq!(c.of_type(s, PacketType::RsaPubKey).len(), 1);
    }
    assert_eq!(c.nodes[0].metrics().drops(DropReason::ObserverMedia), 3);
    // The observer still receives everyone else's media.
    c.send(there, audio("to-viewer")).unwrap();
    assert_eq!(heard_audio(&c, viewer, "to-viewer"), 1);
}

#[test]
fn a_takeover_attempt_is_refused_and_the_real_participant_keeps_its_place() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let alice = c.admit(0, open("alice", "m1")).unwrap();
    let bob = c.admit(0, open("bob", "m1")).unwrap();
    let carol = c.admit(1, open("carol", "m1")).unwrap();
    // On alice's node, and on another node that knows her from the bus roster.
    for node in [0, 1] {
        let err = c.admit(node, open("alice", "m1")).unwrap_err();
        assert!(matches!(err, JoinError::UserPresent { .. }), "{err:?}");
        assert_eq!(err.http_status(), 409);
        // A forged or stolen-from-elsewhere secret proves nothing.
        let forged = Join {
            proof: Proof::Reconnect(format!("{:x}.{}", alice.get(), "0".repeat(32))),
            ..open("alice", "m1")
        };
        assert!(c.admit(node, forged).is_err());
    }
    c.advance(Duration::from_secs(5));
    // Nobody saw alice leave or anyone replace her, and her media keeps flowing.
    for s in [bob, carol] {
        assert!(events_of(&c, s, MeetingEventType::ParticipantLeft).is_empty());
        let joined = events_of(&c, s, MeetingEventType::ParticipantJoined);
        assert!(
            joined
                .iter()
                .filter(|e| e.target_user_id == "alice".as_bytes())
                .all(|e| e.session_id == alice.get())
        );
    }
    assert!(c.closed.is_empty());
    c.send(alice, audio("still-alice")).unwrap();
    assert_eq!(
        (
            heard_audio(&c, bob, "still-alice"),
            heard_audio(&c, carol, "still-alice")
        ),
        (1, 1)
    );
    assert_eq!(c.nodes[0].metrics().joins_refused, 2);
}

#[test]
fn the_reconnect_secret_lets_the_same_client_replace_its_session_on_any_node_without_a_leave() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let alice = c.admit(0, open("alice", "m1")).unwrap();
    let bob = c.admit(0, open("bob", "m1")).unwrap();
    let carol = c.admit(1, open("carol", "m1")).unwrap();
    let secret = secret_of(&c, alice);
    // Her network changed: she comes back through the other node while the old session lives.
    let again = Join {
        proof: Proof::Reconnect(secret.clone()),
        ..open("alice", "m1")
    };
    let alice2 = c.admit(1, again).unwrap();
    assert_ne!(
        secret_of(&c, alice2),
        secret,
        "each session gets its own secret"
    );
    // Her old session on node 0 lives on until it drops (another node cannot close it); the
    // secret of the old session does not open a third one once replaced there.
    c.leave(alice);
    c.advance(Duration::from_secs(5));
    for s in [bob, carol] {
        let left = events_of(&c, s, MeetingEventType::ParticipantLeft);
        assert!(left.iter().all(|e| e.session_id == alice.get()), "{left:?}");
        let joined = events_of(&c, s, MeetingEventType::ParticipantJoined);
        assert!(joined.iter().any(|e| e.session_id == alice2.get()));
    }
    // On her own node the secret replaces the live session at once, and no leave is announced.
    let again = Join {
        proof: Proof::Reconnect(secret_of(&c, alice2)),
        ..open("alice", "m1")
    };
    let alice3 = c.admit(1, again).unwrap();
    assert!(
        c.closed.contains(&(alice2, CloseReason::Replaced)),
        "{:?} {alice2} {alice3}",
        c.closed
    );
    c.advance(Duration::from_secs(5));
    assert!(
        events_of(&c, bob, MeetingEventType::ParticipantLeft)
            .iter()
            .all(|e| e.session_id != alice2.get()),
        "the replaced session's leave was announced"
    );
    c.send(alice3, audio("alice3")).unwrap();
    assert_eq!(heard_audio(&c, bob, "alice3"), 1);
}

#[test]
fn a_token_for_the_user_replaces_its_session() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let alice = c.admit(0, open("alice", "m1")).unwrap();
    let token = c.admit(0, with_grants("alice", "m1", HOST)).unwrap();
    assert!(c.closed.contains(&(alice, CloseReason::Replaced)));
    assert_ne!(alice, token);
}

#[test]
fn removal_disconnects_the_participant_on_whichever_node_and_refuses_its_return() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let host = c.admit(0, with_grants("host", "m1", HOST)).unwrap();
    let mallory = c.admit(1, open("mallory", "m1")).unwrap();
    let bob = c.admit(1, open("bob", "m1")).unwrap();
    // From the meeting API on node 0 (which does not hold mallory).
    let meeting = MeetingId::new("m1").unwrap();
    c.nodes[0].handle_remove(c.now, &meeting, &UserId::new("mallory").unwrap());
    c.drive();
    assert_eq!(c.closed, vec![(mallory, CloseReason::Removed)]);
    assert_eq!(
        events_of(&c, mallory, MeetingEventType::ParticipantRemoved).len(),
        1
    );
    // Everyone hears mallory left at once, not after the reconnect grace.
    for s in [host, bob] {
        let left = events_of(&c, s, MeetingEventType::ParticipantLeft);
        assert_eq!(
            left.iter().map(|e| e.session_id).collect::<Vec<_>>(),
            vec![mallory.get()]
        );
    }
    let err = c.admit(1, open("mallory", "m1")).unwrap_err();
    assert_eq!((err.clone(), err.http_status()), (JoinError::Removed, 403));
    assert!(
        c.admit(1, with_grants("mallory", "m1", HOST)).is_err(),
        "a token does not undo a removal"
    );
}

#[test]
fn host_requests_in_band_are_carried_out_and_from_others_dropped_and_counted() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let host = c.admit(0, with_grants("host", "m1", HOST)).unwrap();
    let bob = c.admit(1, open("bob", "m1")).unwrap();
    let carol = c.admit(1, open("carol", "m1")).unwrap();
    // Bob is not a host: his requests do nothing.
    for kind in [
        MeetingEventType::ParticipantRemoved,
        MeetingEventType::MuteRequested,
        MeetingEventType::MeetingEnded,
    ] {
        let err = c.send(bob, host_request(kind, "carol")).unwrap_err();
        assert_eq!(err, videocall_relay::InboundError::NotHost);
    }
    assert_eq!(c.nodes[1].metrics().drops(DropReason::NotHost), 3);
    assert!(c.closed.is_empty());
    assert!(events_of(&c, carol, MeetingEventType::MuteRequested).is_empty());
    // Any other meeting event from a client is still refused as the server's to send.
    assert!(
        c.send(host, host_request(MeetingEventType::ParticipantJoined, "x"))
            .is_err()
    );

    c.send(host, host_request(MeetingEventType::MuteRequested, "carol"))
        .unwrap();
    assert_eq!(
        events_of(&c, carol, MeetingEventType::MuteRequested).len(),
        1
    );
    assert!(events_of(&c, bob, MeetingEventType::MuteRequested).is_empty());

    c.send(host, host_request(MeetingEventType::MeetingEnded, ""))
        .unwrap();
    let mut closed = c.closed.clone();
    closed.sort_by_key(|(s, _)| *s);
    let mut want = vec![
        (host, CloseReason::MeetingEnded),
        (bob, CloseReason::MeetingEnded),
        (carol, CloseReason::MeetingEnded),
    ];
    want.sort_by_key(|(s, _)| *s);
    assert_eq!(closed, want);
    assert_eq!(events_of(&c, bob, MeetingEventType::MeetingEnded).len(), 1);
}

#[test]
fn a_participant_unheard_for_the_presence_timeout_no_longer_holds_its_id() {
    // Its node died without a word: its client may come back through another node that cannot
    // verify its secret.
    let mut c = Cluster::new(2, RelayConfig::default());
    let _alice = c.admit(0, open("alice", "m1")).unwrap();
    let _bob = c.admit(1, open("bob", "m1")).unwrap();
    assert!(c.admit(1, open("alice", "m1")).is_err());
    c.advance(videocall_relay::PRESENCE_TIMEOUT);
    assert!(c.admit(1, open("alice", "m1")).is_ok());
}
