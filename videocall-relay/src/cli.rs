//! The relay's command-line flags and environment variables, shared by every service binary
//! (flattened into each binary's own clap struct), and the bus they select.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use videocall_auth::{AllowOpen, MeetingGate, TokenKey, TokensOnly, WeakSecret};

use crate::RelayConfig;
use crate::bus::{Bus, InProcessBus, NatsBus, NatsError};

/// Relay limits, timings and the bus.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// NATS server joining this node to others (e.g. nats://127.0.0.1:4222), or several servers
    /// of one cluster separated by commas. Absent: the node runs alone on an in-process bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Relay core shards of this node, each a thread of its own: a meeting lives on one shard
    /// (a hash of its id), so a node's meetings use several cores. Node-wide limits
    /// (--max-meetings, --max-node-queued-bytes) are split between shards. Absent: the number
    /// of available cores; 1: one relay task on the service's runtime.
    #[arg(long, env = "RELAY_SHARDS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub relay_shards: Option<u16>,
    /// This node's id in session ids (20 bits); random when absent.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<u32>,
    /// Largest packet accepted from a client, in bytes.
    #[arg(long, env = "MAX_FRAME_BYTES", default_value_t = RelayConfig::default().max_frame_bytes)]
    pub max_frame_bytes: usize,
    /// Most participants in one meeting on this node.
    #[arg(long, env = "MAX_SESSIONS_PER_MEETING", default_value_t = RelayConfig::default().max_sessions_per_meeting)]
    pub max_sessions_per_meeting: usize,
    /// Most meetings served by this node.
    #[arg(long, env = "MAX_MEETINGS", default_value_t = RelayConfig::default().max_meetings)]
    pub max_meetings: usize,
    /// Unwritten bytes per session before video is dropped (skip to keyframe).
    #[arg(long, env = "QUEUE_VIDEO_BYTES", default_value_t = RelayConfig::default().queue_video_bytes)]
    pub queue_video_bytes: usize,
    /// Extra queue room per session that only audio may use (video is dropped first).
    #[arg(long, env = "QUEUE_AUDIO_HEADROOM_BYTES", default_value_t = RelayConfig::default().queue_audio_headroom_bytes)]
    pub queue_audio_headroom_bytes: usize,
    /// Queue room per session for control traffic (keys, meeting events, heartbeats), apart
    /// from media.
    #[arg(long, env = "QUEUE_CONTROL_BYTES", default_value_t = RelayConfig::default().queue_control_bytes)]
    pub queue_control_bytes: usize,
    /// Unwritten bytes across all sessions of the node before video is dropped for everyone.
    #[arg(long, env = "MAX_NODE_QUEUED_BYTES", default_value_t = RelayConfig::default().max_node_queued_bytes)]
    pub max_node_queued_bytes: usize,
    /// Seconds without any packet before a session is closed.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = RelayConfig::default().idle_timeout.as_secs())]
    pub idle_timeout_secs: u64,
    /// Milliseconds a PARTICIPANT_LEFT waits for the user to reconnect.
    #[arg(long, env = "RECONNECT_GRACE_MS", default_value_t = RelayConfig::default().reconnect_grace.as_millis() as u64)]
    pub reconnect_grace_ms: u64,
    /// Milliseconds between two PRESENCE digests to the sessions that take them (`?presence=1`);
    /// their peers' state changes reach them at once (at least 100).
    #[arg(long, env = "PRESENCE_DIGEST_MS", default_value_t = RelayConfig::default().presence_digest_interval.as_millis() as u64)]
    pub presence_digest_ms: u64,
    /// Sustained inbound bytes per second per session.
    #[arg(long, env = "MAX_INBOUND_BYTES_PER_SEC", default_value_t = RelayConfig::default().max_inbound_bytes_per_sec)]
    pub max_inbound_bytes_per_sec: u64,
    /// Sustained inbound packets per second per session.
    #[arg(long, env = "MAX_INBOUND_PACKETS_PER_SEC", default_value_t = RelayConfig::default().max_inbound_packets_per_sec)]
    pub max_inbound_packets_per_sec: u64,
    /// Sustained inbound bytes per second of control traffic (not audio or video) per session.
    #[arg(long, env = "MAX_CONTROL_BYTES_PER_SEC", default_value_t = RelayConfig::default().max_control_bytes_per_sec)]
    pub max_control_bytes_per_sec: u64,
    /// Milliseconds a session may stay over its rate limit before it is closed.
    #[arg(long, env = "RATE_LIMIT_GRACE_MS", default_value_t = RelayConfig::default().rate_limit_grace.as_millis() as u64)]
    pub rate_limit_grace_ms: u64,
    /// Seconds a session may write nothing while its queue is full before it is closed.
    #[arg(long, env = "STALL_TIMEOUT_SECS", default_value_t = RelayConfig::default().stall_timeout.as_secs())]
    pub stall_timeout_secs: u64,
    /// Seconds a stopping node (SIGTERM, Ctrl-C) waits for its clients to move to another node
    /// after telling them to (MEETING NODE_DRAINING; its health check fails meanwhile, and it
    /// refuses joins); it goes on as soon as they have. 0: no drain, close at once.
    #[arg(long, env = "DRAIN_SECONDS", default_value_t = 10)]
    pub drain_seconds: u64,
    /// Seconds a stopping node then takes at most to close the sessions left and publish their
    /// leaves; the process ends by then even under load.
    #[arg(long, env = "DRAIN_TIMEOUT_SECS", default_value_t = 5)]
    pub drain_timeout_secs: u64,
    /// Participants on other nodes one meeting may hold.
    #[arg(long, env = "MAX_REMOTE_PER_MEETING", default_value_t = RelayConfig::default().max_remote_per_meeting)]
    pub max_remote_per_meeting: usize,
    /// Secret of room tokens (HS256, at least 16 bytes; the meeting API's). With it the relay
    /// admits `/lobby?token=…`; nodes sharing it also accept each other's reconnect secrets.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Refuse plain `/lobby/{user}/{meeting}` joins (403): only room tokens open meetings.
    /// Without it (and without a meeting store) every meeting is open.
    #[arg(long, env = "REQUIRE_TOKENS")]
    pub require_tokens: bool,
}

