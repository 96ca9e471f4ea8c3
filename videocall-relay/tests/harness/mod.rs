//! A deterministic cluster of relay nodes joined by an in-memory bus, with a virtual clock:
//! the quinn `Pair` idea for many nodes. `drive()` runs every output to quiescence.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_relay::{CloseReason, Output, Relay, RelayConfig};
use videocall_types::{
    MediaPacket, MediaType, MeetingId, MeetingPacket, PacketType, PacketWrapper, SessionId, UserId,
};

/// One packet a session received, with the virtual time it was handed to its socket.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub raw: Bytes,
    pub wrapper: PacketWrapper,
}

impl Received {
    pub fn packet_type(&self) -> PacketType {
        PacketType::try_from(self.wrapper.packet_type).unwrap()
    }
    pub fn media(&self) -> Option<MediaPacket> {
        (self.packet_type() == PacketType::Media)
            .then(|| MediaPacket::decode(self.wrapper.data.clone()).unwrap())
    }
    pub fn meeting_event(&self) -> Option<MeetingPacket> {
        (self.packet_type() == PacketType::Meeting)
            .then(|| MeetingPacket::decode(self.wrapper.data.clone()).unwrap())
    }
}

pub struct Cluster {
    pub now: Instant,
    pub nodes: Vec<Relay>,
    subscriptions: Vec<HashSet<String>>,
    bus: VecDeque<(usize, String, Bytes)>,
    pub node_of: HashMap<SessionId, usize>,
    pub received: HashMap<SessionId, Vec<Received>>,
    /// Sessions whose socket never drains (their queue only grows).
    pub stalled: HashSet<SessionId>,
    pub closed: Vec<(SessionId, CloseReason)>,
    pub bus_messages: usize,
}

impl Cluster {
    pub fn new(nodes: usize, config: RelayConfig) -> Self {
        let nodes = (0..nodes)
            .map(|i| {
                Relay::new(RelayConfig {
                    node_id: i as u32 + 1,
                    ..config.clone()
                })
            })
            .collect::<Vec<_>>();
        Self {
            now: Instant::now(),
            subscriptions: vec![HashSet::new(); nodes.len()],
            nodes,
            bus: VecDeque::new(),
            node_of: HashMap::new(),
            received: HashMap::new(),
            stalled: HashSet::new(),
            closed: Vec::new(),
            bus_messages: 0,
        }
    }

    pub fn join(&mut self, node: usize, user: &str, meeting: &str) -> SessionId {
        let id = self.nodes[node]
            .handle_join(
                self.now,
                UserId::new(user).unwrap(),
                MeetingId::new(meeting).unwrap(),
            )
            .expect("join within limits");
        self.node_of.insert(id, node);
        self.received.entry(id).or_default();
        self.drive();
        id
    }

    /// Admits `join` on `node` (see `Relay::handle_admit`).
    pub fn admit(
        &mut self,
        node: usize,
        join: videocall_relay::Join,
    ) -> Result<SessionId, videocall_relay::JoinError> {
        let id = self.nodes[node].handle_admit(self.now, join)?;
        self.node_of.insert(id, node);
        self.received.entry(id).or_default();
        self.drive();
        Ok(id)
    }

    pub fn leave(&mut self, session: SessionId) {
        let node = self.node_of[&session];
        self.nodes[node].handle_leave(self.now, session);
        self.drive();
    }

    /// Sends an encoded wrapper from `session`; returns the relay's verdict.
    pub fn send(
        &mut self,
        session: SessionId,
        bytes: Bytes,
    ) -> Result<(), videocall_relay::InboundError> {
        let node = self.node_of[&session];
        let result = self.nodes[node].handle_inbound(self.now, session, bytes);
        self.drive();
        result
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for node in &mut self.nodes {
            node.handle_timeout(self.now);
        }
        self.drive();
    }

