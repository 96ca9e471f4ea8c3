//! Client sessions driven against the real relay core, in memory, on the harness's virtual
//! clock (it jumps to the next timer or arrival: no 10 ms steps).

mod harness;

use std::time::Duration;

use bytes::Bytes;
use harness::{Conditions, Net};
use videocall_client::{
    Action, ClientConfig, ConnectionState, Event, RECONNECT_BACKOFF, Session, SessionError,
};
use videocall_relay::RelayConfig;
use videocall_types::{FinalClose, HeartbeatMetadata, MediaPacket, MediaType, MeetingId, UserId};

/// A session of `user` in meeting m1.
fn session(user: &str) -> Session {
    Session::new(ClientConfig::new(
        UserId::new(user).unwrap(),
        MeetingId::new("m1").unwrap(),
    ))
}

/// A meeting of `users`, all joined, on a perfect network.
fn meeting(users: &[&str]) -> Net {
    let mut net = Net::new(Conditions::default(), 1);
    for user in users {
        net.add(session(user));
    }
    net
}

#[test]
fn two_clients_join_see_each_other_and_exchange_media() {
    let mut w = meeting(&["alice", "bob"]);
    assert!(matches!(
        w.clients[0].state(),
        ConnectionState::Joined { .. }
    ));
    assert!(matches!(w.events[0][0], Event::Joined { .. }));
    assert!(
        w.events[0]
            .iter()
            .any(|e| matches!(e, Event::PeerJoined { user, .. } if user == "bob"))
    );
    assert!(
        w.events[1]
            .iter()
            .any(|e| matches!(e, Event::PeerJoined { user, .. } if user == "alice"))
    );

    w.clients[0]
        .send_media(MediaPacket {
            media_type: MediaType::Video as i32,
            frame_type: "key".into(),
            data: Bytes::from_static(b"frame"),
            ..Default::default()
        })
        .unwrap();
    w.drive();
    assert_eq!(w.media_from(1, "alice", MediaType::Video), 1);
    assert_eq!(w.media_from(0, "alice", MediaType::Video), 0, "no echo");
}

#[test]
fn heartbeats_go_out_every_second_and_rtt_is_measured() {
    let mut w = Net::new(Conditions::default(), 1);
    w.add(session("alice"));
    // Bob acts as a client of the original: it is sent every heartbeat.
    let mut config = ClientConfig::new(UserId::new("bob").unwrap(), MeetingId::new("m1").unwrap());
    config.presence = false;
    w.add(Session::new(config));
    w.clients[0].set_heartbeat(HeartbeatMetadata {
        video_enabled: true,
        ..Default::default()
    });
    w.run_for(Duration::from_millis(5_000));
    let beats = w.media_from(1, "alice", MediaType::Heartbeat);
    assert!((5..=7).contains(&beats), "{beats} heartbeats in 5 s");
    let rtts = w.events[0]
        .iter()
        .filter(|e| matches!(e, Event::Rtt(_)))
        .count();
    assert!(rtts >= 5, "{rtts} RTT samples");
    // The relay never closed anyone for idleness: heartbeats keep the session alive.
    w.run_for(Duration::from_secs(40));
    assert!(matches!(
        w.clients[1].state(),
        ConnectionState::Joined { .. }
    ));
}

