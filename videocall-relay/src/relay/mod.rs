//! The relay state machine: meetings, sessions, fan-out, congestion, timers.
//!
//! [`Relay`] keeps the `handle_*`/`poll_*` surface; the sub-machines live beside it, as in
//! str0m's `Rtc`:
//! - `admission`: who may join and as whom (grants, removed users, reconnect secrets);
//! - `roster`: each meeting's local sessions, remote peers and pending leaves, announced leaves,
//!   forgotten users and meetings;
//! - `session`: one local session's state and limits;
//! - `queueing`: offering packets to receivers ([`crate::queue`] applies the congestion policy,
//!   skip-to-keyframe included) and what their verdicts ask of the relay;
//! - `feedback`: CONGESTION and KEYFRAME_REQUEST to publishers, throttled per publisher;
//! - `presence`: each participant's last heartbeat state; heartbeats forwarded on change only
//!   to sessions that take PRESENCE digests, and the digests;
//! - `timer`: the typed timers and their heap;
//! - `inbound`, `bus_input`, `host`, `close`: input from sessions, from the bus, host actions,
//!   and closing sessions.
//!
//! Every input a client controls does work linear in its size and bounded by the meeting's size
//! (lists are capped, membership is looked up in maps, never scanned), and every queue has a
//! budget: a session's own per class ([`crate::queue`]) and the node's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_types::{MeetingId, SessionId, StreamKey, UserId};

use crate::config::RelayConfig;
use crate::error::JoinError;
use crate::metrics::Metrics;

mod admission;
mod bus_input;
mod close;
mod drain;
mod feedback;
mod host;
mod inbound;
mod presence;
mod queueing;
mod roster;
mod session;
mod timer;

pub use admission::{
    Grants, Join, MAX_DISPLAY_NAME_BYTES, MAX_REMOVED_PER_MEETING, PRESENCE_TIMEOUT, Proof,
};
pub use close::CloseReason;
pub use drain::DRAINING_MESSAGE;
pub use presence::PRESENCE_DIGEST_CHUNK;

use feedback::Feedback;
use roster::Meeting;
use session::Session;
use timer::{Timer, Timers};

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
    /// Streams it waits a keyframe for, sorted.
    pub skipping: Vec<StreamKey>,
}

/// One relay node's meetings and sessions. See the crate docs for the run loop.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    next_seq: u32,
    /// What `next_seq` grows by: the number of shards sharing the node's id (1 alone).
    seq_step: u32,
    sessions: HashMap<SessionId, Session>,
    meetings: HashMap<MeetingId, Meeting>,
    timers: Timers,
    outputs: VecDeque<Output>,
    metrics: Metrics,
    /// Per-publisher throttles of CONGESTION signals and keyframe requests.
    feedback: Feedback,
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
            seq_step: 1,
            sessions: HashMap::new(),
            meetings: HashMap::new(),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            metrics: Metrics::default(),
            feedback: Feedback::default(),
            stopping: false,
            removed: HashMap::new(),
        }
    }

    /// This relay as shard `index` of `count` sharing one node id (a node that spreads its
    /// meetings over several cores): its session ids use the sequence numbers `index + 1`,
    /// `index + 1 + count`, …, so no two shards assign the same id. Call before any join.
    pub fn into_shard(mut self, index: u32, count: u32) -> Self {
        let count = count.max(1);
        self.next_seq = index % count + 1;
        self.seq_step = count;
        self
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
        self.timers.next_due()
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

    /// Local session `session` disconnected. Its PARTICIPANT_LEFT is announced after the
    /// reconnect grace unless the same user joins the meeting again first, here or through
    /// another node; never when the user already has (a newer session replaced it). Unknown
    /// sessions (already closed) are ignored.
    pub fn handle_leave(&mut self, now: Instant, session: SessionId) {
        let Some(s) = self.sessions.remove(&session) else {
            return;
        };
        self.feedback.forget(session);
        self.metrics.queued_bytes = self
            .metrics
            .queued_bytes
            .saturating_sub(s.queue.queued() as u64);
        if let Some(meeting) = self.meetings.get_mut(&s.meeting) {
            let due = now + self.config.reconnect_grace;
            let leaves = meeting.remove_local(session, s.user_bytes, due);
            for &other in &meeting.local {
                if let Some(o) = self.sessions.get_mut(&other) {
                    o.queue.forget_publisher(session);
                }
            }
            if leaves {
                self.timers.push(due, Timer::Leave(s.meeting));
            } else {
                self.metrics.leaves_replaced += 1;
                self.forget_meeting_if_unused(&s.meeting);
            }
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

    /// Runs every timer due at `now`: idle sessions, stalled receivers, announced leaves, silent
    /// remote peers, presence digests.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Idle(id) => self.check_idle(now, id),
                Timer::Stall { session, progress } => self.check_stall(now, session, progress),
                Timer::Leave(meeting) => self.announce_leaves(now, &meeting),
                Timer::RemoteExpiry(meeting) => self.expire_remote(now, &meeting),
                Timer::PresenceDigest(meeting) => self.send_presence_digest(now, &meeting),
            }
        }
    }

    fn count_in(&mut self, len: usize) {
        self.metrics.packets_in += 1;
        self.metrics.bytes_in += len as u64;
    }
}
