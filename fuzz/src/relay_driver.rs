//! Drives a [`Relay`] the way its node runtime does (outputs drained after every input, timers
//! run when due, written bytes reported) from fuzzer records, and checks what it says back.
//!
//! Actions build well-formed packets around the fuzzer's bytes (wrappers, SUBSCRIPTION lists of
//! real session ids, MEETING events on the bus, media of every class, bus subjects of a served
//! meeting, another meeting, directed at a local or remote session, or echoes of our own node)
//! so that inputs get past decoding, and raw bytes too. Invariants checked after every action:
//! every `Transmit` goes to a live session and is a `PacketWrapper`; every `Publish` is on a
//! `room.` subject of one of our sessions; `Subscribe`/`Unsubscribe` alternate per meeting and
//! match `meeting_count`; the live sessions match `session_count`; each session's queued bytes
//! equal what was handed out and not yet reported written.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_relay::{Metrics, Output, Relay, RelayConfig};
use videocall_types::{
    MediaPacket, MeetingId, MeetingPacket, PacketType, PacketWrapper, SYSTEM_USER_ID, SessionId,
    SubscriptionPacket, UserId, packets,
};

use crate::input::Reader;

/// Our node's id.
pub const NODE: u32 = 1;
/// Meetings the inputs refer to by index; the first is served from the start.
pub const MEETINGS: [&str; 3] = ["m0", "m1", "m2"];
/// Users the inputs refer to by index (the last is an odd but valid one).
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "zoë@example.com"];
/// Other nodes the bus inputs come from (the last is the largest 20-bit node id).
pub const REMOTE_NODES: [u32; 3] = [2, 3, 0xF_FFFF];
/// Sessions per remote node that inputs can name.
pub const REMOTE_SEQS: u32 = 8;

/// The actions of the client-input target, by tag.
pub const CLIENT_ACTIONS: &[Action] = &[
    Action::Join,
    Action::Leave,
    Action::InboundRaw,
    Action::InboundWrapped,
    Action::Subscribe,
    Action::Media,
    Action::Time,
    Action::Flush,
    Action::Transmitted,
];

/// The actions of the bus-input target, by tag. Local sessions publish too, so bus traffic meets
/// local fan-out, subscriptions and congestion.
pub const BUS_ACTIONS: &[Action] = &[
    Action::BusRaw,
    Action::BusWrapped,
    Action::BusEvent,
    Action::BusMedia,
    Action::Join,
    Action::Leave,
    Action::Subscribe,
    Action::Media,
    Action::Time,
    Action::Flush,
];

/// One thing the driver can do to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `meeting: u8, user: u8`: a new local session (taking PRESENCE digests when the user
    /// byte's top bit is set).
    Join,
    /// `session: u8`: a local session disconnects.
    Leave,
    /// `session: u8, bytes…`: anything a client can send.
    InboundRaw,
    /// `session: u8, packet_type: u8, claimed_session: u64, data…`: a wrapper around any data.
    InboundWrapped,
    /// `session: u8, all: u8, refs…`: a SUBSCRIPTION. Each ref byte `b`: `0xff` then a raw u64;
    /// else bit 6 picks the screen list and the low 6 bits a known session id.
    Subscribe,
    /// `session: u8, media_type: u8, key: u8, data…`: a MEDIA packet.
    Media,
    /// `ms: u16`: time passes (×8 ms, up to about 9 minutes).
    Time,
    /// `session: u8`: the session's socket wrote everything handed out.
    Flush,
    /// `session: u8, bytes: u32`: a (possibly wrong) written-bytes report.
    Transmitted,
    /// `subject: u8, origin: u8, target: u8, payload…`: a bus message of any payload.
    BusRaw,
    /// `subject: u8, origin: u8, target: u8, packet_type: u8, user: u8, data…`.
    BusWrapped,
    /// `subject: u8, origin: u8, target: u8, event: u8, user: u8, session: u8`: a MEETING
    /// event from another node's system identity.
    BusEvent,
    /// `subject: u8, origin: u8, target: u8, media_type: u8, key: u8, data…`.
    BusMedia,
}

/// The relay under test and everything the driver knows of it.
#[derive(Debug)]
pub struct Driver {
    relay: Relay,
    now: Instant,
    /// Every session ever joined, in order: inputs name them by index.
    joined: Vec<SessionId>,
    /// Local sessions not closed or left, with the bytes handed out and not reported written.
    live: HashMap<SessionId, usize>,
    /// Meetings we were asked to subscribe to.
    served: HashSet<MeetingId>,
}

