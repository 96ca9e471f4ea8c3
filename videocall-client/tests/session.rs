//! Client sessions driven against the real relay core, in memory, with a virtual clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_client::{
    Action, ClientConfig, ConnectionState, Event, RECONNECT_BACKOFF, Session, SessionError,
};
use videocall_relay::{Output, Relay, RelayConfig};
use videocall_types::{HeartbeatMetadata, MediaPacket, MediaType, MeetingId, SessionId, UserId};

/// One relay and several clients; `up` says whether the relay accepts connections.
struct World {
    start: Instant,
    now: Duration,
    relay: Relay,
    clients: Vec<Session>,
    links: HashMap<usize, SessionId>,
    up: bool,
    events: Vec<Vec<Event>>,
}

impl World {
    fn new(users: &[&str]) -> Self {
        let clients = users
            .iter()
            .map(|u| {
                Session::new(ClientConfig::new(
                    UserId::new(*u).unwrap(),
                    MeetingId::new("m1").unwrap(),
                ))
            })
            .collect::<Vec<_>>();
        Self {
            start: Instant::now(),
            now: Duration::ZERO,
            relay: Relay::new(RelayConfig::default()),
            events: vec![Vec::new(); clients.len()],
            clients,
            links: HashMap::new(),
            up: true,
        }
    }

    fn at(&self) -> Instant {
        self.start + self.now
    }

    fn start(&mut self, i: usize) {
        self.clients[i].handle_start(self.now);
        self.drive();
    }

    /// Moves time forward in 10 ms steps, firing every timer.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let at = self.at();
            self.relay.handle_timeout(at);
            for c in &mut self.clients {
                c.handle_timeout(self.now);
            }
            self.drive();
        }
    }

    fn drive(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(action) = self.clients[i].poll_action() {
                    moved = true;
                    match action {
                        Action::Connect { .. } if self.up => {
                            let user = self.clients[i].config().user_id.clone();
                            let meeting = self.clients[i].config().meeting_id.clone();
                            let id = self.relay.handle_join(self.at(), user, meeting).unwrap();
                            self.links.insert(i, id);
                            self.clients[i].handle_connected(self.now);
                        }
                        Action::Connect { .. } => {
                            self.clients[i].handle_disconnected(self.now, "connection refused")
                        }
                        Action::Close => {
                            if let Some(id) = self.links.remove(&i) {
                                self.relay.handle_leave(self.at(), id);
                            }
                        }
                    }
                }
                while let Some(bytes) = self.clients[i].poll_transmit() {
                    moved = true;
                    if let Some(id) = self.links.get(&i) {
                        let _ = self.relay.handle_inbound(self.at(), *id, bytes);
                    }
                }
                while let Some(event) = self.clients[i].poll_event() {
                    self.events[i].push(event);
                }
            }
            while let Some(output) = self.relay.poll_output() {
                moved = true;
                if let Output::Transmit { session, packet } = output {
                    self.relay.handle_transmitted(session, packet.len());
                    if let Some((&i, _)) = self.links.iter().find(|(_, s)| **s == session) {
                        self.clients[i].handle_packet(self.now, packet).unwrap();
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("livelock");
    }

    /// The relay drops every connection (it restarted).
    fn drop_all(&mut self) {
        for (i, id) in std::mem::take(&mut self.links) {
            self.relay.handle_leave(self.at(), id);
            self.clients[i].handle_disconnected(self.now, "connection reset");
        }
        self.drive();
    }

    fn media_from(&self, i: usize, user: &str, t: MediaType) -> usize {
        self.events[i]
            .iter()
            .filter(|e| matches!(e, Event::Media(m) if m.user == user && m.packet.media_type == t as i32))
            .count()
    }
}

#[test]
fn two_clients_join_see_each_other_and_exchange_media() {
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    w.start(1);
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
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    w.start(1);
    w.clients[0].set_heartbeat(HeartbeatMetadata {
        video_enabled: true,
        ..Default::default()
    });
    w.advance(Duration::from_millis(5_000));
    let beats = w.media_from(1, "alice", MediaType::Heartbeat);
    assert!((5..=7).contains(&beats), "{beats} heartbeats in 5 s");
    let rtts = w.events[0]
        .iter()
        .filter(|e| matches!(e, Event::Rtt(_)))
        .count();
    assert!(rtts >= 5, "{rtts} RTT samples");
    // The relay never closed anyone for idleness: heartbeats keep the session alive.
    w.advance(Duration::from_secs(40));
    assert!(matches!(
        w.clients[1].state(),
        ConnectionState::Joined { .. }
    ));
}

#[test]
fn a_keyframe_request_reaches_only_the_named_peer() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    for i in 0..3 {
        w.start(i);
    }
    w.clients[1].request_keyframe(w.now, "alice").unwrap();
    w.clients[1].request_keyframe(w.now, "alice").unwrap(); // throttled, not an error
    w.drive();
    let asked = |w: &World, i: usize| {
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
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    w.start(1);
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
            w.advance(wait + Duration::from_millis(20));
            assert!(w.events[0].len() > before, "no new attempt after {wait:?}");
            wait
        })
        .collect();
    assert_eq!(&retries[..4], &RECONNECT_BACKOFF);
    assert_eq!(retries[5], Duration::from_secs(30));
    w.up = true;
    w.advance(Duration::from_secs(31));
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
    let mut w = World::new(&["alice", "bob"]);
    w.start(0);
    w.start(1);
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
