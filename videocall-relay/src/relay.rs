//! The relay state machine: meetings, sessions, fan-out, congestion, timers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    MeetingEventType, MeetingId, MeetingPacket, PacketType, PacketWrapper, SYSTEM_USER_ID,
    SessionId, SubscriptionPacket, UserId, packets,
};

use crate::classify::{Class, classify};
use crate::config::{CONGESTION_PER_SEC, KEYFRAME_REQUESTS_PER_SEC, RelayConfig};
use crate::error::{InboundError, JoinError};
use crate::limit::{TokenBucket, WindowLimit};
use crate::metrics::{DropReason, Metrics};
use crate::subject;

const SECOND: Duration = Duration::from_secs(1);

/// What the relay asks its driver to do. Drain with [`Relay::poll_output`] after every input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Write `packet` to the socket of local session `session`, then report the bytes written
    /// with [`Relay::handle_transmitted`].
    Transmit {
        /// The receiving session.
        session: SessionId,
        /// One encoded `PacketWrapper`; refcounted, shared by every receiver.
        packet: Bytes,
    },
    /// Publish `packet` on the bus.
    Publish {
        /// `room.<meeting>.<origin>` or `room.<meeting>.<origin>.<target>`.
        subject: Arc<str>,
        /// One encoded, identity-stamped `PacketWrapper`.
        packet: Bytes,
    },
    /// Start receiving bus messages on `subject` (the node serves a new meeting) and feed them
    /// to [`Relay::handle_bus`].
    Subscribe {
        /// The meeting.
        meeting: MeetingId,
        /// `room.<meeting>.>`.
        subject: String,
    },
    /// Stop receiving the meeting's bus messages.
    Unsubscribe {
        /// The meeting.
        meeting: MeetingId,
    },
    /// Close local session `session`; the relay has already forgotten it.
    Close {
        /// The session.
        session: SessionId,
        /// Why.
        reason: CloseReason,
    },
}

/// Why the relay closes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Nothing received for `idle_timeout`.
    IdleTimeout,
}

impl CloseReason {
    /// Text for a close frame or log line.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle timeout",
        }
    }
}

/// A snapshot of one local session, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its user.
    pub user: UserId,
    /// Its meeting.
    pub meeting: MeetingId,
    /// Bytes handed out in `Transmit` and not yet reported written.
    pub queued_bytes: usize,
    /// Streams (publisher, is-screen) it waits a keyframe for.
    pub skipping: Vec<(SessionId, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Idle(SessionId),
    Leave,
    RemoteExpiry,
}

#[derive(Debug)]
struct Subscription {
    video: Vec<u64>,
    screen: Vec<u64>,
}

impl Subscription {
    fn wants(&self, publisher: SessionId, screen: bool) -> bool {
        let list = if screen { &self.screen } else { &self.video };
        list.binary_search(&publisher.get()).is_ok()
    }
}

#[derive(Debug)]
struct Session {
    user: UserId,
    user_bytes: Bytes,
    meeting: MeetingId,
    subject: Arc<str>,
    last_inbound: Instant,
    queued: usize,
    skipping: Vec<(SessionId, bool)>,
    subscription: Option<Subscription>,
    keyframe_requests: WindowLimit<KEYFRAME_REQUESTS_PER_SEC>,
    inbound_bytes: TokenBucket,
    inbound_packets: TokenBucket,
}

/// What happened to one packet offered to one receiver.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Queued,
    /// Not subscribed to this publisher's video.
    Filtered,
    /// Dropped; the publisher should hear of congestion and (for video) send a keyframe.
    Dropped {
        congestion: bool,
        want_keyframe: bool,
    },
}

impl Session {
    /// Applies the congestion policy to one packet for this receiver and queues it if it passes.
    #[allow(clippy::too_many_arguments)] // disjoint borrows of the relay's fields
    fn offer(
        &mut self,
        me: SessionId,
        publisher: SessionId,
        packet: &Bytes,
        class: Class,
        config: &RelayConfig,
        metrics: &mut Metrics,
        outputs: &mut VecDeque<Output>,
    ) -> Verdict {
        let verdict = self.admit(publisher, packet.len(), class, config, metrics);
        if verdict == Verdict::Queued {
            outputs.push_back(Output::Transmit {
                session: me,
                packet: packet.clone(),
            });
        }
        verdict
    }