/// The state changes client `i` was told of for `user`, with when.
fn states_of(w: &Net, i: usize, user: &str) -> Vec<HeartbeatMetadata> {
    w.events[i]
        .iter()
        .filter_map(|e| match e {
            Event::PeerState { user: u, state, .. } if u == user => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn with_presence_digests_only_changes_travel_and_a_camera_toggle_is_seen_at_once() {
    let mut w = meeting(&["alice", "bob"]);
    let on = HeartbeatMetadata {
        video_enabled: true,
        ..Default::default()
    };
    w.clients[0].set_heartbeat(on);
    w.run_for(Duration::from_secs(10));
    // Ten seconds of heartbeats: bob got the first state and the change, not the repeats.
    let beats = w.media_from(1, "alice", MediaType::Heartbeat);
    assert!((1..=2).contains(&beats), "{beats} heartbeats reached bob");
    assert_eq!(states_of(&w, 1, "alice").last(), Some(&on));
    // Alice turns her camera off between two periodic heartbeats: bob knows within 200 ms
    // (the harness's links add no delay; the session sends a change at once).
    w.run_for(Duration::from_millis(400));
    let before = states_of(&w, 1, "alice").len();
    w.clients[0].set_heartbeat(HeartbeatMetadata::default());
    w.run_for(Duration::from_millis(200));
    let after = states_of(&w, 1, "alice");
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last(), Some(&HeartbeatMetadata::default()));
    // Bob stays in alice's peers though her heartbeats no longer reach him every second.
    w.run_for(Duration::from_secs(40));
    assert!(w.clients[1].peers().values().any(|u| u == "alice"));
    assert!(w.clients[0].peers().values().any(|u| u == "bob"));
}

#[test]
fn a_keyframe_request_reaches_only_the_named_peer() {
    let mut w = meeting(&["alice", "bob", "carol"]);
    w.clients[1].request_keyframe(w.now, "alice").unwrap();
    w.clients[1].request_keyframe(w.now, "alice").unwrap(); // throttled, not an error
    w.drive();
    let asked = |w: &Net, i: usize| {
        w.events[i]
            .iter()
            .filter(|e| matches!(e, Event::KeyframeRequested))
            .count()
    };
    assert_eq!(asked(&w, 0), 1);
    assert_eq!(asked(&w, 2), 0);
}

#[test]
fn a_lost_connection_is_retried_with_backoff_and_rejoins() {
    let mut w = meeting(&["alice", "bob"]);
    w.up = false;
    w.drop_all();
    let retries: Vec<Duration> = (0..6)
        .map(|_| {
            let Some(Event::Disconnected {
                retry_in: Some(wait),
                ..
            }) = w.events[0]
                .iter()
                .rev()
                .find(|e| matches!(e, Event::Disconnected { .. }))
                .cloned()
            else {
                panic!("no disconnect event");
            };
            let before = w.events[0].len();
            w.run_for(wait + Duration::from_millis(20));
            assert!(w.events[0].len() > before, "no new attempt after {wait:?}");
            wait
        })
        .collect();
    assert_eq!(&retries[..4], &RECONNECT_BACKOFF);
    assert_eq!(retries[5], Duration::from_secs(30));
    w.up = true;
    w.run_for(Duration::from_secs(31));
    assert!(matches!(
        w.clients[0].state(),
        ConnectionState::Joined { .. }
    ));
    assert!(matches!(
        w.clients[1].state(),
        ConnectionState::Joined { .. }
    ));
    assert!(
        w.events[0]
            .iter()
            .rev()
            .any(|e| matches!(e, Event::PeerJoined { user, .. } if user == "bob"))
    );
}

#[test]
fn a_connection_that_never_completes_times_out() {
    let mut s = Session::new(ClientConfig::new(
        UserId::new("a").unwrap(),
        MeetingId::new("m").unwrap(),
    ));
    s.handle_start(Duration::ZERO);
    assert_eq!(
        s.poll_action(),
        Some(Action::Connect {
            attempt: 1,
            elsewhere: false
        })
    );
    s.handle_connected(Duration::ZERO);
    assert_eq!(s.poll_timeout(), Some(Duration::from_secs(10)));
    s.handle_timeout(Duration::from_secs(10));
    assert_eq!(s.poll_action(), Some(Action::Close));
    assert!(matches!(
        s.poll_event(),
        Some(Event::Disconnected {
            retry_in: Some(_),
            ..
        })
    ));
    assert!(matches!(
        s.send_media(MediaPacket::default()),
        Err(SessionError::NotJoined(_))
    ));
    assert!(
        s.handle_packet(Duration::ZERO, Bytes::from_static(&[0xff]))
            .is_err()
    );
    s.leave();
    assert_eq!(s.state(), ConnectionState::Closed);
}

#[test]
fn the_relay_says_why_it_refused_a_frame_too_large_for_its_receivers() {
    let mut w = meeting(&["alice", "bob"]);
    let too_big = RelayConfig::default().queue_video_bytes + 1;
    w.clients[0]
        .send_media(MediaPacket {
            media_type: MediaType::Video as i32,
            frame_type: "key".into(),
            data: vec![0u8; too_big].into(),
            ..Default::default()
        })
        .unwrap();
    w.drive();
    assert_eq!(w.media_from(1, "alice", MediaType::Video), 0);
    let notice = w.events[0]
        .iter()
        .find_map(|e| match e {
            Event::RelayNotice(n) => Some(n.clone()),
            _ => None,
        })
        .expect("the sender was told");
    assert_eq!(
        notice.reason,
        videocall_types::NoticeReason::FrameTooLarge as i32
    );
    assert!(notice.message.contains("exceeds"), "{}", notice.message);
}

/// The final closes client `i` was told.
fn ended(w: &Net, i: usize) -> Vec<FinalClose> {
    w.events[i]
        .iter()
        .filter_map(|e| match e {
            Event::Ended(why) => Some(*why),
            _ => None,
        })
        .collect()
}

/// No attempt to connect again, however long we wait.
fn stays_closed(w: &mut Net, i: usize) {
    let before = w.events[i].len();
    w.run_for(Duration::from_secs(60));
    assert_eq!(w.clients[i].state(), ConnectionState::Closed);
    assert!(
        !w.events[i][before..]
            .iter()
            .any(|e| matches!(e, Event::Joined { .. } | Event::Disconnected { .. })),
        "{:?}",
        &w.events[i][before..]
    );
}

#[test]
fn a_removed_participant_is_told_why_and_does_not_reconnect() {
    let mut w = meeting(&["alice", "bob"]);
    let at = w.at();
    w.relay.handle_remove(
        at,
        &MeetingId::new("m1").unwrap(),
        &UserId::new("bob").unwrap(),
    );
    w.drive();
    w.run_for(Duration::from_millis(10));
    assert_eq!(ended(&w, 1), [FinalClose::Removed]);
    assert_eq!(w.clients[1].ended(), Some(FinalClose::Removed));
    assert!(w.clients[1].peers().is_empty());
    stays_closed(&mut w, 1);
    // Alice stays, and sees bob leave.
    assert!(ended(&w, 0).is_empty());
    assert!(matches!(
        w.clients[0].state(),
        ConnectionState::Joined { .. }
    ));
    assert!(w.clients[0].peers().is_empty());
}

#[test]
fn an_ended_meeting_ends_every_session_for_good() {
    let mut w = meeting(&["alice", "bob"]);
    let at = w.at();
    w.relay
        .handle_end_meeting(at, &MeetingId::new("m1").unwrap());
    w.drive();
    w.run_for(Duration::from_millis(10));
    for i in 0..2 {
        assert_eq!(ended(&w, i), [FinalClose::MeetingEnded]);
        stays_closed(&mut w, i);
    }
}

#[test]
fn a_session_replaced_by_a_newer_connection_of_its_user_does_not_take_it_back() {
    for close_codes_lost in [false, true] {
        // The in-band SESSION_REPLACED ends the older session even where the transport does
        // not show the close code (4012): a browser's WebTransport.
        replaced(close_codes_lost);
    }
}

fn replaced(close_codes_lost: bool) {
    let mut w = meeting(&["alice", "bob"]);
    w.close_codes_lost = close_codes_lost;
    let newer = w.add(session("alice"));
    w.run_for(Duration::from_millis(10));
    assert_eq!(ended(&w, 0), [FinalClose::Replaced]);
    stays_closed(&mut w, 0);
    assert!(matches!(
        w.clients[newer].state(),
        ConnectionState::Joined { .. }
    ));
    assert!(ended(&w, newer).is_empty());
}

#[test]
fn a_close_code_that_is_not_final_is_a_lost_connection_retried() {
    let mut s = session("alice");
    s.handle_start(Duration::ZERO);
    s.handle_connected(Duration::ZERO);
    let assigned = videocall_types::packets::encode(&videocall_types::packets::session_assigned(
        videocall_types::SessionId::new(1, 1),
    ));
    s.handle_packet(Duration::ZERO, assigned).unwrap();
    // Going away (1001: a node shutting down) and a policy close (1008) are retried.
    s.handle_closed(Duration::ZERO, 1001, "server shutting down");
    assert!(matches!(s.state(), ConnectionState::Backoff { .. }));
    assert_eq!(s.ended(), None);
    // A final code while connecting again ends it as well.
    s.handle_timeout(Duration::from_secs(1));
    assert!(matches!(s.state(), ConnectionState::Connecting { .. }));
    s.handle_closed(Duration::from_secs(1), 4011, "the meeting has ended");
    assert_eq!(s.state(), ConnectionState::Closed);
    assert_eq!(s.ended(), Some(FinalClose::MeetingEnded));
    assert_eq!(s.poll_timeout(), None);
}