impl Driver {
    /// A node with small limits (so inputs reach them) serving meeting `m0` with two sessions.
    pub fn new() -> Self {
        let relay = Relay::new(RelayConfig {
            node_id: NODE,
            max_frame_bytes: 16 * 1024,
            max_sessions_per_meeting: 6,
            max_meetings: 2,
            queue_video_bytes: 4096,
            queue_audio_headroom_bytes: 2048,
            queue_control_bytes: 4096,
            max_node_queued_bytes: 24 * 1024,
            max_inbound_bytes_per_sec: 64 * 1024,
            max_inbound_packets_per_sec: 50,
            max_control_bytes_per_sec: 16 * 1024,
            max_remote_per_meeting: 8,
            ..RelayConfig::default()
        });
        let mut driver = Self {
            relay,
            now: Instant::now(),
            joined: Vec::new(),
            live: HashMap::new(),
            served: HashSet::new(),
        };
        driver.join(0, 0);
        driver.join(0, 1);
        driver
    }

    /// Runs every record of `data` as one of `actions`; returns the relay's counters.
    pub fn run(data: &[u8], actions: &[Action]) -> Metrics {
        let mut driver = Self::new();
        let mut input = Reader::new(data);
        while let Some((tag, body)) = input.record() {
            driver.step(actions[tag as usize % actions.len()], body);
        }
        // Everyone leaves and every timer runs: the node forgets every meeting.
        for session in driver.joined.clone() {
            driver.relay.handle_leave(driver.now, session);
            driver.live.remove(&session);
        }
        driver.advance(Duration::from_secs(3600));
        assert_eq!(driver.relay.session_count(), 0);
        assert_eq!(
            driver.relay.meeting_count(),
            0,
            "meetings kept after all left"
        );
        driver.relay.metrics().clone()
    }

    fn step(&mut self, action: Action, mut r: Reader<'_>) {
        match action {
            Action::Join => {
                let (meeting, user) = (r.u8(), r.u8());
                self.join(meeting, user);
            }
            Action::Leave => {
                if let Some(s) = self.session(r.u8()) {
                    self.relay.handle_leave(self.now, s);
                    self.live.remove(&s);
                }
            }
            Action::InboundRaw => {
                let s = self.session(r.u8());
                self.inbound(s, Bytes::copy_from_slice(r.rest()));
            }
            Action::InboundWrapped => {
                let s = self.session(r.u8());
                let packet_type = i32::from(r.u8());
                let claimed = r.u64();
                let wrapper = PacketWrapper {
                    packet_type,
                    user_id: Bytes::from_static(b"mallory"),
                    data: Bytes::copy_from_slice(r.rest()),
                    session_id: claimed,
                };
                self.inbound(s, packets::encode(&wrapper));
            }
            Action::Subscribe => {
                let s = self.session(r.u8());
                let sub = self.subscription(&mut r);
                let wrapper = wrap(PacketType::Subscription as i32, b"", packets::encode(&sub));
                self.inbound(s, packets::encode(&wrapper));
            }
            Action::Media => {
                let s = self.session(r.u8());
                let media = media(&mut r);
                self.inbound(
                    s,
                    packets::encode(&wrap(PacketType::Media as i32, b"", media)),
                );
            }
            Action::Time => {
                let ms = u64::from(r.u16()) * 8;
                self.advance(Duration::from_millis(ms));
            }
            Action::Flush => {
                if let Some(s) = self.session(r.u8())
                    && let Some(queued) = self.live.get_mut(&s)
                {
                    let written = std::mem::take(queued);
                    self.relay.handle_transmitted(s, written);
                }
            }
            Action::Transmitted => {
                if let Some(s) = self.session(r.u8()) {
                    let n = r.u32() as usize;
                    self.relay.handle_transmitted(s, n);
                    if let Some(queued) = self.live.get_mut(&s) {
                        *queued = queued.saturating_sub(n);
                    }
                }
            }
            Action::BusRaw => {
                let subject = self.subject(&mut r);
                let payload = Bytes::copy_from_slice(r.rest());
                self.relay.handle_bus(self.now, &subject, payload);
            }
            Action::BusWrapped => {
                let subject = self.subject(&mut r);
                let packet_type = i32::from(r.u8());
                let user = user_bytes(r.u8());
                let wrapper = wrap(packet_type, &user, Bytes::copy_from_slice(r.rest()));
                self.relay
                    .handle_bus(self.now, &subject, packets::encode(&wrapper));
            }
            Action::BusEvent => {
                let subject = self.subject(&mut r);
                let event_type = i32::from(r.u8() % 9);
                let user = user_bytes(r.u8());
                let session = self.known_id(r.u8());
                let event = MeetingPacket {
                    event_type,
                    room_id: MEETINGS[0].into(),
                    participant_count: 2,
                    display_name: user.clone().into(),
                    target_user_id: user.into(),
                    session_id: session,
                    ..Default::default()
                };
                let wrapper = packets::meeting_event(&event);
                self.relay
                    .handle_bus(self.now, &subject, packets::encode(&wrapper));
            }
            Action::BusMedia => {
                let subject = self.subject(&mut r);
                let media = media(&mut r);
                let wrapper = wrap(PacketType::Media as i32, b"remote-user", media);
                self.relay
                    .handle_bus(self.now, &subject, packets::encode(&wrapper));
            }
        }
        self.drain();
    }

