//! What the relay refuses, and why.

use videocall_types::{MeetingId, PacketType, UserId};

/// Why a session could not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The meeting already holds the most sessions allowed on this node.
    #[error("meeting {meeting} is full ({max} participants)")]
    MeetingFull {
        /// The meeting.
        meeting: MeetingId,
        /// The limit.
        max: usize,
    },
    /// This node already serves the most meetings allowed.
    #[error("this server is full ({max} meetings)")]
    NodeFull {
        /// The limit.
        max: usize,
    },
    /// The node is shutting down; join another.
    #[error("this server is shutting down; try again")]
    ShuttingDown,
    /// The session counter of this node is exhausted (4 billion sessions): restart the node.
    #[error("this server has run out of session ids; restart it")]
    SessionIdsExhausted,
    /// The user is already in the meeting and this connection did not prove it is the same
    /// client (no token for that user, no valid reconnect secret): no takeover.
    #[error("{user} is already in this meeting")]
    UserPresent {
        /// The user claimed.
        user: UserId,
    },
    /// A host removed this user from the meeting.
    #[error("removed from this meeting by a host")]
    Removed,
}

impl JoinError {
    /// The HTTP status a transport answers this refusal with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UserPresent { .. } => 409,
            Self::Removed => 403,
            Self::MeetingFull { .. } | Self::NodeFull { .. } | Self::ShuttingDown => 503,
            Self::SessionIdsExhausted => 503,
        }
    }

    /// Short label for counters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UserPresent { .. } => "user_present",
            Self::Removed => "removed",
            Self::MeetingFull { .. } => "meeting_full",
            Self::NodeFull { .. } => "node_full",
            Self::ShuttingDown => "shutting_down",
            Self::SessionIdsExhausted => "session_ids_exhausted",
        }
    }
}

/// Why an inbound packet was discarded. The session stays open; the adapter may close sessions
/// that keep sending bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// Larger than `max_frame_bytes`.
    #[error("packet of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a `PacketWrapper`.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A packet type this relay does not know.
    #[error("unknown packet type {0}")]
    UnknownPacketType(i32),
    /// A type only the server may send.
    #[error("packet type {0:?} may only be sent by the server")]
    ServerOnly(PacketType),
    /// Over the per-session byte or packet rate.
    #[error("session exceeds its inbound rate limit")]
    RateLimited,
    /// A KEYFRAME_REQUEST over the per-session limit.
    #[error("too many keyframe requests")]
    KeyframeRequestThrottled,
    /// A media frame larger than its receivers' queue for its kind: it could never be delivered.
    #[error("frame of {len} bytes exceeds the {max}-byte queue of its receivers")]
    FrameTooLarge {
        /// Its length (identity-stamped).
        len: usize,
        /// The receivers' queue budget for its kind.
        max: usize,
    },
    /// A SUBSCRIPTION larger than the meeting's size allows.
    #[error("subscription of {len} bytes exceeds the meeting's {max}-byte limit")]
    SubscriptionTooLarge {
        /// Its length.
        len: usize,
        /// The limit for the meeting's current size.
        max: usize,
    },
    /// The session is not (or no longer) known.
    #[error("unknown session")]
    UnknownSession,
    /// Media from a session whose grants do not include publishing (an observer).
    #[error("this session may not publish media")]
    NotPublisher,
    /// Video or audio (or chat) in clear in an end-to-end encrypted meeting.
    #[error("media or chat in clear is not accepted in an end-to-end encrypted meeting")]
    CleartextInE2eeMeeting,
    /// A host request (remove, mute, end) from a session without the host grant.
    #[error("only a host may remove participants, ask them to mute or end the meeting")]
    NotHost,
    /// A key packet addressed to a session that is not in the sender's meeting.
    #[error("key packet for session {0}, which is not in this meeting")]
    KeyTargetUnknown(u64),
    /// A CHAT or REACTION over its size cap.
    #[error("{kind:?} of {len} bytes exceeds the {max}-byte limit")]
    ChatTooLarge {
        /// CHAT or REACTION.
        kind: videocall_types::PacketType,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Chat history addressed to a session that is not in the sender's meeting.
    #[error("chat for session {0}, which is not in this meeting")]
    ChatTargetUnknown(u64),
}