    /// The congestion policy: whether `len` more bytes of `class` from `publisher` fit.
    fn admit(
        &mut self,
        publisher: SessionId,
        len: usize,
        class: Class,
        config: &RelayConfig,
        metrics: &mut Metrics,
    ) -> Verdict {
        let video_room = self.queued + len <= config.queue_video_bytes;
        match class {
            Class::Video { screen, key } => {
                if let Some(sub) = &self.subscription
                    && !sub.wants(publisher, screen)
                {
                    return Verdict::Filtered;
                }
                let stream = (publisher, screen);
                let skipping = self.skipping.iter().position(|s| *s == stream);
                if let Some(at) = skipping {
                    if !key {
                        metrics.drop(DropReason::SkipToKeyframe);
                        return Verdict::Dropped {
                            congestion: false,
                            want_keyframe: false,
                        };
                    }
                    if video_room {
                        self.skipping.swap_remove(at);
                    }
                }
                if !video_room {
                    metrics.drop(DropReason::Congestion);
                    if skipping.is_none() {
                        self.skipping.push(stream);
                    }
                    return Verdict::Dropped {
                        congestion: true,
                        want_keyframe: true,
                    };
                }
            }
            Class::Opaque => {
                if !video_room {
                    metrics.drop(DropReason::Congestion);
                    return Verdict::Dropped {
                        congestion: true,
                        want_keyframe: false,
                    };
                }
            }
            Class::Audio | Class::Control | Class::KeyframeRequest | Class::Rtt => {
                let cap = config.queue_video_bytes + config.queue_control_headroom_bytes;
                if self.queued + len > cap {
                    // Not reported to the sender: its audio or control is not what fills the
                    // queue, the receiver has simply stopped reading.
                    metrics.drop(DropReason::QueueOverflow);
                    return Verdict::Dropped {
                        congestion: false,
                        want_keyframe: false,
                    };
                }
            }
        }
        self.queued += len;
        metrics.packets_out += 1;
        metrics.bytes_out += len as u64;
        Verdict::Queued
    }
}

#[derive(Debug)]
struct RemotePeer {
    user: Bytes,
    last_seen: Instant,
}

#[derive(Debug)]
struct PendingLeave {
    session: SessionId,
    user: Bytes,
    due: Instant,
}

#[derive(Debug)]
struct Meeting {
    id: MeetingId,
    /// Local sessions in join order.
    local: Vec<SessionId>,
    /// Sessions on other nodes, learnt from the bus.
    remote: HashMap<SessionId, RemotePeer>,
    remote_timer_armed: bool,
    pending_leaves: Vec<PendingLeave>,
}

impl Meeting {
    fn participant_count(&self) -> i64 {
        (self.local.len() + self.remote.len()) as i64
    }
}

/// One relay node's meetings and sessions. See the crate docs for the run loop.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    next_seq: u32,
    sessions: HashMap<SessionId, Session>,
    meetings: HashMap<MeetingId, Meeting>,
    timers: BinaryHeap<Reverse<(Instant, Timer, Option<MeetingId>)>>,
    outputs: VecDeque<Output>,
    metrics: Metrics,
    /// Publisher → CONGESTION signals recently sent to it.
    congestion_sent: HashMap<SessionId, WindowLimit<CONGESTION_PER_SEC>>,
    /// Publisher → KEYFRAME_REQUESTs the relay recently sent it.
    keyframes_asked: HashMap<SessionId, WindowLimit<KEYFRAME_REQUESTS_PER_SEC>>,
}

