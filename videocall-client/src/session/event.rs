//! What a session tells its driver and application: where it is, what to do to the transport,
//! what happened, and why a call was refused.

use std::time::Duration;

use videocall_types::{
    FinalClose, HeartbeatMetadata, MediaPacket, PacketWrapper, RelayNotice, SessionId, UserId,
};

use crate::chat::{ChatEntry, ChatError};
use crate::e2ee::{E2eeError, SafetyCode};

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started.
    Idle,
    /// Waiting for the transport to open and the relay to assign a session (attempt n ≥ 1).
    Connecting {
        /// Attempt number, 1 for the first.
        attempt: u32,
    },
    /// In the meeting.
    Joined {
        /// Our session id.
        session: SessionId,
    },
    /// Waiting to reconnect.
    Backoff {
        /// The attempt that comes next.
        attempt: u32,
        /// When it starts.
        until: Duration,
    },
    /// Left (or gave up); nothing more happens.
    Closed,
}

/// What the driver must do to the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a transport to the relay (attempt n ≥ 1); report with `handle_connected` or
    /// `handle_disconnected`.
    Connect {
        /// Attempt number.
        attempt: u32,
        /// The relay asked us to leave it (it drains for an update): a driver that knows
        /// several relays starts with another one than the last (behind a load balancer the
        /// same URL reaches another node, the draining one failing its health checks).
        elsewhere: bool,
    },
    /// Close the transport.
    Close,
}

/// A media packet from a peer, with the identity the relay stamped.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFrom {
    /// The sender's session.
    pub session: SessionId,
    /// The sender's user id.
    pub user: UserId,
    /// The packet.
    pub packet: MediaPacket,
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The relay assigned us a session: we are in the meeting.
    Joined {
        /// Our session id.
        session: SessionId,
    },
    /// Someone is in the meeting (sent for everyone present when we join).
    PeerJoined {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
    },
    /// Someone left.
    PeerLeft {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
    },
    /// Media (video, audio, screen, heartbeat) from a peer.
    Media(MediaFrom),
    /// A peer's camera/mic/screen/speaking state is new or changed (from its heartbeat, or the
    /// relay's PRESENCE digest).
    PeerState {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
        /// What they have on.
        state: HeartbeatMetadata,
    },
    /// A peer (or the relay, for a receiver that skipped frames) wants a keyframe from us; with
    /// E2EE also when peers just received our sender key (they can start decoding).
    KeyframeRequested,
    /// A receiver is dropping our video: lower the bitrate.
    Congestion {
        /// Who is dropping.
        receiver: UserId,
    },
    /// A round trip to the relay and back took this long.
    Rtt(Duration),
    /// The relay refused something we sent (too large, too fast), or is about to close us,
    /// and says why (`message` is for people).
    RelayNotice(RelayNotice),
    /// A host asked us to mute our microphone (the relay's MEETING `MUTE_REQUESTED`).
    MuteRequested,
    /// A chat message from a peer (live, or from a newcomer's history: `via` then names the
    /// member who re-sent it). Each message id is told once.
    Chat(ChatEntry),
    /// A peer raised or lowered its hand (told again to newcomers while raised).
    Hand {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
        /// Raised (true) or lowered.
        raised: bool,
    },
    /// A peer reacted with one of the allowed emoji.
    Reaction {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
        /// The emoji.
        emoji: String,
    },
    /// A host lowered our raised hand (the session lowered it and told everyone).
    HandLoweredByHost,
    /// A packet this core does not interpret (keys for E2EE, diagnostics, …).
    Other(PacketWrapper),
    /// E2EE: the meeting's safety code changed (a key arrived, someone left, we re-joined).
    SafetyCode(SafetyCode),
    /// E2EE: a peer's media cannot be shown: it sends in clear while we encrypt
    /// (`peer_encrypts` false), or it encrypts while we do not (true). Said once per peer
    /// session; its media is dropped and counted.
    E2eeMismatch {
        /// Their session.
        session: SessionId,
        /// Their user id.
        user: UserId,
        /// Whether the peer seals its media.
        peer_encrypts: bool,
    },
    /// The relay ended our session for good (a host removed us or ended the meeting, or a
    /// newer connection of ours replaced this one): the session is closed and does not
    /// reconnect. Said once, after the [`Event::PeerLeft`] of everyone present.
    Ended(FinalClose),
    /// The connection was lost; `retry_in` is when we reconnect (None: we stay closed).
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Option<Duration>,
    },
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Media can only be sent while joined.
    #[error("not in the meeting (state {0:?})")]
    NotJoined(ConnectionState),
    /// A packet from the relay could not be decoded.
    #[error("malformed packet from the relay: {0}")]
    Malformed(String),
    /// E2EE refused a key packet or could not seal.
    #[error("E2EE: {0}")]
    E2ee(#[from] E2eeError),
    /// A chat message or reaction that breaks a rule (empty, too long, emoji not allowed).
    #[error("chat: {0}")]
    Chat(ChatError),
}
