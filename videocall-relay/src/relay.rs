//! The relay state machine: meetings, sessions, fan-out, congestion, timers.
//!
//! Every input a client controls does work linear in its size and bounded by the meeting's size
//! (lists are capped, membership is looked up in maps, never scanned), and every queue has a
//! budget: a session's own per class ([`crate::queue`]) and the node's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    MediaPacket, MeetingEventType, MeetingId, MeetingPacket, NoticeReason, PacketType,
    PacketWrapper, RelayNotice, SYSTEM_USER_ID, SessionId, SubscriptionPacket, UserId, packets,
};

use crate::classify::{Class, classify};
use crate::config::{
    CONGESTION_PER_SEC, KEYFRAME_FORWARD_INTERVAL, KEYFRAME_REQUESTS_PER_SEC, NOTICES_PER_SEC,
    RelayConfig, max_subscription_bytes,
};
use crate::error::{InboundError, JoinError};
use crate::limit::{TokenBucket, WindowLimit};
use crate::metrics::{DropReason, Metrics};
use crate::queue::{NodeQueue, OutQueue, Verdict};
use crate::subject;
use crate::subscription::Subscription;

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
    /// Over its inbound rate limit for longer than `rate_limit_grace`.
    RateLimited,
    /// Its socket wrote nothing for `stall_timeout` while its queue was full.
    Stalled,
    /// The node is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Every reason, in rendering order.
    pub const ALL: [CloseReason; 4] = [
        CloseReason::IdleTimeout,
        CloseReason::RateLimited,
        CloseReason::Stalled,
        CloseReason::Shutdown,
    ];

    /// Text for a close frame or log line.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::RateLimited => "closed: over the rate limit for too long",
            CloseReason::Stalled => "closed: not reading what the server sends",
            CloseReason::Shutdown => "server shutting down",
        }
    }

    /// The label value used on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::Stalled => "stalled",
            CloseReason::Shutdown => "shutdown",
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
    /// Streams (publisher, is-screen) it waits a keyframe for, sorted.
    pub skipping: Vec<(SessionId, bool)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Idle(SessionId),
    /// Whether the session's socket made progress since its queue first overflowed.
    Stall(SessionId, u64),
    Leave,
    RemoteExpiry,
}

#[derive(Debug)]
struct Session {
    user: UserId,
    user_bytes: Bytes,
    meeting: MeetingId,
    subject: Arc<str>,
    last_inbound: Instant,
    queue: OutQueue,
    /// Counts reports of written bytes: a stall check compares it with its value when armed.
    progress: u64,
    stall_armed: bool,
    subscription: Option<Subscription>,
    keyframe_requests: WindowLimit<KEYFRAME_REQUESTS_PER_SEC>,
    inbound_bytes: TokenBucket,
    inbound_packets: TokenBucket,
    inbound_control: TokenBucket,
    /// Since when the session has been over its rate limit without a second's break.
    over_limit_since: Option<Instant>,
    last_over_limit: Option<Instant>,
    notices: WindowLimit<NOTICES_PER_SEC>,
}

impl Session {
    /// Offers one packet to this receiver: applies the congestion policy and queues it if it
    /// passes.
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
        if let (Class::Video { screen, .. }, Some(sub)) = (class, &self.subscription)
            && !sub.wants(publisher, screen)
        {
            return Verdict::Filtered;
        }
        let node = NodeQueue {
            queued: metrics.queued_bytes as usize,
            max: config.max_node_queued_bytes,
        };
        let verdict = self
            .queue
            .admit(publisher, packet.len(), class, node, config, metrics);
        if verdict == Verdict::Queued {
            metrics.queued_bytes += packet.len() as u64;
            outputs.push_back(Output::Transmit {
                session: me,
                packet: packet.clone(),
            });
        }
        verdict
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
    /// User → their latest session here or elsewhere, for keyframe requests addressed by user.
    by_user: HashMap<Bytes, SessionId>,
    remote_timer_armed: bool,
    pending_leaves: Vec<PendingLeave>,
}

