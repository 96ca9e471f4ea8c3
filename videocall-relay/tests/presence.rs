//! Presence in O(N) (issue #17), on the real relay core with a virtual clock: heartbeats reach
//! sessions that take PRESENCE digests only when the sender's state changes, digests go out at
//! their period in capped chunks, and clients of the original still get every heartbeat — on
//! one node and across nodes joined by the in-memory bus.

mod harness;

use std::time::Duration;

use harness::{Cluster, wrapper};
use prost::Message;
use videocall_relay::{InboundError, Join, PRESENCE_DIGEST_CHUNK, RelayConfig};
use videocall_testkit::packets::heartbeat;
use videocall_types::presence::{AUDIO, VIDEO};
use videocall_types::{
    MediaType, MeetingEventType, MeetingId, PacketType, PresenceDigest, SessionId, UserId,
};

const DIGEST: Duration = Duration::from_secs(3);

fn config() -> RelayConfig {
    RelayConfig {
        presence_digest_interval: DIGEST,
        ..RelayConfig::default()
    }
}

/// A session of `user` that takes PRESENCE digests (our clients' `?presence=1`).
fn join_ours(c: &mut Cluster, node: usize, user: &str) -> SessionId {
    let join = Join {
        presence: true,
        ..Join::trusted(UserId::new(user).unwrap(), MeetingId::new("m1").unwrap())
    };
    c.admit(node, join).expect("joins")
}

/// Heartbeats `session` received from `from`, with the camera flag of each.
fn heartbeats_from(c: &Cluster, session: SessionId, from: SessionId) -> Vec<bool> {
    c.media(session)
        .into_iter()
        .filter(|(r, m)| {
            r.wrapper.session_id == from.get() && m.media_type == MediaType::Heartbeat as i32
        })
        .map(|(_, m)| m.heartbeat_metadata.unwrap_or_default().video_enabled)
        .collect()
}

fn digests(c: &Cluster, session: SessionId) -> Vec<PresenceDigest> {
    c.of_type(session, PacketType::Presence)
        .iter()
        .map(|r| PresenceDigest::decode(r.wrapper.data.clone()).expect("a digest"))
        .collect()
}

fn flags_in(digest: &PresenceDigest, session: SessionId) -> Option<u32> {
    digest
        .entries
        .iter()
        .find(|e| e.session_id == session.get())
        .map(|e| e.flags)
}

#[test]
fn a_changed_heartbeat_reaches_digest_takers_at_once_and_unchanged_ones_do_not() {
    let mut c = Cluster::new(1, config());
    let alice = c.join(0, "alice", "m1");
    let bob = join_ours(&mut c, 0, "bob");
    let carol = c.join(0, "carol", "m1"); // a client of the original
    let states = [false, false, false, true, true, true, false, false];
    let mut previous = None;
    for video in states {
        c.advance(Duration::from_millis(500));
        c.send(alice, heartbeat(video)).unwrap();
        if previous != Some(video) {
            let last = c.received[&bob].last().expect("bob received it");
            assert_eq!(last.wrapper.session_id, alice.get());
            assert_eq!(last.at, c.now, "a change is forwarded at once");
        }
        previous = Some(video);
    }
    // Bob: the first state heard, then each change; carol: every heartbeat, as before.
    assert_eq!(heartbeats_from(&c, bob, alice), [false, true, false]);
    assert_eq!(heartbeats_from(&c, carol, alice), states);
    assert_eq!(c.nodes[0].metrics().heartbeats_suppressed, 5);
}

#[test]
fn digests_go_out_at_their_period_to_digest_takers_only_and_list_everyone_heard() {
    let mut c = Cluster::new(1, config());
    let start = c.now;
    let alice = c.join(0, "alice", "m1");
    let bob = join_ours(&mut c, 0, "bob");
    let carol = c.join(0, "carol", "m1");
    for _ in 0..10 {
        c.advance(Duration::from_secs(1));
        c.send(alice, heartbeat(true)).unwrap();
        c.send(carol, heartbeat(false)).unwrap();
    }
    let at: Vec<Duration> = c
        .of_type(bob, PacketType::Presence)
        .iter()
        .map(|r| r.at - start)
        .collect();
    assert_eq!(at, [DIGEST, 2 * DIGEST, 3 * DIGEST]);
    assert!(c.of_type(carol, PacketType::Presence).is_empty());
    assert!(c.of_type(alice, PacketType::Presence).is_empty());
    let last = digests(&c, bob).pop().unwrap();
    assert_eq!((last.chunk, last.chunks), (0, 1));
    assert_eq!(flags_in(&last, alice), Some(VIDEO | AUDIO));
    assert_eq!(flags_in(&last, carol), Some(AUDIO));
    assert_eq!(flags_in(&last, bob), None, "bob never heartbeat");
}

