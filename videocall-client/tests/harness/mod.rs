//! A meeting in memory: client sessions and the real relay core (`videocall-relay`, sans-IO),
//! joined by links that lose and delay packets, on a virtual clock that jumps straight to the
//! next thing due (a session's or the relay's `poll_timeout`, or a packet's arrival), as
//! str0m's and quinn's test pairs do. No sockets, no sleeps, deterministic for a seed.
//!
//! The network model: the transports are reliable streams, so control (joins, keys, meeting
//! events, heartbeats) arrives, in order, after `delay`; media (video, audio, screen) is what a
//! relay or a datagram path may lose (`media_loss`) and what per-packet WebTransport streams
//! may reorder (`delay` + up to `jitter`). A relay that closes a session closes its link after
//! what it sent before (with the close code a transport carries); a relay that is down
//! (`up` false) refuses every connection.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use videocall_client::e2ee::Identity;
use videocall_client::{Action, Event, Session};
use videocall_relay::{CloseReason, Join, Output, Relay, RelayConfig};
use videocall_types::{MediaPacket, MediaType, PacketType, PacketWrapper, SessionId};

/// What the links between the clients and the relay do to packets (both directions).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Conditions {
    /// Share of media packets lost, 0..1.
    pub(crate) media_loss: f64,
    /// One-way delay of every packet.
    pub(crate) delay: Duration,
    /// Extra delay of a media packet, uniform in 0..jitter (media may overtake media).
    pub(crate) jitter: Duration,
}

/// A packet on its way.
struct Hop {
    client: usize,
    /// The connection it belongs to: packets of a closed one are dropped.
    link: u64,
    up: bool,
    what: Carried,
}

/// What a hop carries.
enum Carried {
    Packet(Bytes),
    /// The relay closed the connection (down only), after every packet before it.
    Close(CloseReason),
}

/// Client sessions and one relay node.
pub(crate) struct Net {
    start: Instant,
    /// Virtual time since the start.
    pub(crate) now: Duration,
    pub(crate) relay: Relay,
    pub(crate) clients: Vec<Session>,
    /// Every event each client's session told.
    pub(crate) events: Vec<Vec<Event>>,
    pub(crate) conditions: Conditions,
    /// Whether the relay accepts connections (false: every attempt is refused).
    pub(crate) up: bool,
    /// Whether a close reaches the client without its code (a browser's WebTransport): the
    /// session only hears that the connection ended.
    pub(crate) close_codes_lost: bool,
    /// Client → (its connection's number, its relay session).
    links: HashMap<usize, (u64, SessionId)>,
    next_link: u64,
    /// (arrival, order) → hop.
    in_flight: BinaryHeap<Reverse<(Duration, u64)>>,
    hops: HashMap<u64, Hop>,
    next_hop: u64,
    /// Per (client, up): the arrival of the last control packet, which the next may not pass.
    last_control: HashMap<(usize, bool), Duration>,
    rng: ChaCha8Rng,
    /// Media packets the model lost.
    pub(crate) lost: u64,
    /// Every packet the relay handed to a transport (what a relay operator could record).
    pub(crate) forwarded: Vec<Bytes>,
    /// Clients whose private key is held outside their session (`Identity::external`, as in the
    /// browser): the key the "outside" unwraps with, and whether its unwraps fail.
    pub(crate) outside: HashMap<usize, (Identity, bool)>,
    /// Joins say the meeting is end-to-end encrypted (as a room token's claim does).
    pub(crate) e2ee_meeting: bool,
    /// Users joining with the host grant.
    pub(crate) hosts: Vec<String>,
}

impl Net {
    /// An empty meeting under `conditions`; `seed` makes the losses repeatable.
    pub(crate) fn new(conditions: Conditions, seed: u64) -> Self {
        Self {
            start: Instant::now(),
            now: Duration::ZERO,
            relay: Relay::new(RelayConfig::default()),
            clients: Vec::new(),
            events: Vec::new(),
            conditions,
            up: true,
            close_codes_lost: false,
            links: HashMap::new(),
            next_link: 0,
            in_flight: BinaryHeap::new(),
            hops: HashMap::new(),
            next_hop: 0,
            last_control: HashMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            lost: 0,
            forwarded: Vec::new(),
            outside: HashMap::new(),
            e2ee_meeting: false,
            hosts: Vec::new(),
        }
    }

