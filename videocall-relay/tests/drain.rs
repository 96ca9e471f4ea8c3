//! A node draining for a rolling update: its sessions are told to reconnect elsewhere, joins
//! are refused, a user who moves to another node is replaced there and never announced as left,
//! and the node is drained once nothing is left that anyone could hear.

mod harness;

use std::time::Duration;

use harness::{Cluster, media};
use videocall_relay::{DRAINING_MESSAGE, Join, JoinError, Proof, RelayConfig};
use videocall_types::{MediaType, MeetingEventType, MeetingId, MeetingPacket, SessionId, UserId};

fn config() -> RelayConfig {
    RelayConfig {
        reconnect_grace: Duration::from_secs(3),
        ..RelayConfig::default()
    }
}

fn events_of(c: &Cluster, s: SessionId, kind: MeetingEventType) -> Vec<MeetingPacket> {
    c.events(s)
        .into_iter()
        .filter(|e| e.event_type == kind as i32)
        .collect()
}

/// A plain join presenting the reconnect secret `session` was given, as a moving client does.
fn reconnect(c: &Cluster, session: SessionId, user: &str, meeting: &str) -> Join {
    let secret = events_of(c, session, MeetingEventType::ReconnectSecret)
        .pop()
        .expect("a joined session is sent its reconnect secret")
        .room_token;
    Join {
        proof: Proof::Reconnect(secret),
        ..Join::open(UserId::new(user).unwrap(), MeetingId::new(meeting).unwrap())
    }
}

#[test]
fn a_draining_node_tells_each_of_its_sessions_to_move_once_and_refuses_joins() {
    let mut c = Cluster::new(2, config());
    let alice = c.join(0, "alice", "m1");
    let carol = c.join(0, "carol", "m2");
    let bob = c.join(1, "bob", "m1");

    let now = c.now;
    c.nodes[0].handle_drain(now);
    c.nodes[0].handle_drain(now);
    c.drive();

    for (session, user, meeting) in [(alice, "alice", "m1"), (carol, "carol", "m2")] {
        let told = events_of(&c, session, MeetingEventType::NodeDraining);
        assert_eq!(told.len(), 1, "{user} is told once");
        assert_eq!(told[0].session_id, session.get());
        assert_eq!(told[0].target_user_id, user.as_bytes());
        assert_eq!(told[0].room_id, meeting);
        assert_eq!(told[0].message, DRAINING_MESSAGE);
    }
    // Only this node's sessions: the event does not go over the bus.
    assert!(events_of(&c, bob, MeetingEventType::NodeDraining).is_empty());
    assert_eq!(c.nodes[0].metrics().drain_notices, 2);
    // Sessions stay until they go; new ones are refused.
    assert_eq!(c.nodes[0].session_count(), 2);
    assert!(!c.nodes[0].drained());
    let refused = c.nodes[0].handle_join(
        c.now,
        UserId::new("dave").unwrap(),
        MeetingId::new("m1").unwrap(),
    );
    assert_eq!(refused, Err(JoinError::ShuttingDown));
    assert_eq!(refused.unwrap_err().http_status(), 503);
}

