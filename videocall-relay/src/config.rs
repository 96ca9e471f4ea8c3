//! Limits and timings of one relay node.

use std::time::Duration;

/// Configuration of a [`Relay`](crate::Relay). Every limit is explicit so that exceeding it is an
/// outcome the caller sees, never a panic or an unbounded queue.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// This node's id (low 20 bits used); part of every session id it assigns, so ids stay
    /// unique across nodes on one bus. Pick it at random per process.
    pub node_id: u32,
    /// Largest inbound packet accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Most sessions one meeting may hold on this node.
    pub max_sessions_per_meeting: usize,
    /// Most meetings this node serves at once.
    pub max_meetings: usize,
    /// Bytes a session's outbound queue may hold before video is dropped (skip to keyframe).
    pub queue_video_bytes: usize,
    /// Extra bytes above `queue_video_bytes` kept for audio and control under congestion; past
    /// that even they are dropped (a dead reader must not grow memory).
    pub queue_control_headroom_bytes: usize,
    /// A session that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
    /// How long a PARTICIPANT_LEFT waits for the same user to come back.
    pub reconnect_grace: Duration,
    /// Sustained inbound bytes per second allowed per session (burst: one second plus one
    /// max-size frame).
    pub max_inbound_bytes_per_sec: u64,
    /// Sustained inbound packets per second allowed per session (burst: two seconds' worth).
    pub max_inbound_packets_per_sec: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            max_frame_bytes: 4 * 1024 * 1024,
            max_sessions_per_meeting: 1000,
            max_meetings: 10_000,
            queue_video_bytes: 512 * 1024,
            queue_control_headroom_bytes: 256 * 1024,
            idle_timeout: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(3),
            max_inbound_bytes_per_sec: 4 * 1024 * 1024,
            max_inbound_packets_per_sec: 1000,
        }
    }
}

/// Signals the relay sends on its own are rate limited per target: at most
/// [`CONGESTION_PER_SEC`] CONGESTION per second to a publisher, and at most
/// [`KEYFRAME_REQUESTS_PER_SEC`] KEYFRAME_REQUESTs per second from or to one session.
pub const CONGESTION_PER_SEC: usize = 1;
/// See [`CONGESTION_PER_SEC`].
pub const KEYFRAME_REQUESTS_PER_SEC: usize = 2;