    /// The relay's clock now.
    pub(crate) fn at(&self) -> Instant {
        self.start + self.now
    }

    /// Adds `session` and starts it; returns its index.
    pub(crate) fn add(&mut self, mut session: Session) -> usize {
        session.handle_start(self.now);
        self.clients.push(session);
        self.events.push(Vec::new());
        self.drive();
        self.clients.len() - 1
    }

    /// Runs until `until`, jumping from one due thing to the next.
    pub(crate) fn run_until(&mut self, until: Duration) {
        for _ in 0..1_000_000 {
            self.drive();
            let next = self.next_due().map_or(until, |t| t.min(until));
            if next >= until && self.now >= until {
                return;
            }
            self.now = next.max(self.now);
            self.deliver_due();
            let at = self.at();
            self.relay.handle_timeout(at);
            for session in &mut self.clients {
                if session.poll_timeout().is_some_and(|t| t <= self.now) {
                    session.handle_timeout(self.now);
                }
            }
            if self.now >= until {
                self.drive();
                return;
            }
        }
        panic!("livelock: a million steps before {until:?}");
    }

    /// Runs for `by` more.
    pub(crate) fn run_for(&mut self, by: Duration) {
        self.run_until(self.now + by);
    }

    /// The earliest timer or arrival.
    fn next_due(&self) -> Option<Duration> {
        let sessions = self.clients.iter().filter_map(Session::poll_timeout);
        let relay = self
            .relay
            .poll_timeout()
            .map(|at| at.saturating_duration_since(self.start));
        let arrival = self.in_flight.peek().map(|Reverse((at, _))| *at);
        sessions.chain(relay).chain(arrival).min()
    }

    fn deliver_due(&mut self) {
        while let Some(Reverse((at, id))) = self.in_flight.peek().copied() {
            if at > self.now {
                return;
            }
            self.in_flight.pop();
            let hop = self.hops.remove(&id).expect("every queued hop is stored");
            let Some(&(link, session)) = self.links.get(&hop.client) else {
                continue;
            };
            if link != hop.link {
                continue;
            }
            match (hop.up, hop.what) {
                (true, Carried::Packet(bytes)) => {
                    let at = self.at();
                    let _ = self.relay.handle_inbound(at, session, bytes);
                }
                (false, Carried::Packet(bytes)) => {
                    // What the relay sends decodes: a failure here is a bug worth a panic.
                    self.clients[hop.client]
                        .handle_packet(self.now, bytes)
                        .expect("the relay sends packets the session reads");
                }
                (_, Carried::Close(reason)) => {
                    self.links.remove(&hop.client);
                    let code = u32::from(reason.close_code());
                    let client = &mut self.clients[hop.client];
                    if self.close_codes_lost {
                        client.handle_disconnected(self.now, "connection closed");
                    } else {
                        client.handle_closed(self.now, code, reason.as_str());
                    }
                }
            }
        }
    }

    /// Puts a packet on the wire, or loses it.
    fn send(&mut self, client: usize, up: bool, what: Carried) {
        let Some(&(link, _)) = self.links.get(&client) else {
            return;
        };
        let c = self.conditions;
        let at = if matches!(&what, Carried::Packet(bytes) if is_media(bytes)) {
            if (self.rng.next_u32() as f64 / u32::MAX as f64) < c.media_loss {
                self.lost += 1;
                return;
            }
            let jitter = c
                .jitter
                .mul_f64(self.rng.next_u32() as f64 / u32::MAX as f64);
            self.now + c.delay + jitter
        } else {
            let last = self.last_control.entry((client, up)).or_default();
            *last = (self.now + c.delay).max(*last);
            *last
        };
        let id = self.next_hop;
        self.next_hop += 1;
        self.hops.insert(
            id,
            Hop {
                client,
                link,
                up,
                what,
            },
        );
        self.in_flight.push(Reverse((at, id)));
    }

