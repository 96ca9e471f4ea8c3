//! One local session's state: who it is, what it may do, its outbound queue and its limits.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use videocall_types::{MeetingId, SessionId, UserId};

use super::admission::Grants;
use crate::config::{KEYFRAME_REQUESTS_PER_SEC, NOTICES_PER_SEC, RelayConfig};
use crate::limit::{TokenBucket, WindowLimit};
use crate::queue::OutQueue;
use crate::subject;
use crate::subscription::Subscription;

#[derive(Debug)]
pub(super) struct Session {
    pub(super) user: UserId,
    pub(super) user_bytes: Bytes,
    /// Name shown to others (capped at [`super::MAX_DISPLAY_NAME_BYTES`]).
    pub(super) display_name: Bytes,
    /// What the session may do: without `publish` its media is dropped.
    pub(super) grants: Grants,
    pub(super) meeting: MeetingId,
    /// The bus subject it publishes on.
    pub(super) subject: Arc<str>,
    pub(super) last_inbound: Instant,
    pub(super) queue: OutQueue,
    /// Counts reports of written bytes: a stall check compares it with its value when armed.
    pub(super) progress: u64,
    pub(super) stall_armed: bool,
    pub(super) subscription: Option<Subscription>,
    pub(super) keyframe_requests: WindowLimit<KEYFRAME_REQUESTS_PER_SEC>,
    pub(super) inbound_bytes: TokenBucket,
    pub(super) inbound_packets: TokenBucket,
    pub(super) inbound_control: TokenBucket,
    /// Since when the session has been over its rate limit without a second's break.
    pub(super) over_limit_since: Option<Instant>,
    pub(super) last_over_limit: Option<Instant>,
    pub(super) notices: WindowLimit<NOTICES_PER_SEC>,
    /// It takes PRESENCE digests (`?presence=1`): it is sent a peer's heartbeat only when the
    /// peer's state changes.
    pub(super) presence: bool,
}

impl Session {
    /// A session that joined at `now`, with full rate-limit buckets and an empty queue.
    pub(super) fn new(
        now: Instant,
        config: &RelayConfig,
        id: SessionId,
        user: UserId,
        meeting: MeetingId,
        display_name: Bytes,
        grants: Grants,
    ) -> Self {
        Self {
            subject: subject::session_subject(&meeting, id),
            user_bytes: Bytes::copy_from_slice(user.as_bytes()),
            user,
            display_name,
            grants,
            meeting,
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
            presence: false,
        }
    }
}