#[test]
fn a_newcomer_taking_digests_learns_everyones_state_right_after_the_roster() {
    let mut c = Cluster::new(1, config());
    let alice = c.join(0, "alice", "m1");
    c.send(alice, heartbeat(true)).unwrap();
    let bob = join_ours(&mut c, 0, "bob");
    let received = &c.received[&bob];
    let digest_at = received
        .iter()
        .position(|r| r.packet_type() == PacketType::Presence)
        .expect("a digest at join");
    let joined_at = received
        .iter()
        .position(|r| {
            r.meeting_event()
                .is_some_and(|e| e.event_type == MeetingEventType::ParticipantJoined as i32)
        })
        .unwrap();
    assert!(joined_at < digest_at, "the roster first, then its state");
    assert_eq!(flags_in(&digests(&c, bob)[0], alice), Some(VIDEO | AUDIO));
}

#[test]
fn a_large_meetings_digest_is_chunked_and_each_tick_sends_one_capped_chunk() {
    let mut c = Cluster::new(1, config());
    let n = PRESENCE_DIGEST_CHUNK + 44;
    for i in 0..n {
        let s = c.join(0, &format!("u{i}"), "m1");
        c.send(s, heartbeat(i % 2 == 0)).unwrap();
    }
    let bob = join_ours(&mut c, 0, "bob");
    let at_join = digests(&c, bob);
    let sizes: Vec<usize> = at_join.iter().map(|d| d.entries.len()).collect();
    assert_eq!(sizes, [PRESENCE_DIGEST_CHUNK, 44]);
    assert!(at_join.iter().all(|d| d.chunks == 2));
    for _ in 0..3 {
        c.advance(DIGEST);
    }
    let ticks: Vec<(u32, usize)> = digests(&c, bob)[2..]
        .iter()
        .map(|d| (d.chunk, d.entries.len()))
        .collect();
    assert_eq!(
        ticks,
        [
            (0, PRESENCE_DIGEST_CHUNK),
            (1, 44),
            (0, PRESENCE_DIGEST_CHUNK)
        ]
    );
}

#[test]
fn a_departed_participant_is_announced_as_before_and_leaves_the_digest() {
    let config = RelayConfig {
        idle_timeout: Duration::from_secs(10),
        ..config()
    };
    let mut c = Cluster::new(1, config);
    let start = c.now;
    let alice = c.join(0, "alice", "m1");
    let bob = join_ours(&mut c, 0, "bob");
    c.send(alice, heartbeat(true)).unwrap();
    // Alice goes silent (her client died without closing); bob keeps heartbeating.
    for _ in 0..20 {
        c.advance(Duration::from_secs(1));
        c.send(bob, heartbeat(false)).unwrap();
    }
    let left = c
        .received
        .get(&bob)
        .unwrap()
        .iter()
        .find(|r| {
            r.meeting_event().is_some_and(|e| {
                e.event_type == MeetingEventType::ParticipantLeft as i32
                    && e.session_id == alice.get()
            })
        })
        .map(|r| r.at - start)
        .expect("alice's leave is announced");
    // Closed at the idle timeout (checked by its timer), announced after the reconnect grace.
    assert!(left <= Duration::from_secs(10 + 3 + 1), "{left:?}");
    let after: Vec<PresenceDigest> = c
        .of_type(bob, PacketType::Presence)
        .iter()
        .filter(|r| r.at - start > left)
        .map(|r| PresenceDigest::decode(r.wrapper.data.clone()).unwrap())
        .collect();
    assert!(!after.is_empty());
    assert!(after.iter().all(|d| flags_in(d, alice).is_none()));
}

#[test]
fn across_nodes_each_node_decides_for_its_own_sessions_from_the_heartbeats_on_the_bus() {
    let mut c = Cluster::new(2, config());
    let alice = c.join(1, "alice", "m1");
    let bob = join_ours(&mut c, 0, "bob");
    let carol = c.join(0, "carol", "m1");
    let dave = join_ours(&mut c, 1, "dave");
    let before = c.bus_messages;
    let states = [false, false, true, true, true];
    for video in states {
        c.advance(Duration::from_secs(1));
        c.send(alice, heartbeat(video)).unwrap();
    }
    // Every heartbeat crosses the bus once (O(N) per node), whoever takes digests.
    assert_eq!(c.bus_messages - before, states.len());
    assert_eq!(heartbeats_from(&c, bob, alice), [false, true]);
    assert_eq!(heartbeats_from(&c, dave, alice), [false, true]);
    assert_eq!(heartbeats_from(&c, carol, alice), states);
    c.advance(DIGEST);
    let last = digests(&c, bob).pop().expect("node 0 sends digests");
    assert_eq!(
        flags_in(&last, alice),
        Some(VIDEO | AUDIO),
        "a remote participant"
    );
}

#[test]
fn a_client_cannot_send_a_presence_digest() {
    let mut c = Cluster::new(1, config());
    let mallory = c.join(0, "mallory", "m1");
    let bob = join_ours(&mut c, 0, "bob");
    let forged = wrapper(
        PacketType::Presence,
        PresenceDigest::default().encode_to_vec(),
    );
    assert!(matches!(
        c.send(mallory, forged),
        Err(InboundError::ServerOnly(PacketType::Presence))
    ));
    assert!(c.of_type(bob, PacketType::Presence).is_empty());
}