impl RelayArgs {
    /// How long a stopping node waits for its clients to move (`--drain-seconds`; zero: not
    /// at all).
    pub fn drain_seconds(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }

    /// How long a stopping node may take to close what is left (`--drain-timeout-secs`, at
    /// least one second).
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs.max(1))
    }

    /// The number of relay shards (`--relay-shards`, else the available cores).
    pub fn relay_shards(&self) -> usize {
        match self.relay_shards {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
        .clamp(1, crate::node::MAX_SHARDS)
    }

    /// The core configuration these flags describe.
    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            node_id: self.node_id.unwrap_or_else(random_node_id),
            max_frame_bytes: self.max_frame_bytes,
            max_sessions_per_meeting: self.max_sessions_per_meeting,
            max_meetings: self.max_meetings,
            queue_video_bytes: self.queue_video_bytes,
            queue_audio_headroom_bytes: self.queue_audio_headroom_bytes,
            queue_control_bytes: self.queue_control_bytes,
            max_node_queued_bytes: self.max_node_queued_bytes,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            reconnect_grace: Duration::from_millis(self.reconnect_grace_ms),
            max_inbound_bytes_per_sec: self.max_inbound_bytes_per_sec,
            max_inbound_packets_per_sec: self.max_inbound_packets_per_sec,
            max_control_bytes_per_sec: self.max_control_bytes_per_sec,
            rate_limit_grace: Duration::from_millis(self.rate_limit_grace_ms),
            stall_timeout: Duration::from_secs(self.stall_timeout_secs.max(1)),
            max_remote_per_meeting: self.max_remote_per_meeting,
            reconnect_key: self.reconnect_key(),
            presence_digest_interval: Duration::from_millis(self.presence_digest_ms.max(100)),
        }
    }

    /// The room-token key of `--jwt-secret`, if given; refused when too short.
    pub fn token_key(&self) -> Result<Option<TokenKey>, WeakSecret> {
        self.jwt_secret
            .as_deref()
            .map(|s| TokenKey::new(s.as_bytes()))
            .transpose()
    }

    /// Who decides plain joins when no meeting store does: every meeting open, or none
    /// (`--require-tokens`).
    pub fn meeting_gate(&self) -> Arc<dyn MeetingGate> {
        if self.require_tokens {
            Arc::new(TokensOnly)
        } else {
            Arc::new(AllowOpen)
        }
    }

    /// The reconnect-secret key: derived from the shared JWT secret (so every node of a
    /// deployment accepts the others' secrets), else random for this process.
    fn reconnect_key(&self) -> [u8; 32] {
        use sha2::Digest;
        match &self.jwt_secret {
            Some(secret) => {
                let mut hash = sha2::Sha256::new();
                hash.update(b"videocall reconnect secret key\0");
                hash.update(secret.as_bytes());
                hash.finalize().into()
            }
            None => {
                let mut key = [0; 32];
                getrandom::getrandom(&mut key).expect("the OS random source is available");
                key
            }
        }
    }

    /// The bus these flags select: NATS when a URL is given (started even while the server is
    /// unreachable; it keeps trying and health checks report it), else in-process.
    pub async fn connect_bus(&self) -> Result<Arc<dyn Bus>, NatsError> {
        Ok(match &self.nats_url {
            Some(url) => Arc::new(NatsBus::connect(url, false).await?),
            None => Arc::new(InProcessBus::new().connect()),
        })
    }
}

/// A node id that differs between processes with high probability (std's hasher keys are
/// random per process), never zero.
fn random_node_id() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let id = (hasher.finish() as u32) & 0xF_FFFF;
    id.max(1)
}
