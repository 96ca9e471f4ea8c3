//! Why the relay closes a session, as text, counter label and close code.

use videocall_types::FinalClose;

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
            CloseReason::Removed => FinalClose::Removed.as_str(),
            CloseReason::MeetingEnded => FinalClose::MeetingEnded.as_str(),
            CloseReason::Replaced => FinalClose::Replaced.as_str(),
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
        match (self, self.final_close()) {
            (_, Some(close)) => close.code(),
            (CloseReason::Shutdown, None) => 1001,
            _ => 1008,
        }
    }

    /// The final close (client: do not reconnect) this is, if it is one; its code is the one
    /// clients read ([`FinalClose::from_code`]).
    pub fn final_close(self) -> Option<FinalClose> {
        match self {
            CloseReason::Removed => Some(FinalClose::Removed),
            CloseReason::MeetingEnded => Some(FinalClose::MeetingEnded),
            CloseReason::Replaced => Some(FinalClose::Replaced),
            _ => None,
        }
    }
}