    /// Carries out what is due now (actions, packets to send and those arriving now, events)
    /// until nothing moves: on links without delay, a whole exchange happens at one instant.
    pub(crate) fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            if self
                .in_flight
                .peek()
                .is_some_and(|Reverse((at, _))| *at <= self.now)
            {
                moved = true;
                self.deliver_due();
            }
            for i in 0..self.clients.len() {
                while let Some(action) = self.clients[i].poll_action() {
                    moved = true;
                    match action {
                        Action::Connect { .. } if !self.up => {
                            self.clients[i].handle_disconnected(self.now, "connection refused");
                        }
                        Action::Connect { .. } => {
                            let user = self.clients[i].config().user_id.clone();
                            let meeting = self.clients[i].config().meeting_id.clone();
                            // What the relays' gatekeeper reads off the session path.
                            let path = self.clients[i].lobby_path().to_string();
                            let join = Join {
                                presence: path.contains("presence=1"),
                                ..Join::trusted(user, meeting)
                            };
                            let at = self.at();
                            let mut join = join;
                            join.e2ee = self.e2ee_meeting;
                            join.grants.host = self.hosts.iter().any(|h| h == join.user.as_str());
                            let id = self.relay.handle_admit(at, join).expect("joins");
                            self.next_link += 1;
                            self.links.insert(i, (self.next_link, id));
                            self.clients[i].handle_connected(self.now);
                        }
                        Action::Close => {
                            if let Some((_, id)) = self.links.remove(&i) {
                                let at = self.at();
                                self.relay.handle_leave(at, id);
                            }
                        }
                    }
                }
                while let Some(request) = self.clients[i].poll_unwrap() {
                    moved = true;
                    let (private, fail) = self.outside.get(&i).expect("only external keys ask");
                    let secret = private.unwrap(&mut self.rng, &request.wrapped).ok();
                    let secret = secret.filter(|_| !fail);
                    let secret = secret.as_ref().map(|s| &s[..]);
                    let _ = self.clients[i].handle_unwrapped(self.now, &request, secret);
                }
                while let Some(bytes) = self.clients[i].poll_transmit() {
                    moved = true;
                    self.send(i, true, Carried::Packet(bytes));
                }
                while let Some(event) = self.clients[i].poll_event() {
                    self.events[i].push(event);
                }
            }
            while let Some(output) = self.relay.poll_output() {
                moved = true;
                let (session, what) = match output {
                    Output::Transmit { session, packet } => {
                        self.relay.handle_transmitted(session, packet.len());
                        self.forwarded.push(packet.clone());
                        (session, Carried::Packet(packet))
                    }
                    Output::Close { session, reason } => (session, Carried::Close(reason)),
                    _ => continue,
                };
                if let Some(client) = self.client_of(session) {
                    self.send(client, false, what);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("livelock in drive");
    }
}

impl Net {
    /// The client whose connection is relay session `session`.
    fn client_of(&self, session: SessionId) -> Option<usize> {
        self.links
            .iter()
            .find(|(_, (_, s))| *s == session)
            .map(|(c, _)| *c)
    }

    /// The relay drops every connection at once (it restarted); each client hears it at once.
    pub(crate) fn drop_all(&mut self) {
        for (i, (_, id)) in std::mem::take(&mut self.links) {
            let at = self.at();
            self.relay.handle_leave(at, id);
            self.clients[i].handle_disconnected(self.now, "connection reset");
        }
        self.drive();
    }

    /// How many `media_type` packets client `i` received from `user`.
    pub(crate) fn media_from(&self, i: usize, user: &str, media_type: MediaType) -> usize {
        self.events[i]
            .iter()
            .filter(|e| {
                matches!(e, Event::Media(m) if m.user == user && m.packet.media_type == media_type as i32)
            })
            .count()
    }
}

/// Video, audio and screen: what the model may lose and reorder.
fn is_media(bytes: &Bytes) -> bool {
    let Ok(wrapper) = PacketWrapper::decode(bytes.clone()) else {
        return false;
    };
    if wrapper.packet_type != PacketType::Media as i32 {
        return false;
    }
    MediaPacket::decode(wrapper.data).is_ok_and(|m| {
        matches!(
            MediaType::try_from(m.media_type),
            Ok(MediaType::Video | MediaType::Audio | MediaType::Screen)
        )
    })
}