#[test]
fn a_user_who_moves_to_another_node_is_replaced_there_and_never_announced_as_left() {
    // The old connection may be seen to close before or after the new session's JOINED
    // reaches the draining node; the outcome must be the same.
    for leave_first in [true, false] {
        let mut c = Cluster::new(2, config());
        let alice = c.join(0, "alice", "m1");
        let bob = c.join(1, "bob", "m1");
        let now = c.now;
        c.nodes[0].handle_drain(now);
        c.drive();

        let join = reconnect(&c, alice, "alice", "m1");
        let moved = if leave_first {
            c.leave(alice);
            c.advance(Duration::from_millis(100));
            c.admit(1, join).expect("the secret proves the move")
        } else {
            let moved = c.admit(1, join).expect("the secret proves the move");
            c.advance(Duration::from_millis(100));
            c.leave(alice);
            moved
        };
        // Done as soon as the move is known: nobody is left and no leave waits.
        assert!(c.nodes[0].drained(), "leave first: {leave_first}");
        assert_eq!(c.nodes[0].meeting_count(), 0);
        assert!(!c.subscribed(0, "m1"));
        assert_eq!(c.nodes[0].metrics().leaves_replaced, 1);
        c.nodes[0].handle_shutdown(c.now);
        c.advance(Duration::from_secs(10));

        // Bob heard the new session join (which replaces the old one) and no one leave.
        let joined = events_of(&c, bob, MeetingEventType::ParticipantJoined);
        let sessions: Vec<u64> = joined.iter().map(|e| e.session_id).collect();
        assert_eq!(
            sessions,
            [alice.get(), moved.get()],
            "leave first: {leave_first}"
        );
        assert!(
            events_of(&c, bob, MeetingEventType::ParticipantLeft).is_empty(),
            "leave first: {leave_first}: {:?}",
            c.events(bob)
        );
    }
}

#[test]
fn a_session_that_does_not_come_back_is_announced_after_the_grace_then_the_node_is_drained() {
    let mut c = Cluster::new(2, config());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(1, "bob", "m1");
    let now = c.now;
    c.nodes[0].handle_drain(now);
    c.leave(alice);
    // Bob's node could still hear a leave: the drain waits for the grace.
    assert!(!c.nodes[0].drained());
    c.advance(Duration::from_millis(2900));
    assert!(!c.nodes[0].drained());
    assert!(events_of(&c, bob, MeetingEventType::ParticipantLeft).is_empty());
    c.advance(Duration::from_millis(200));
    let left = events_of(&c, bob, MeetingEventType::ParticipantLeft);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].session_id, alice.get());
    assert!(c.nodes[0].drained());
    assert_eq!(c.nodes[0].metrics().leaves_replaced, 0);
}

#[test]
fn a_node_alone_in_its_meetings_is_drained_as_soon_as_its_sessions_go() {
    let mut c = Cluster::new(1, config());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");
    let now = c.now;
    c.nodes[0].handle_drain(now);
    c.drive();
    c.leave(alice);
    assert!(!c.nodes[0].drained());
    c.leave(bob);
    // Nobody on another node could hear the leaves: no need to wait for the grace.
    assert!(c.nodes[0].drained());
}

#[test]
fn a_user_back_through_another_node_within_the_grace_is_not_announced_as_left_without_a_drain() {
    let mut c = Cluster::new(2, config());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");
    let carol = c.join(1, "carol", "m1");
    // Alice's connection drops; her client comes back through the other node.
    let join = reconnect(&c, alice, "alice", "m1");
    c.leave(alice);
    c.advance(Duration::from_secs(1));
    let moved = c.admit(1, join).expect("the secret proves it is her");
    // Past the idle timeout, everyone heartbeating: the old session is not kept in any roster
    // to be expired (and announced) later either.
    for _ in 0..40 {
        c.advance(Duration::from_secs(1));
        for s in [bob, carol, moved] {
            c.send(s, media(MediaType::Heartbeat, "", Vec::new()))
                .unwrap();
        }
    }
    for peer in [bob, carol] {
        assert!(
            events_of(&c, peer, MeetingEventType::ParticipantLeft).is_empty(),
            "{:?}",
            c.events(peer)
        );
        let last = events_of(&c, peer, MeetingEventType::ParticipantJoined).pop();
        assert_eq!(last.map(|e| e.session_id), Some(moved.get()));
    }
    // The moved session was not told about its own old one.
    let told: Vec<u64> = events_of(&c, moved, MeetingEventType::ParticipantJoined)
        .iter()
        .map(|e| e.session_id)
        .collect();
    assert!(!told.contains(&alice.get()), "{told:?}");
    assert_eq!(c.nodes[0].metrics().leaves_replaced, 1);
}
