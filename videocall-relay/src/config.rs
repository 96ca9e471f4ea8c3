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
    /// Extra bytes above `queue_video_bytes` that only audio may use, so audio keeps flowing
    /// while video is dropped; past that even audio is dropped (a dead reader must not grow
    /// memory).
    pub queue_audio_headroom_bytes: usize,
    /// Bytes of control traffic (keys, meeting events, heartbeats, diagnostics) a session's
    /// queue may hold, in a budget of its own: control can neither starve media nor be starved
    /// by it.
    pub queue_control_bytes: usize,
    /// Unwritten bytes across every session of the node; past it video is dropped for everyone
    /// (and audio and control past an eighth more), so memory stays bounded whatever the number
    /// of slow readers.
    pub max_node_queued_bytes: usize,
    /// A session that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout: Duration,
    /// How long a PARTICIPANT_LEFT waits for the same user to come back.
    pub reconnect_grace: Duration,
    /// Sustained inbound bytes per second allowed per session (burst: one second plus one
    /// max-size frame).
    pub max_inbound_bytes_per_sec: u64,
    /// Sustained inbound packets per second allowed per session (burst: two seconds' worth).
    pub max_inbound_packets_per_sec: u64,
    /// Sustained inbound bytes per second of control traffic (everything but audio and video)
    /// per session (burst: four seconds' worth): keys and heartbeats need little, and junk
    /// control traffic reaches every receiver.
    pub max_control_bytes_per_sec: u64,
    /// A session that stays over its inbound rate limit for this long is closed.
    pub rate_limit_grace: Duration,
    /// A session whose socket writes nothing for this long while the relay has packets queued
    /// for it (and has dropped some for lack of room) is closed.
    pub stall_timeout: Duration,
    /// Participants on other nodes one meeting may hold, as learnt from the bus.
    pub max_remote_per_meeting: usize,
    /// Key of the reconnect secrets the relay issues at join (HMAC-SHA256). Nodes that share it
    /// (derived from the shared `JWT_SECRET`) accept each other's secrets, so a client may
    /// reconnect to another node.
    pub reconnect_key: [u8; 32],
    /// How often a meeting's sessions that take PRESENCE digests (`?presence=1`) are sent the
    /// next chunk of its presence table (issue #17). Changes reach them at once regardless.
    pub presence_digest_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            max_frame_bytes: 4 * 1024 * 1024,
            max_sessions_per_meeting: 1000,
            max_meetings: 10_000,
            queue_video_bytes: 512 * 1024,
            queue_audio_headroom_bytes: 128 * 1024,
            queue_control_bytes: 256 * 1024,
            max_node_queued_bytes: 256 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(3),
            max_inbound_bytes_per_sec: 4 * 1024 * 1024,
            max_inbound_packets_per_sec: 1000,
            max_control_bytes_per_sec: 64 * 1024,
            rate_limit_grace: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(10),
            max_remote_per_meeting: 10_000,
            reconnect_key: [0; 32],
            presence_digest_interval: Duration::from_secs(3),
        }
    }
}

/// Signals the relay sends on its own are rate limited per target: at most
/// [`CONGESTION_PER_SEC`] CONGESTION per second to a publisher, and at most
/// [`KEYFRAME_REQUESTS_PER_SEC`] KEYFRAME_REQUESTs per second from or to one session.
pub const CONGESTION_PER_SEC: usize = 1;
/// See [`CONGESTION_PER_SEC`].
pub const KEYFRAME_REQUESTS_PER_SEC: usize = 2;

/// At most one keyframe request reaches a publisher in this interval, however many receivers
/// (local or on other nodes) ask: one keyframe serves them all.
pub const KEYFRAME_FORWARD_INTERVAL: Duration = Duration::from_millis(500);

/// At most one RELAY_NOTICE a second goes to a session, whatever it keeps sending.
pub const NOTICES_PER_SEC: usize = 1;

/// Bytes of a SUBSCRIPTION packet accepted for a meeting of `participants`: two lists of at most
/// that many ids (a varint is at most 10 bytes, plus a tag each and the packet framing). A
/// larger packet is refused before it is decoded.
pub const fn max_subscription_bytes(participants: usize) -> usize {
    2 * participants * 11 + 64
}