impl Relay {
    /// A node with no sessions.
    pub fn new(config: RelayConfig) -> Self {
        Self {
            config,
            next_seq: 1,
            sessions: HashMap::new(),
            meetings: HashMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            metrics: Metrics::default(),
            congestion_sent: HashMap::new(),
            keyframes_asked: HashMap::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Counters since start.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Local sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Meetings served.
    pub fn meeting_count(&self) -> usize {
        self.meetings.len()
    }

    /// Appends the node's metrics in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics
            .render_prometheus(self.sessions.len(), self.meetings.len(), out);
    }

    /// A snapshot of a local session.
    pub fn session_info(&self, session: SessionId) -> Option<SessionInfo> {
        self.sessions.get(&session).map(|s| SessionInfo {
            user: s.user.clone(),
            meeting: s.meeting.clone(),
            queued_bytes: s.queued,
            skipping: s.skipping.clone(),
        })
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Relay::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// A new local session of `user` joins `meeting`. It is sent SESSION_ASSIGNED and a
    /// PARTICIPANT_JOINED for everyone already there; everyone else hears it joined.
    pub fn handle_join(
        &mut self,
        now: Instant,
        user: UserId,
        meeting_id: MeetingId,
    ) -> Result<SessionId, JoinError> {
        match self.meetings.get(&meeting_id) {
            None if self.meetings.len() >= self.config.max_meetings => {
                self.metrics.joins_refused += 1;
                return Err(JoinError::NodeFull {
                    max: self.config.max_meetings,
                });
            }
            Some(m) if m.local.len() >= self.config.max_sessions_per_meeting => {
                self.metrics.joins_refused += 1;
                return Err(JoinError::MeetingFull {
                    meeting: meeting_id,
                    max: self.config.max_sessions_per_meeting,
                });
            }
            _ => {}
        }
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).ok_or(JoinError::SessionIdsExhausted)?;
        let id = SessionId::new(self.config.node_id, seq);

        if !self.meetings.contains_key(&meeting_id) {
            let meeting = Meeting {
                id: meeting_id.clone(),
                local: Vec::new(),
                remote: HashMap::new(),
                remote_timer_armed: false,
                pending_leaves: Vec::new(),
            };
            self.meetings.insert(meeting_id.clone(), meeting);
            self.outputs.push_back(Output::Subscribe {
                subject: subject::meeting_subject(&meeting_id),
                meeting: meeting_id.clone(),
            });
        }
        let user_bytes = Bytes::copy_from_slice(user.as_bytes());
        let config = &self.config;
        let session = Session {
            subject: subject::session_subject(&meeting_id, id),
            user,
            user_bytes: user_bytes.clone(),
            meeting: meeting_id.clone(),
            last_inbound: now,
            queued: 0,
            skipping: Vec::new(),
            subscription: None,
            keyframe_requests: WindowLimit::default(),
            inbound_bytes: TokenBucket::new(
                now,
                config.max_inbound_bytes_per_sec,
                config.max_inbound_bytes_per_sec + config.max_frame_bytes as u64,
            ),
            inbound_packets: TokenBucket::new(
                now,
                config.max_inbound_packets_per_sec,
                2 * config.max_inbound_packets_per_sec,
            ),
        };
        self.sessions.insert(id, session);
        self.timers.push(Reverse((
            now + self.config.idle_timeout,
            Timer::Idle(id),
            None,
        )));
        self.metrics.joins += 1;

        let meeting = self
            .meetings
            .get_mut(&meeting_id)
            .expect("inserted above when missing");
        // Coming back within the reconnect grace: the earlier session's leave is never announced.
        meeting.pending_leaves.retain(|p| p.user != user_bytes);
        meeting.local.push(id);

        self.send_to(id, packets::encode(&packets::session_assigned(id)));
        let meeting = &self.meetings[&meeting_id];
        let mut present: Vec<(Bytes, SessionId)> = meeting
            .local
            .iter()
            .filter(|s| **s != id)
            .map(|s| (self.sessions[s].user_bytes.clone(), *s))
            .collect();
        present.extend(meeting.remote.iter().map(|(s, p)| (p.user.clone(), *s)));
        let count = meeting.participant_count();
        for (user, session) in present {
            let event = participant_event(
                MeetingEventType::ParticipantJoined,
                &meeting_id,
                count,
                user,
                session,
            );
            self.send_to(id, event);
        }
        let joined = participant_event(
            MeetingEventType::ParticipantJoined,
            &meeting_id,
            count,
            user_bytes.clone(),
            id,
        );
        self.fan_out(now, &meeting_id, id, &joined, Class::Control, &user_bytes);
        self.publish(subject::session_subject(&meeting_id, id), joined);
        Ok(id)
    }

    /// Local session `session` disconnected. Its PARTICIPANT_LEFT is announced after the
    /// reconnect grace unless the same user joins the meeting again first. Unknown sessions
    /// (already closed) are ignored.
    pub fn handle_leave(&mut self, now: Instant, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        self.congestion_sent.remove(&session);
        self.keyframes_asked.remove(&session);
        if let Some(meeting) = self.meetings.get_mut(&s.meeting) {
            meeting.local.retain(|id| *id != session);
            let due = now + self.config.reconnect_grace;
            meeting.pending_leaves.push(PendingLeave {
                session,
                user: s.user_bytes,
                due,
            });
            self.timers
                .push(Reverse((due, Timer::Leave, Some(s.meeting.clone()))));
        }
    }

    /// `bytes` of what was handed out in `Transmit` for `session` have been written to its
    /// socket: that much room is free again in its queue.
    pub fn handle_transmitted(&mut self, session: SessionId, bytes: usize) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.queued = s.queued.saturating_sub(bytes);
        }
    }

    /// One message from local session `session`: `data` must be one encoded `PacketWrapper`.
    /// Errors are counted; the packet is then discarded and the session stays open.
    pub fn handle_inbound(
        &mut self,
        now: Instant,
        session: SessionId,
        data: Bytes,
    ) -> Result<(), InboundError> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Err(InboundError::UnknownSession);
        };
        s.last_inbound = now;
        let max = self.config.max_frame_bytes;
        if data.len() > max {
            self.metrics.drop(DropReason::Oversize);
            return Err(InboundError::Oversize {
                len: data.len(),
                max,
            });
        }
        if !s.inbound_packets.take(now, 1) || !s.inbound_bytes.take(now, data.len() as u64) {
            self.metrics.drop(DropReason::RateLimited);
            return Err(InboundError::RateLimited);
        }
        let len = data.len();
        let mut wrapper = match PacketWrapper::decode(data) {
            Ok(w) => w,
            Err(e) => {
                self.metrics.drop(DropReason::Malformed);
                return Err(InboundError::Malformed(e.to_string()));
            }
        };
        let packet_type = match PacketType::try_from(wrapper.packet_type) {
            Ok(PacketType::Unknown) | Err(_) => {
                self.metrics.drop(DropReason::UnknownType);
                return Err(InboundError::UnknownPacketType(wrapper.packet_type));
            }
            Ok(t) => t,
        };
        match packet_type {
            PacketType::SessionAssigned | PacketType::Congestion | PacketType::Meeting => {
                self.metrics.drop(DropReason::ServerOnly);
                return Err(InboundError::ServerOnly(packet_type));
            }
            // HEALTH reports are for the server's own statistics; CONNECTION is the original's
            // join message, whose meeting already came with the connection path.
            PacketType::Health | PacketType::Connection => {
                self.count_in(len);
                return Ok(());
            }
            PacketType::Subscription => {
                let sub = SubscriptionPacket::decode(wrapper.data).map_err(|e| {
                    self.metrics.drop(DropReason::Malformed);
                    InboundError::Malformed(e.to_string())
                })?;
                self.count_in(len);
                self.set_subscription(now, session, sub);
                return Ok(());
            }
            _ => {}
        }
        let class = classify(packet_type, &wrapper.data);
        let s = self
            .sessions
            .get_mut(&session)
            .expect("looked up at the top; nothing removed it since");
        match class {
            Class::Rtt => {
                // Probes come straight back so the client can time the round trip.
                self.count_in(len);
                let echo = wrapper.encode_to_vec().into();
                self.send_to(session, echo);
                return Ok(());
            }
            Class::KeyframeRequest if !s.keyframe_requests.allow(now, SECOND) => {
                self.metrics.drop(DropReason::KeyframeRequestThrottled);
                return Err(InboundError::KeyframeRequestThrottled);
            }
            _ => {}
        }
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += len as u64;
        // Identity stamping: whatever the client claimed, the packet carries its real identity.
        wrapper.user_id = s.user_bytes.clone();
        wrapper.session_id = session.get();
        let packet: Bytes = wrapper.encode_to_vec().into();
        let (meeting, subject, user) = (s.meeting.clone(), s.subject.clone(), s.user_bytes.clone());
        self.fan_out(now, &meeting, session, &packet, class, &user);
        self.publish(subject, packet);
        Ok(())
    }

    /// One message from the bus, delivered on a subscription the relay asked for.
    pub fn handle_bus(&mut self, now: Instant, subject: &str, payload: Bytes) {
        self.metrics.bus_received += 1;
        let Some(parsed) = subject::parse(subject) else {
            self.metrics.drop(DropReason::BusMalformed);
            return;
        };
        if parsed.origin.node() == self.config.node_id & ((1 << SessionId::NODE_BITS) - 1) {
            return; // our own publication echoed back
        }
        let Some(meeting) = self.meetings.get_mut(parsed.meeting) else {
            return; // a meeting this node no longer serves
        };
        let meeting_id = meeting.id.clone();
        let Ok(wrapper) = PacketWrapper::decode(payload.clone()) else {
            self.metrics.drop(DropReason::BusMalformed);
            return;
        };
        let packet_type = PacketType::try_from(wrapper.packet_type).unwrap_or(PacketType::Unknown);
        let from_system = wrapper.user_id == SYSTEM_USER_ID.as_bytes();
        let origin = parsed.origin;
        // Whether this message taught us a participant we did not know.
        let mut learned = false;
        let mut joined_event = false;
        if from_system && packet_type == PacketType::Meeting {
            if let Ok(event) = MeetingPacket::decode(wrapper.data.clone()) {
                match MeetingEventType::try_from(event.event_type) {
                    Ok(MeetingEventType::ParticipantJoined) => {
                        let peer = RemotePeer {
                            user: event.target_user_id,
                            last_seen: now,
                        };
                        learned = meeting.remote.insert(origin, peer).is_none();
                        joined_event = true;
                    }
                    Ok(MeetingEventType::ParticipantLeft) => {
                        meeting.remote.remove(&origin);
                        self.congestion_sent.remove(&origin);
                        self.keyframes_asked.remove(&origin);
                    }
                    _ => {}
                }
            }
        } else if !from_system {
            // Nodes also learn the roster from traffic: clients send a heartbeat every second.
            match meeting.remote.get_mut(&origin) {
                Some(peer) => peer.last_seen = now,
                None => {
                    learned = true;
                    let peer = RemotePeer {
                        user: wrapper.user_id.clone(),
                        last_seen: now,
                    };
                    meeting.remote.insert(origin, peer);
                }
            }
        }
        if !meeting.remote_timer_armed && !meeting.remote.is_empty() {
            meeting.remote_timer_armed = true;
            self.timers.push(Reverse((
                now + self.config.idle_timeout,
                Timer::RemoteExpiry,
                Some(meeting_id.clone()),
            )));
        }
        if let Some(target) = parsed.target {
            if joined_event {
                // A roster reply to a newcomer of ours (see below). Every session here hears of
                // a participant the node learns, whichever session the reply was meant for.
                if learned {
                    self.fan_out(
                        now,
                        &meeting_id,
                        origin,
                        &payload,
                        Class::Control,
                        &wrapper.user_id,
                    );
                }
            } else if meeting.local.contains(&target) {
                // CONGESTION or a relay's KEYFRAME_REQUEST for one of our publishers.
                self.send_to(target, payload);
            }
            return;
        }
        if learned && joined_event {
            // A participant on another node joined: tell its node who is here. Without this a
            // node that starts serving a meeting late would not know who joined before it
            // subscribed.
            let count = meeting.participant_count();
            let here: Vec<(SessionId, Bytes)> = meeting
                .local
                .iter()
                .filter_map(|s| self.sessions.get(s).map(|x| (*s, x.user_bytes.clone())))
                .collect();
            for (session, user) in here {
                let event = participant_event(
                    MeetingEventType::ParticipantJoined,
                    &meeting_id,
                    count,
                    user,
                    session,
                );
                self.publish(
                    subject::directed_subject(&meeting_id, session, origin),
                    event,
                );
            }
        } else if learned {
            // Traffic from someone whose join we never saw (their node was cut off from the bus
            // when they joined): announce them here.
            let count = meeting.participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantJoined,
                &meeting_id,
                count,
                wrapper.user_id.clone(),
                origin,
            );
            self.fan_out(
                now,
                &meeting_id,
                origin,
                &event,
                Class::Control,
                &wrapper.user_id,
            );
        }
        let class = match classify(packet_type, &wrapper.data) {
            Class::Rtt => return, // probes are answered by the sender's own node
            class => class,
        };
        self.fan_out(now, &meeting_id, origin, &payload, class, &wrapper.user_id);
    }

    /// Runs every timer due at `now`: idle sessions, announced leaves, silent remote peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, timer, meeting))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            match (timer, meeting) {
                (Timer::Idle(id), _) => self.check_idle(now, id),
                (Timer::Leave, Some(m)) => self.announce_leaves(now, &m),
                (Timer::RemoteExpiry, Some(m)) => self.expire_remote(now, &m),
                _ => {}
            }
        }
    }

    fn check_idle(&mut self, now: Instant, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let deadline = s.last_inbound + self.config.idle_timeout;
        if deadline > now {
            self.timers.push(Reverse((deadline, Timer::Idle(id), None)));
            return;
        }
        self.metrics.idle_closes += 1;
        self.outputs.push_back(Output::Close {
            session: id,
            reason: CloseReason::IdleTimeout,
        });
        self.handle_leave(now, id);
    }

    fn announce_leaves(&mut self, now: Instant, meeting_id: &MeetingId) {
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut meeting.pending_leaves)
            .into_iter()
            .partition(|p| p.due <= now);
        meeting.pending_leaves = waiting;
        for leave in due {
            let count = self.meetings[meeting_id].participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantLeft,
                meeting_id,
                count,
                leave.user.clone(),
                leave.session,
            );
            self.fan_out(
                now,
                meeting_id,
                leave.session,
                &event,
                Class::Control,
                &leave.user,
            );
            self.publish(subject::session_subject(meeting_id, leave.session), event);
        }
        self.forget_meeting_if_empty(meeting_id);
    }

    fn expire_remote(&mut self, now: Instant, meeting_id: &MeetingId) {
        let idle = self.config.idle_timeout;
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        meeting.remote_timer_armed = false;
        let gone: Vec<(SessionId, Bytes)> = meeting
            .remote
            .iter()
            .filter(|(_, p)| p.last_seen + idle <= now)
            .map(|(s, p)| (*s, p.user.clone()))
            .collect();
        for (session, _) in &gone {
            meeting.remote.remove(session);
        }
        if let Some(next) = meeting.remote.values().map(|p| p.last_seen + idle).min() {
            meeting.remote_timer_armed = true;
            self.timers.push(Reverse((
                next,
                Timer::RemoteExpiry,
                Some(meeting_id.clone()),
            )));
        }
        // Their node went quiet without saying goodbye (crashed or cut off): tell our sessions.
        for (session, user) in gone {
            self.congestion_sent.remove(&session);
            self.keyframes_asked.remove(&session);
            let count = self.meetings[meeting_id].participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantLeft,
                meeting_id,
                count,
                user.clone(),
                session,
            );
            self.fan_out(now, meeting_id, session, &event, Class::Control, &user);
        }
    }

    fn forget_meeting_if_empty(&mut self, meeting_id: &MeetingId) {
        let empty = self
            .meetings
            .get(meeting_id)
            .is_some_and(|m| m.local.is_empty() && m.pending_leaves.is_empty());
        if empty {
            if let Some(meeting) = self.meetings.remove(meeting_id) {
                for session in meeting.remote.keys() {
                    self.congestion_sent.remove(session);
                    self.keyframes_asked.remove(session);
                }
            }
            self.outputs.push_back(Output::Unsubscribe {
                meeting: meeting_id.clone(),
            });
        }
    }

    fn set_subscription(&mut self, now: Instant, session: SessionId, sub: SubscriptionPacket) {
        let s = self
            .sessions
            .get_mut(&session)
            .expect("callers pass a session they just looked up");
        let new = (!sub.all).then(|| {
            let sorted = |mut v: Vec<u64>| {
                v.sort_unstable();
                v.dedup();
                v
            };
            Subscription {
                video: sorted(sub.video),
                screen: sorted(sub.screen),
            }
        });
        // A stream newly subscribed to starts at a keyframe: deltas without their reference
        // would only show as corruption.
        let mut fresh = Vec::new();
        if let (Some(old), Some(new)) = (&s.subscription, &new) {
            for (list, screen) in [(&new.video, false), (&new.screen, true)] {
                for raw in list {
                    let Some(p) = SessionId::from_wire(*raw) else {
                        continue;
                    };
                    if !old.wants(p, screen) {
                        fresh.push((p, screen));
                    }
                }
            }
        }
        s.subscription = new;
        for stream in &fresh {
            if !s.skipping.contains(stream) {
                s.skipping.push(*stream);
            }
        }
        let meeting = s.meeting.clone();
        for (publisher, _) in fresh {
            self.request_keyframe(now, &meeting, session, publisher, None);
        }
    }

    /// Offers `packet` from `origin` to every local session of the meeting but `origin`, then
    /// tells the publisher about congestion and asks it for a keyframe if a receiver needs one.
    fn fan_out(
        &mut self,
        now: Instant,
        meeting_id: &MeetingId,
        origin: SessionId,
        packet: &Bytes,
        class: Class,
        origin_user: &Bytes,
    ) {
        let Some(meeting) = self.meetings.get(meeting_id) else {
            return;
        };
        let mut congested_at: Option<SessionId> = None;
        let mut want_keyframe = false;
        for &receiver in &meeting.local {
            if receiver == origin {
                continue;
            }
            let Some(session) = self.sessions.get_mut(&receiver) else {
                continue;
            };
            let verdict = session.offer(
                receiver,
                origin,
                packet,
                class,
                &self.config,
                &mut self.metrics,
                &mut self.outputs,
            );
            if let Verdict::Dropped {
                congestion,
                want_keyframe: key,
            } = verdict
            {
                if congestion && congested_at.is_none() {
                    congested_at = Some(receiver);
                }
                want_keyframe |= key;
            }
        }
        if let Some(receiver) = congested_at {
            self.signal_congestion(now, meeting_id, receiver, origin);
        }
        if want_keyframe {
            let receiver = congested_at.expect("a keyframe is only wanted after a congestion drop");
            self.request_keyframe(now, meeting_id, receiver, origin, Some(origin_user.clone()));
        }
    }

    fn signal_congestion(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        receiver: SessionId,
        publisher: SessionId,
    ) {
        let limit = self.congestion_sent.entry(publisher).or_default();
        if !limit.allow(now, SECOND) {
            return;
        }
        self.metrics.congestion_signals += 1;
        let receiver_user = self.sessions[&receiver].user_bytes.clone();
        let packet = packets::encode(&packets::congestion(receiver_user, publisher));
        self.send_directed(meeting, receiver, publisher, packet);
    }

    fn request_keyframe(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        receiver: SessionId,
        publisher: SessionId,
        publisher_user: Option<Bytes>,
    ) {
        let user = publisher_user.or_else(|| self.user_of(meeting, publisher));
        let Some(user) = user else {
            return; // not (yet) a participant we know
        };
        let limit = self.keyframes_asked.entry(publisher).or_default();
        if !limit.allow(now, SECOND) {
            return;
        }
        self.metrics.keyframe_requests_sent += 1;
        let packet = packets::encode(&packets::keyframe_request(user, publisher));
        self.send_directed(meeting, receiver, publisher, packet);
    }

    fn user_of(&self, meeting: &MeetingId, session: SessionId) -> Option<Bytes> {
        if let Some(s) = self.sessions.get(&session) {
            return Some(s.user_bytes.clone());
        }
        self.meetings
            .get(meeting)?
            .remote
            .get(&session)
            .map(|p| p.user.clone())
    }

    /// Sends `packet` to `target` only: directly when it is ours, else over the bus.
    fn send_directed(
        &mut self,
        meeting: &MeetingId,
        origin: SessionId,
        target: SessionId,
        packet: Bytes,
    ) {
        if self.sessions.contains_key(&target) {
            self.send_to(target, packet);
        } else {
            self.publish(subject::directed_subject(meeting, origin, target), packet);
        }
    }

    /// Queues a control packet for one local session.
    fn send_to(&mut self, session: SessionId, packet: Bytes) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.offer(
                session,
                session,
                &packet,
                Class::Control,
                &self.config,
                &mut self.metrics,
                &mut self.outputs,
            );
        }
    }

    fn publish(&mut self, subject: Arc<str>, packet: Bytes) {
        self.metrics.bus_published += 1;
        self.outputs.push_back(Output::Publish { subject, packet });
    }

    fn count_in(&mut self, len: usize) {
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += len as u64;
    }
}

fn participant_event(
    kind: MeetingEventType,
    meeting: &MeetingId,
    count: i64,
    user: Bytes,
    session: SessionId,
) -> Bytes {
    let event = packets::participant_event(kind, meeting.as_str(), count, user, session);
    packets::encode(&packets::meeting_event(&event))
}