    fn join(&mut self, meeting: u8, user: u8) {
        let meeting = MeetingId::new(MEETINGS[meeting as usize % MEETINGS.len()])
            .expect("the fixed meeting ids are valid");
        // The top bit: a client that takes PRESENCE digests (heartbeats on change only).
        let presence = user & 0x80 != 0;
        let user =
            UserId::new(USERS[user as usize % USERS.len()]).expect("fixed user ids are valid");
        let join = videocall_relay::Join {
            presence,
            ..videocall_relay::Join::trusted(user, meeting)
        };
        if let Ok(s) = self.relay.handle_admit(self.now, join) {
            self.joined.push(s);
            self.live.insert(s, 0);
        }
        self.drain();
    }

    fn inbound(&mut self, session: Option<SessionId>, data: Bytes) {
        if let Some(s) = session {
            // Errors are the relay refusing hostile input, which is what it should do.
            let _ = self.relay.handle_inbound(self.now, s, data);
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        while let Some(at) = self.relay.poll_timeout() {
            if at > self.now {
                break;
            }
            self.relay.handle_timeout(self.now);
            self.drain();
        }
    }

    fn session(&self, index: u8) -> Option<SessionId> {
        if self.joined.is_empty() {
            return None;
        }
        Some(self.joined[index as usize % self.joined.len()])
    }

    /// A session id inputs can name by one byte: a local one (joined) or one of the remote pool.
    fn known_id(&self, index: u8) -> u64 {
        let index = index as usize;
        let remote = REMOTE_NODES.len() * REMOTE_SEQS as usize;
        if index.is_multiple_of(2) && !self.joined.is_empty() {
            return self.joined[(index / 2) % self.joined.len()].get();
        }
        remote_id((index / 2) % remote).get()
    }

    fn subscription(&self, r: &mut Reader<'_>) -> SubscriptionPacket {
        let mut sub = SubscriptionPacket {
            all: r.u8() & 1 == 1,
            ..Default::default()
        };
        while !r.is_empty() {
            let b = r.u8();
            let (id, screen) = if b == 0xff {
                let raw = r.u64();
                (raw, raw & 1 == 1)
            } else {
                (self.known_id(b & 0x3f), b & 0x40 != 0)
            };
            if screen {
                sub.screen.push(id);
            } else {
                sub.video.push(id);
            }
        }
        sub
    }

    /// A bus subject: `kind % 6` picks a served meeting, another meeting, a message directed at a
    /// local session, one directed at a remote session, an echo of our own node, or raw text
    /// (the rest of the body up to a NUL byte).
    fn subject(&self, r: &mut Reader<'_>) -> String {
        let (kind, origin, target) = (r.u8(), r.u8(), r.u8());
        let remote = REMOTE_NODES.len() * REMOTE_SEQS as usize;
        let origin = remote_id(origin as usize % remote);
        let served = MEETINGS[0];
        match kind % 6 {
            0 => format!("room.{served}.{origin}"),
            1 => format!("room.{}.{origin}", MEETINGS[1 + (kind as usize / 6) % 2]),
            2 => {
                let target = self.known_id(target & !1); // even: a local session
                format!("room.{served}.{origin}.{target}")
            }
            3 => {
                let target = remote_id(target as usize % remote);
                format!("room.{served}.{origin}.{target}")
            }
            4 => {
                let own = SessionId::new(NODE, u32::from(target));
                format!("room.{served}.{own}")
            }
            _ => {
                let rest = r.rest();
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                *r = Reader::new(rest.get(end + 1..).unwrap_or_default());
                String::from_utf8_lossy(&rest[..end]).into_owned()
            }
        }
    }

    /// Drains the outputs and checks them.
    fn drain(&mut self) {
        while let Some(output) = self.relay.poll_output() {
            match output {
                Output::Transmit { session, packet } => {
                    let queued = self
                        .live
                        .get_mut(&session)
                        .unwrap_or_else(|| panic!("Transmit to {session}, not a live session"));
                    *queued += packet.len();
                    PacketWrapper::decode(packet).expect("the relay transmits PacketWrappers");
                }
                Output::Publish { subject, packet } => {
                    let mut tokens = subject.split('.');
                    assert_eq!(tokens.next(), Some("room"), "{subject}");
                    let origin: u64 = tokens
                        .nth(1)
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_else(|| panic!("no origin in {subject}"));
                    let origin = SessionId::from_wire(origin).expect("origin is a session");
                    assert_eq!(origin.node(), NODE, "published as another node: {subject}");
                    PacketWrapper::decode(packet).expect("the relay publishes PacketWrappers");
                }
                Output::Subscribe { meeting, .. } => {
                    assert!(self.served.insert(meeting), "subscribed twice");
                }
                Output::Unsubscribe { meeting } => {
                    assert!(self.served.remove(&meeting), "unsubscribed, not subscribed");
                }
                Output::Close { session, .. } => {
                    assert!(self.live.remove(&session).is_some(), "closed twice");
                }
                _ => {}
            }
        }
        assert_eq!(self.served.len(), self.relay.meeting_count());
        assert_eq!(self.live.len(), self.relay.session_count());
        for (session, queued) in &self.live {
            let info = self.relay.session_info(*session).expect("live session");
            assert_eq!(info.queued_bytes, *queued, "queue accounting of {session}");
        }
        let node_queued: usize = self.live.values().sum();
        assert_eq!(
            self.relay.metrics().queued_bytes,
            node_queued as u64,
            "node-wide queue accounting"
        );
    }
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

/// Remote session number `index` of the pool.
pub fn remote_id(index: usize) -> SessionId {
    let node = REMOTE_NODES[index / REMOTE_SEQS as usize % REMOTE_NODES.len()];
    SessionId::new(node, 1 + index as u32 % REMOTE_SEQS)
}

/// User `index` as wire bytes; index 0xff is the system identity.
fn user_bytes(index: u8) -> Vec<u8> {
    if index == 0xff {
        SYSTEM_USER_ID.as_bytes().to_vec()
    } else {
        USERS[index as usize % USERS.len()].as_bytes().to_vec()
    }
}

fn wrap(packet_type: i32, user: &[u8], data: Bytes) -> PacketWrapper {
    PacketWrapper {
        packet_type,
        user_id: Bytes::copy_from_slice(user),
        data,
        session_id: 0,
    }
}

/// `media_type: u8, key: u8, data…` as an encoded MediaPacket.
fn media(r: &mut Reader<'_>) -> Bytes {
    let media_type = i32::from(r.u8() % 8);
    let frame_type = if r.u8() & 1 == 1 { "key" } else { "delta" };
    packets::encode(&MediaPacket {
        media_type,
        frame_type: frame_type.into(),
        data: Bytes::copy_from_slice(r.rest()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The seeds get where the targets are meant to go (a driver bug, such as bus messages from
    // our own node id, would make these fail).

    #[test]
    fn the_congestion_seed_congests() {
        let m = Driver::run(
            include_bytes!("../corpus/relay_client/congestion"),
            CLIENT_ACTIONS,
        );
        assert!(m.congestion_signals >= 1, "{m:?}");
        assert!(m.keyframe_requests_sent >= 1, "{m:?}");
    }

    #[test]
    fn the_remote_peer_seed_is_heard_from_another_node() {
        let m = Driver::run(
            include_bytes!("../corpus/relay_bus/remote_peer"),
            BUS_ACTIONS,
        );
        // Two local joins (alice, bob), the roster reply to the remote joiner, our local
        // leaves. The seed's remote joiner is a user "bob" too: since the graceful drain that
        // is bob moving to the other node, so his session here is not announced to it again.
        assert!(m.bus_published >= 5, "{m:?}");
        assert_eq!(m.bus_received, 5, "{m:?}");
    }
}
