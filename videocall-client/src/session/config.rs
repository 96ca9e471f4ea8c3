//! What a session is configured with.

use std::time::Duration;

use videocall_types::{MeetingId, UserId};

/// What the session is configured with.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Who we are.
    pub user_id: UserId,
    /// Which meeting.
    pub meeting_id: MeetingId,
    /// Heartbeat period (the relay closes sessions silent for its idle timeout).
    pub heartbeat_interval: Duration,
    /// RTT probe period.
    pub rtt_interval: Duration,
    /// A connection attempt that has not produced SESSION_ASSIGNED by then is given up.
    pub connect_timeout: Duration,
    /// Reconnect after a lost connection (with [`RECONNECT_BACKOFF`](super::RECONNECT_BACKOFF)); false: stay closed.
    pub reconnect: bool,
    /// A room token (JWT from the meeting API): the session joins by `/lobby?token=…`, and
    /// `user_id` / `meeting_id` must be the token's. Without one it joins an open meeting by
    /// `/lobby/{user_id}/{meeting_id}`.
    pub token: Option<String>,
    /// Ask the relay for PRESENCE digests (`?presence=1`): peers' heartbeats then arrive only
    /// when their state changes. False: every heartbeat, as a client of the original gets.
    pub presence: bool,
}

impl ClientConfig {
    /// Defaults: heartbeat and RTT probe every second, 10 s connect timeout, reconnect on,
    /// presence digests asked for.
    pub fn new(user_id: UserId, meeting_id: MeetingId) -> Self {
        Self {
            user_id,
            meeting_id,
            heartbeat_interval: Duration::from_secs(1),
            rtt_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
            reconnect: true,
            token: None,
            presence: true,
        }
    }
}