impl Meeting {
    fn participant_count(&self) -> i64 {
        (self.local.len() + self.remote.len()) as i64
    }

    fn forget_user(&mut self, user: &Bytes, session: SessionId) {
        if self.by_user.get(user) == Some(&session) {
            self.by_user.remove(user);
        }
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
    /// Publisher → when a KEYFRAME_REQUEST last went to it (from the relay or a receiver).
    keyframe_forwarded: HashMap<SessionId, Instant>,
    /// Set by [`Relay::handle_shutdown`]: joins are refused.
    stopping: bool,
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
            keyframe_forwarded: HashMap::new(),
            stopping: false,
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
            queued_bytes: s.queue.queued(),
            skipping: s.queue.skipping(),
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
        if self.stopping {
            self.metrics.joins_refused += 1;
            return Err(JoinError::ShuttingDown);
        }
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
                by_user: HashMap::new(),
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
            queue: OutQueue::default(),
            progress: 0,
            stall_armed: false,
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
            inbound_control: TokenBucket::new(
                now,
                config.max_control_bytes_per_sec,
                4 * config.max_control_bytes_per_sec,
            ),
            over_limit_since: None,
            last_over_limit: None,
            notices: WindowLimit::default(),
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
        meeting.by_user.insert(user_bytes.clone(), id);

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

    /// The node is stopping: every local session is closed, and the leaves of its sessions
    /// (and those still waiting for their reconnect grace) are published on the bus at once, so
    /// other nodes' participants see them go now rather than after the idle timeout. Joins are
    /// refused from now on.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.stopping = true;
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.close(now, id, CloseReason::Shutdown);
        }
        let meetings: Vec<MeetingId> = self.meetings.keys().cloned().collect();
        for meeting_id in meetings {
            if let Some(meeting) = self.meetings.get_mut(&meeting_id) {
                for leave in &mut meeting.pending_leaves {
                    leave.due = now;
                }
            }
            self.announce_leaves(now, &meeting_id);
        }
    }

    /// Local session `session` disconnected. Its PARTICIPANT_LEFT is announced after the
    /// reconnect grace unless the same user joins the meeting again first. Unknown sessions
    /// (already closed) are ignored.
    pub fn handle_leave(&mut self, now: Instant, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        self.congestion_sent.remove(&session);
        self.keyframe_forwarded.remove(&session);
        self.metrics.queued_bytes = self
            .metrics
            .queued_bytes
            .saturating_sub(s.queue.queued() as u64);
        if let Some(meeting) = self.meetings.get_mut(&s.meeting) {
            meeting.local.retain(|id| *id != session);
            meeting.forget_user(&s.user_bytes, session);
            for &other in &meeting.local {
                if let Some(o) = self.sessions.get_mut(&other) {
                    o.queue.forget_publisher(session);
                }
            }
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
            let freed = s.queue.transmitted(bytes);
            s.progress += 1;
            self.metrics.queued_bytes = self.metrics.queued_bytes.saturating_sub(freed as u64);
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
        let len = data.len();
        if len > max {
            self.metrics.drop(DropReason::Oversize);
            let message = format!("packet of {len} bytes exceeds the {max}-byte limit");
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::Oversize, 0, len, max, message),
            );
            return Err(InboundError::Oversize { len, max });
        }
        if !s.inbound_packets.take(now, 1) || !s.inbound_bytes.take(now, len as u64) {
            self.metrics.drop(DropReason::RateLimited);
            self.over_limit(now, session);
            return Err(InboundError::RateLimited);
        }
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
            PacketType::SessionAssigned
            | PacketType::Congestion
            | PacketType::Meeting
            | PacketType::RelayNotice => {
                self.metrics.drop(DropReason::ServerOnly);
                return Err(InboundError::ServerOnly(packet_type));
            }
            // HEALTH reports are for the server's own statistics; CONNECTION is the original's
            // join message, whose meeting already came with the connection path.
            PacketType::Health | PacketType::Connection => {
                self.count_in(len);
                return Ok(());
            }
            PacketType::Subscription => return self.subscribe(now, session, wrapper.data, len),
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
            Class::KeyframeRequest => {
                if !s.keyframe_requests.allow(now, SECOND) {
                    self.metrics.drop(DropReason::KeyframeRequestThrottled);
                    return Err(InboundError::KeyframeRequestThrottled);
                }
                self.count_in(len);
                return self.forward_keyframe_request(now, session, &wrapper.data);
            }
            Class::Control if !s.inbound_control.take(now, len as u64) => {
                self.metrics.drop(DropReason::ControlRateLimited);
                self.over_limit(now, session);
                return Err(InboundError::RateLimited);
            }
            _ => {}
        }
        // Identity stamping: whatever the client claimed, the packet carries its real identity.
        wrapper.user_id = s.user_bytes.clone();
        wrapper.session_id = session.get();
        let packet: Bytes = wrapper.encode_to_vec().into();
        // A packet larger than a receiver's whole queue for its kind could never be delivered
        // (and a keyframe would be asked for forever): refuse it here, once.
        let budget = match class {
            Class::Video { .. } | Class::Opaque => self.config.queue_video_bytes,
            Class::Audio => self.config.queue_video_bytes + self.config.queue_audio_headroom_bytes,
            _ => self.config.queue_control_bytes,
        };
        if packet.len() > budget {
            self.metrics.drop(DropReason::FrameTooLarge);
            let message = format!(
                "frame of {} bytes exceeds the {budget}-byte queue of its receivers",
                packet.len()
            );
            let t = packet_type as i32;
            self.notify(
                now,
                session,
                packets::notice(
                    NoticeReason::FrameTooLarge,
                    t,
                    packet.len(),
                    budget,
                    message,
                ),
            );
            return Err(InboundError::FrameTooLarge {
                len: packet.len(),
                max: budget,
            });
        }
        let (meeting, subject, user) = (s.meeting.clone(), s.subject.clone(), s.user_bytes.clone());
        self.count_in(len);
        self.fan_out(now, &meeting, session, &packet, class, &user);
        self.publish(subject, packet);
        Ok(())
    }

    /// A packet over the rate limit: the session is closed once it has stayed over the limit
    /// (no second without a refusal) for `rate_limit_grace`.
    fn over_limit(&mut self, now: Instant, session: SessionId) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let continuing = s
            .last_over_limit
            .is_some_and(|at| now.saturating_duration_since(at) < SECOND);
        if !continuing {
            s.over_limit_since = Some(now);
        }
        s.last_over_limit = Some(now);
        let since = s.over_limit_since.unwrap_or(now);
        if now.saturating_duration_since(since) >= self.config.rate_limit_grace {
            let message = "closed: over the inbound rate limit for too long";
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::CutOffRate, 0, 0, 0, message),
            );
            self.close(now, session, CloseReason::RateLimited);
        } else {
            let limit = self.config.max_inbound_bytes_per_sec as usize;
            let message = "over the inbound rate limit: packets are being dropped";
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::RateLimited, 0, 0, limit, message),
            );
        }
    }

    /// Closes local session `session` for `reason`: its socket is told, and it leaves.
    fn close(&mut self, now: Instant, session: SessionId, reason: CloseReason) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        self.metrics.close(reason);
        if reason == CloseReason::IdleTimeout {
            self.metrics.idle_closes += 1;
        }
        self.outputs.push_back(Output::Close { session, reason });
        self.handle_leave(now, session);
    }

    /// Tells `session` why its input was refused, at most [`NOTICES_PER_SEC`] a second. The
    /// notice bypasses the queue budgets (it is rare and small) but not the session's limit.
    fn notify(&mut self, now: Instant, session: SessionId, notice: RelayNotice) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if !s.notices.allow(now, SECOND) {
            return;
        }
        let packet = packets::encode(&packets::relay_notice(session, &notice));
        self.metrics.notices_sent += 1;
        self.send_to(session, packet);
    }

    /// A SUBSCRIPTION from `session`: refused before decoding when larger than the meeting's
    /// size allows; ids of nobody in the meeting are ignored.
    fn subscribe(
        &mut self,
        now: Instant,
        session: SessionId,
        data: Bytes,
        len: usize,
    ) -> Result<(), InboundError> {
        let meeting_id = &self.sessions[&session].meeting;
        let participants = self
            .meetings
            .get(meeting_id)
            .map_or(0, |m| m.participant_count() as usize);
        // A little slack for a subscription racing a join it has already heard of.
        let max = max_subscription_bytes(participants + 16);
        if data.len() > max {
            self.metrics.drop(DropReason::SubscriptionTooLarge);
            let message = format!(
                "subscription of {} bytes names more sessions than the meeting's {participants}",
                data.len()
            );
            let t = PacketType::Subscription as i32;
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::Oversize, t, data.len(), max, message),
            );
            return Err(InboundError::SubscriptionTooLarge {
                len: data.len(),
                max,
            });
        }
        let sub = SubscriptionPacket::decode(data).map_err(|e| {
            self.metrics.drop(DropReason::Malformed);
            InboundError::Malformed(e.to_string())
        })?;
        self.count_in(len);
        self.set_subscription(now, session, sub);
        Ok(())
    }

    /// A receiver's KEYFRAME_REQUEST (the `MediaPacket` names the publisher's user): goes to
    /// that publisher only, and at most once per [`KEYFRAME_FORWARD_INTERVAL`] per publisher
    /// however many receivers ask.
    fn forward_keyframe_request(
        &mut self,
        now: Instant,
        session: SessionId,
        media: &Bytes,
    ) -> Result<(), InboundError> {
        let meeting_id = self.sessions[&session].meeting.clone();
        let target_user = MediaPacket::decode(media.clone())
            .map(|m| m.user_id)
            .unwrap_or_default();
        let publisher = self
            .meetings
            .get(&meeting_id)
            .and_then(|m| m.by_user.get(&target_user).copied())
            .filter(|p| *p != session);
        let Some(publisher) = publisher else {
            self.metrics.drop(DropReason::KeyframeRequestUnknownTarget);
            return Ok(());
        };
        if !self.keyframe_due(now, publisher) {
            self.metrics.drop(DropReason::KeyframeRequestAggregated);
            return Ok(());
        }
        let packet = packets::encode(&packets::keyframe_request(target_user, publisher));
        self.send_directed(&meeting_id, session, publisher, packet);
        Ok(())
    }

    /// Whether a keyframe request may go to `publisher` now; if so, records that one did.
    fn keyframe_due(&mut self, now: Instant, publisher: SessionId) -> bool {
        match self.keyframe_forwarded.get(&publisher) {
            Some(at) if now.saturating_duration_since(*at) < KEYFRAME_FORWARD_INTERVAL => false,
            _ => {
                self.keyframe_forwarded.insert(publisher, now);
                true
            }
        }
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
        let full = meeting.remote.len() >= self.config.max_remote_per_meeting
            && !meeting.remote.contains_key(&origin);
        if from_system && packet_type == PacketType::Meeting {
            if let Ok(event) = MeetingPacket::decode(wrapper.data.clone()) {
                match MeetingEventType::try_from(event.event_type) {
                    Ok(MeetingEventType::ParticipantJoined) if full => {
                        self.metrics.drop(DropReason::RemotePeersFull);
                        return;
                    }
                    Ok(MeetingEventType::ParticipantJoined) => {
                        let user = event.target_user_id;
                        meeting.by_user.insert(user.clone(), origin);
                        let peer = RemotePeer {
                            user,
                            last_seen: now,
                        };
                        learned = meeting.remote.insert(origin, peer).is_none();
                        joined_event = true;
                    }
                    Ok(MeetingEventType::ParticipantLeft) => {
                        if let Some(peer) = meeting.remote.remove(&origin) {
                            meeting.forget_user(&peer.user, origin);
                        }
                        self.congestion_sent.remove(&origin);
                        self.keyframe_forwarded.remove(&origin);
                    }
                    _ => {}
                }
            }
        } else if !from_system {
            // Nodes also learn the roster from traffic: clients send a heartbeat every second.
            match meeting.remote.get_mut(&origin) {
                Some(peer) => peer.last_seen = now,
                None if full => {
                    self.metrics.drop(DropReason::RemotePeersFull);
                    return;
                }
                None => {
                    learned = true;
                    let peer = RemotePeer {
                        user: wrapper.user_id.clone(),
                        last_seen: now,
                    };
                    meeting.by_user.insert(wrapper.user_id.clone(), origin);
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
            } else if self
                .sessions
                .get(&target)
                .is_some_and(|s| s.meeting == meeting_id)
            {
                // CONGESTION or a relay's KEYFRAME_REQUEST for one of our publishers; keyframe
                // requests from every node together reach it at most once per interval.
                let keyframe = classify(packet_type, &wrapper.data) == Class::KeyframeRequest;
                if keyframe && !self.keyframe_due(now, target) {
                    self.metrics.drop(DropReason::KeyframeRequestAggregated);
                    return;
                }
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
                (Timer::Stall(id, progress), _) => self.check_stall(now, id, progress),
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
        self.close(now, id, CloseReason::IdleTimeout);
    }

    /// A receiver's queue overflowed `stall_timeout` ago: if its socket has reported nothing
    /// written since, it has stopped reading, and is closed.
    fn check_stall(&mut self, now: Instant, id: SessionId, progress: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.stall_armed = false;
        if s.progress == progress && s.queue.queued() > 0 {
            self.close(now, id, CloseReason::Stalled);
        }
    }

    /// Arms the stall check of a receiver whose queue just overflowed.
    fn arm_stall(&mut self, now: Instant, id: SessionId) {
        if let Some(s) = self.sessions.get_mut(&id)
            && !s.stall_armed
        {
            s.stall_armed = true;
            let at = now + self.config.stall_timeout;
            self.timers
                .push(Reverse((at, Timer::Stall(id, s.progress), None)));
        }
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
        for (session, user) in &gone {
            meeting.remote.remove(session);
            meeting.forget_user(user, *session);
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
            self.keyframe_forwarded.remove(&session);
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
                    self.keyframe_forwarded.remove(session);
                }
            }
            self.outputs.push_back(Output::Unsubscribe {
                meeting: meeting_id.clone(),
            });
        }
    }

    fn set_subscription(&mut self, now: Instant, session: SessionId, sub: SubscriptionPacket) {
        let meeting_id = self.sessions[&session].meeting.clone();
        let (sessions, meetings) = (&self.sessions, &self.meetings);
        let is_member = |id: SessionId| {
            id != session
                && (sessions.get(&id).is_some_and(|s| s.meeting == meeting_id)
                    || meetings
                        .get(&meeting_id)
                        .is_some_and(|m| m.remote.contains_key(&id)))
        };
        let (new, ignored) = Subscription::from_packet(sub, is_member);
        self.metrics.subscription_ids_ignored += ignored;
        let s = self
            .sessions
            .get_mut(&session)
            .expect("callers pass a session they just looked up");
        // A stream newly subscribed to starts at a keyframe: deltas without their reference
        // would only show as corruption.
        let fresh = new
            .as_ref()
            .map(|new| new.newly_wanted(s.subscription.as_ref()))
            .unwrap_or_default();
        s.subscription = new;
        for stream in &fresh {
            s.queue.skip(*stream);
        }
        for (publisher, _) in fresh {
            self.request_keyframe(now, &meeting_id, session, publisher, None);
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
        let mut overflowed = Vec::new();
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
                full,
            } = verdict
            {
                if congestion && congested_at.is_none() {
                    congested_at = Some(receiver);
                }
                want_keyframe |= key;
                if full && !session.stall_armed {
                    overflowed.push(receiver);
                }
            }
        }
        for receiver in overflowed {
            self.arm_stall(now, receiver);
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
        if !self.keyframe_due(now, publisher) {
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
