//! Closing sessions: why (as text, counter label and close code), and the timer checks that
//! close idle and stalled sessions.

use std::time::Instant;

use videocall_types::SessionId;

use super::timer::Timer;
use super::{Output, Relay};

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
    /// A host removed the participant.
    Removed,
    /// A host ended the meeting.
    MeetingEnded,
    /// The same participant connected again (proved by its token or reconnect secret).
    Replaced,
}

impl CloseReason {
    /// Every reason, in rendering order.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::IdleTimeout,
        CloseReason::RateLimited,
        CloseReason::Stalled,
        CloseReason::Shutdown,
        CloseReason::Removed,
        CloseReason::MeetingEnded,
        CloseReason::Replaced,
    ];

    /// Text for a close frame or log line.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::RateLimited => "closed: over the rate limit for too long",
            CloseReason::Stalled => "closed: not reading what the server sends",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::Removed => "removed from the meeting by a host",
            CloseReason::MeetingEnded => "the meeting has ended",
            CloseReason::Replaced => "replaced by a new connection of the same participant",
        }
    }

    /// The label value used on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::Stalled => "stalled",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Removed => "removed",
            CloseReason::MeetingEnded => "meeting_ended",
            CloseReason::Replaced => "replaced",
        }
    }

    /// The application close code both transports use (WebSocket close code, WebTransport
    /// application error code), so a client can tell a removal or an end (do not reconnect)
    /// from a failure (reconnect).
    pub fn close_code(self) -> u16 {
        match self {
            CloseReason::Shutdown => 1001,
            CloseReason::Removed => 4010,
            CloseReason::MeetingEnded => 4011,
            CloseReason::Replaced => 4012,
            CloseReason::IdleTimeout | CloseReason::RateLimited | CloseReason::Stalled => 1008,
        }
    }
}

impl Relay {
    /// Closes local session `session` for `reason`: its socket is told, and it leaves.
    pub(super) fn close(&mut self, now: Instant, session: SessionId, reason: CloseReason) {
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

    /// The idle timer of `id` fired: closes it if nothing came from it for the idle timeout,
    /// else re-arms the timer for when that would be.
    pub(super) fn check_idle(&mut self, now: Instant, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let deadline = s.last_inbound + self.config.idle_timeout;
        if deadline > now {
            self.timers.push(deadline, Timer::Idle(id));
            return;
        }
        self.close(now, id, CloseReason::IdleTimeout);
    }

    /// A receiver's queue overflowed `stall_timeout` ago: if its socket has reported nothing
    /// written since, it has stopped reading, and is closed.
    pub(super) fn check_stall(&mut self, now: Instant, id: SessionId, progress: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        s.stall_armed = false;
        if s.progress == progress && s.queue.queued() > 0 {
            self.close(now, id, CloseReason::Stalled);
        }
    }
}