    /// Lets a stalled session's socket write everything it was given so far.
    pub fn drain(&mut self, session: SessionId) {
        let node = self.node_of[&session];
        let queued = self.nodes[node]
            .session_info(session)
            .map(|i| i.queued_bytes)
            .unwrap_or(0);
        self.nodes[node].handle_transmitted(session, queued);
    }

    /// Runs outputs and bus deliveries until nothing moves (bounded, to catch livelock).
    pub fn drive(&mut self) {
        for _round in 0..10_000 {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(output) = self.nodes[n].poll_output() {
                    moved = true;
                    self.carry_out(n, output);
                }
            }
            while let Some((to, subject, payload)) = self.bus.pop_front() {
                moved = true;
                self.nodes[to].handle_bus(self.now, &subject, payload);
            }
            if !moved {
                return;
            }
        }
        panic!("the cluster did not settle: livelock");
    }

    fn carry_out(&mut self, node: usize, output: Output) {
        match output {
            Output::Transmit { session, packet } => {
                let wrapper = PacketWrapper::decode(packet.clone()).expect("relay sends wrappers");
                self.received.entry(session).or_default().push(Received {
                    at: self.now,
                    raw: packet.clone(),
                    wrapper,
                });
                if !self.stalled.contains(&session) {
                    self.nodes[node].handle_transmitted(session, packet.len());
                }
            }
            Output::Publish { subject, packet } => {
                self.bus_messages += 1;
                let meeting = subject.split('.').nth(1).unwrap().to_owned();
                for other in 0..self.nodes.len() {
                    // The bus does not echo a node's own publications (NATS `no_echo`).
                    if other != node && self.subscriptions[other].contains(&meeting) {
                        self.bus
                            .push_back((other, subject.to_string(), packet.clone()));
                    }
                }
            }
            Output::Subscribe { meeting, subject } => {
                assert_eq!(subject, format!("room.{meeting}.>"));
                assert!(
                    self.subscriptions[node].insert(meeting.to_string()),
                    "one subscription per meeting"
                );
            }
            Output::Unsubscribe { meeting } => {
                assert!(self.subscriptions[node].remove(meeting.as_str()));
            }
            Output::Close { session, reason } => self.closed.push((session, reason)),
            other => panic!("unexpected output {other:?}"),
        }
    }

    pub fn subscribed(&self, node: usize, meeting: &str) -> bool {
        self.subscriptions[node].contains(meeting)
    }

    /// Media packets `session` received, in order.
    pub fn media(&self, session: SessionId) -> Vec<(Received, MediaPacket)> {
        self.received[&session]
            .iter()
            .filter_map(|r| r.media().map(|m| (r.clone(), m)))
            .collect()
    }

    /// Meeting events `session` received, in order.
    pub fn events(&self, session: SessionId) -> Vec<MeetingPacket> {
        self.received[&session]
            .iter()
            .filter_map(Received::meeting_event)
            .collect()
    }

    pub fn of_type(&self, session: SessionId, t: PacketType) -> Vec<Received> {
        self.received[&session]
            .iter()
            .filter(|r| r.packet_type() == t)
            .cloned()
            .collect()
    }
}

/// An encoded MEDIA wrapper whose identity fields claim to be someone else.
pub fn media(media_type: MediaType, frame_type: &str, payload: Vec<u8>) -> Bytes {
    let media = MediaPacket {
        media_type: media_type as i32,
        user_id: Bytes::from_static(b"forged"),
        frame_type: frame_type.into(),
        data: payload.into(),
        ..Default::default()
    };
    wrapper(PacketType::Media, media.encode_to_vec())
}

pub fn wrapper(packet_type: PacketType, data: Vec<u8>) -> Bytes {
    PacketWrapper {
        packet_type: packet_type as i32,
        user_id: Bytes::from_static(b"mallory"),
        data: data.into(),
        session_id: 999,
    }
    .encode_to_vec()
    .into()
}
