//! The relay state machine: meetings, sessions, fan-out, congestion, timers.
//!
//! Every input a client controls does work linear in its size and bounded by the meeting's size
//! (lists are capped, membership is looked up in maps, never scanned), and every queue has a
//! budget: a session's own per class ([`crate::queue`]) and the node's.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_types::{MeetingEventType, MeetingId, SessionId, UserId, packets};

use crate::classify::Class;
use crate::config::{CONGESTION_PER_SEC, KEYFRAME_REQUESTS_PER_SEC, NOTICES_PER_SEC, RelayConfig};
use crate::error::JoinError;
use crate::limit::{TokenBucket, WindowLimit};
use crate::metrics::Metrics;
use crate::queue::{NodeQueue, OutQueue, Verdict};
use crate::subject;
use crate::subscription::Subscription;

mod admission;
mod bus_input;
mod close;
mod drain;
mod host;
mod inbound;

pub use admission::{
    Grants, Join, MAX_DISPLAY_NAME_BYTES, MAX_REMOVED_PER_MEETING, PRESENCE_TIMEOUT, Proof,
};
pub use close::CloseReason;
pub use drain::DRAINING_MESSAGE;

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
    /// Name shown to others (capped at [`MAX_DISPLAY_NAME_BYTES`]).
    display_name: Bytes,
    /// What the session may do: without `publish` its media is dropped.
    grants: Grants,
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
    display_name: Bytes,
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

    /// A new session of `user` (`new`, when already known) replaces its latest one, when that
    /// was on another node: the old one leaves the roster silently (the new session's JOINED
    /// tells clients it replaces it; its node never announces its leave). Returns the session
    /// forgotten.
    fn replace_remote(&mut self, user: &Bytes, new: Option<SessionId>) -> Option<SessionId> {
        let old = *self.by_user.get(user)?;
        if Some(old) == new || self.remote.remove(&old).is_none() {
            return None;
        }
        self.by_user.remove(user);
        Some(old)
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
    /// Users a host removed, per meeting: their joins are refused. Kept when the meeting
    /// empties here (the removed user was often alone on this node); at most
    /// [`MAX_REMOVED_PER_MEETING`] users for at most `max_meetings` meetings.
    removed: HashMap<MeetingId, HashSet<Bytes>>,
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
            removed: HashMap::new(),
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

    /// A new local session of `user` joins `meeting` as a trusted join (a token's subject:
    /// publish and subscribe, display name = user id, may replace the user's earlier session).
    /// Transports admit joins with [`Relay::handle_admit`], which applies the join's own grants
    /// and proof.
    pub fn handle_join(
        &mut self,
        now: Instant,
        user: UserId,
        meeting_id: MeetingId,
    ) -> Result<SessionId, JoinError> {
        self.handle_admit(now, Join::trusted(user, meeting_id))
    }

    /// Adds a local session once admission (removal, takeover) has passed: it is sent
    /// SESSION_ASSIGNED and a PARTICIPANT_JOINED for everyone already there; everyone else
    /// hears it joined.
    fn join_session(&mut self, now: Instant, join: Join) -> Result<SessionId, JoinError> {
        let Join {
            user,
            meeting: meeting_id,
            display_name,
            grants,
            ..
        } = join;
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
        let display_name = admission::display_name(&display_name, &user_bytes);
        let config = &self.config;
        let session = Session {
            subject: subject::session_subject(&meeting_id, id),
            user,
            user_bytes: user_bytes.clone(),
            display_name: display_name.clone(),
            grants,
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
        let mut present: Vec<(Bytes, Bytes, SessionId)> = meeting
            .local
            .iter()
            .filter(|s| **s != id)
            .map(|s| {
                let other = &self.sessions[s];
                (other.user_bytes.clone(), other.display_name.clone(), *s)
            })
            .collect();
        present.extend(
            meeting
                .remote
                .iter()
                .map(|(s, p)| (p.user.clone(), p.display_name.clone(), *s)),
        );
        let count = meeting.participant_count();
        for (user, name, session) in present {
            let event = participant_event(
                MeetingEventType::ParticipantJoined,
                &meeting_id,
                count,
                (user, name),
                session,
            );
            self.send_to(id, event);
        }
        let joined = participant_event(
            MeetingEventType::ParticipantJoined,
            &meeting_id,
            count,
            (user_bytes.clone(), display_name),
            id,
        );
        self.fan_out(now, &meeting_id, id, &joined, Class::Control, &user_bytes);
        self.publish(subject::session_subject(&meeting_id, id), joined);
        Ok(id)
    }

    /// Local session `session` disconnected. Its PARTICIPANT_LEFT is announced after the
    /// reconnect grace unless the same user joins the meeting again first, here or through
    /// another node; never when the user already has (a newer session replaced it). Unknown
    /// sessions (already closed) are ignored.
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
            // The user's latest session is another one (it came back, here or through another
            // node, before this connection was seen to close): the user never left.
            let replaced = meeting
                .by_user
                .get(&s.user_bytes)
                .is_some_and(|latest| *latest != session);
            meeting.forget_user(&s.user_bytes, session);
            for &other in &meeting.local {
                if let Some(o) = self.sessions.get_mut(&other) {
                    o.queue.forget_publisher(session);
                }
            }
            if replaced {
                self.metrics.leaves_replaced += 1;
                self.forget_meeting_if_empty(&s.meeting);
                return;
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
                (leave.user.clone(), leave.user.clone()),
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

    /// Forgets what the relay kept about a remote session that is gone.
    fn forget_remote_session(&mut self, session: SessionId) {
        self.congestion_sent.remove(&session);
        self.keyframe_forwarded.remove(&session);
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

/// A participant event about `(user, display name)`'s `session`, encoded as a MEETING wrapper.
fn participant_event(
    kind: MeetingEventType,
    meeting: &MeetingId,
    count: i64,
    (user, display_name): (Bytes, Bytes),
    session: SessionId,
) -> Bytes {
    let mut event = packets::participant_event(kind, meeting.as_str(), count, user, session);
    event.display_name = display_name;
    packets::encode(&packets::meeting_event(&event))
}
