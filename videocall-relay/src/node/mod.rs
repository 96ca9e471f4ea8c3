//! The async driver of one relay node: one or more shard tasks, each owning a [`Relay`] for the
//! meetings that hash onto it, carrying out its outputs on a [`Bus`] and on per-session
//! channels, and firing its timers.
//!
//! Transports (WebSocket, WebTransport) are thin: for each connection they call
//! [`NodeHandle::join`], copy socket reads into [`SessionHandle::send`] and write what
//! [`SessionHandle::recv`] yields, reporting written bytes with [`SessionHandle::transmitted`].
//! The outbound channel of a session is unbounded, but the core never queues more than
//! `queue_video_bytes + queue_audio_headroom_bytes + queue_control_bytes` unwritten bytes for
//! it, and the node never more than about `max_node_queued_bytes` in all.
//!
//! **Shards** ([`NodeHandle::spawn_sharded`]): a meeting lives on exactly one shard, chosen by a
//! stable hash of its id ([`shard_index`]), so everything about it (joins, packets, host
//! actions, its one bus subscription) goes to that shard's task, and the shards share nothing
//! but the bus. With more than one, each shard runs on a thread of its own (a current-thread
//! tokio runtime), so one node uses several cores. Session ids stay unique across shards (shard
//! `i` of `n` assigns sequence numbers `i + 1`, `i + 1 + n`, …, under the node's one id), and
//! the node-wide limits are split between them (see [`shard_config`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};
use videocall_types::{MeetingId, SessionId, UserId};

use crate::bus::{Bus, BusState};
use crate::exposition::Exposition;
use crate::{CloseReason, Join, JoinError, Metrics, Relay, RelayConfig};

mod session;
mod task;

pub use session::{SessionHandle, SessionSender};

/// Commands waiting for a shard task, at most.
const COMMAND_QUEUE: usize = 64 * 1024;
/// How often the watchdog probes each shard task.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// The node is unresponsive (health checks fail, `/metrics` gives up) when one of its shard
/// tasks has not answered a probe for this long.
pub const RESPONSE_LIMIT: Duration = Duration::from_secs(1);
/// Most shards one node runs (`--relay-shards` is clamped to it).
pub const MAX_SHARDS: usize = 64;

/// What a session's transport must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Write this packet.
    Packet(bytes::Bytes),
    /// Close the connection for this reason; nothing follows.
    Close(CloseReason),
}

/// What a shard reports for `/metrics`.
#[derive(Debug)]
struct ShardStats {
    metrics: Metrics,
    sessions: usize,
    meetings: usize,
}

#[derive(Debug)]
enum Command {
    Join {
        join: Join,
        reply: oneshot::Sender<Result<(SessionId, mpsc::UnboundedReceiver<Outbound>), JoinError>>,
    },
    Inbound {
        session: SessionId,
        data: bytes::Bytes,
    },
    Transmitted {
        session: SessionId,
        bytes: usize,
    },
    Leave {
        session: SessionId,
    },
    Metrics {
        reply: oneshot::Sender<ShardStats>,
    },
    Probe {
        reply: oneshot::Sender<()>,
    },
    Host {
        meeting: MeetingId,
        action: HostCommand,
    },
}

#[derive(Debug)]
enum HostCommand {
    Remove(UserId),
    AskToMute(UserId),
    End,
}

/// One shard's channels and watchdog.
struct Shard {
    commands: mpsc::Sender<Command>,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    drain: mpsc::Sender<oneshot::Sender<()>>,
    watchdog: Arc<Watchdog>,
}

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    shards: Arc<[Shard]>,
    /// Set by [`NodeHandle::drain`]: health checks fail from then on.
    draining: Arc<AtomicBool>,
    bus: Arc<dyn Bus>,
}

/// When a shard task last answered a probe, in milliseconds since `start`.
#[derive(Debug)]
struct Watchdog {
    start: Instant,
    answered_ms: AtomicU64,
}

impl Watchdog {
    fn since_answer(&self) -> Duration {
        let answered = Duration::from_millis(self.answered_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(answered)
    }
}

/// Why the node could not take a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node task has stopped.
    #[error("the relay node has stopped")]
    Stopped,
    /// The node task did not answer within [`RESPONSE_LIMIT`].
    #[error("the relay node is not responding")]
    Unresponsive,
    /// The join was refused.
    #[error(transparent)]
    Join(#[from] JoinError),
}

/// The shard of `count` that serves `meeting`: FNV-1a of its id, so the same on every run and
/// every build.
pub fn shard_index(meeting: &MeetingId, count: usize) -> usize {
    if count <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in meeting.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % count as u64) as usize
}

/// The configuration of each of `count` shards of a node configured with `config`: node-wide
/// limits are split so that the node as a whole stays within them — `max_node_queued_bytes`
/// and `max_meetings` are divided by `count` (at least 1 each). A shard may thus refuse a
/// meeting, or drop video for its queued bytes, while another has room: meetings hash
/// unevenly. Per-session and per-meeting limits are unchanged (a meeting is on one shard).
pub fn shard_config(config: &RelayConfig, count: usize) -> RelayConfig {
    let count = count.max(1);
    let mut shard = config.clone();
    shard.max_node_queued_bytes = (config.max_node_queued_bytes / count).max(1);
    shard.max_meetings = (config.max_meetings / count).max(1);
    shard
}

impl NodeHandle {
    /// Starts a node of one shard on `bus`, as a task of the current tokio runtime, and returns
    /// its handle; the node runs until every handle (and every session) is dropped.
    pub fn spawn(config: RelayConfig, bus: Arc<dyn Bus>) -> Self {
        let (shard, task) = Self::shard(Relay::new(config), bus.clone());
        tokio::spawn(task);
        Self::with_shards(vec![shard], bus)
    }

    /// Starts a node of `shards` shards (clamped to 1..=[`MAX_SHARDS`]) on `bus`. One shard is
    /// [`NodeHandle::spawn`]; with more, each runs on a thread of its own (`relay-shard-<i>`,
    /// a current-thread runtime) with [`shard_config`]'s share of the limits. Must be called
    /// within a tokio runtime (the watchdog's probes run there). Fails if a thread or runtime
    /// cannot be created.
    pub fn spawn_sharded(
        config: RelayConfig,
        bus: Arc<dyn Bus>,
        shards: usize,
    ) -> std::io::Result<Self> {
        let count = shards.clamp(1, MAX_SHARDS);
        if count == 1 {
            return Ok(Self::spawn(config, bus));
        }
        let per_shard = shard_config(&config, count);
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let relay = Relay::new(per_shard.clone()).into_shard(index as u32, count as u32);
            let (shard, task) = Self::shard(relay, bus.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            std::thread::Builder::new()
                .name(format!("relay-shard-{index}"))
                .spawn(move || runtime.block_on(task))?;
            handles.push(shard);
        }
        Ok(Self::with_shards(handles, bus))
    }

    /// A shard's channels, its watchdog's probe (spawned here) and its task (for the caller to
    /// run).
    fn shard(
        relay: Relay,
        bus: Arc<dyn Bus>,
    ) -> (Shard, impl Future<Output = ()> + Send + 'static) {
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (shutdown, shutdown_rx) = mpsc::channel(1);
        let (drain, drain_rx) = mpsc::channel(1);
        let task = task::run(
            relay,
            bus,
            commands_rx,
            task::Stops {
                shutdown: shutdown_rx,
                drain: drain_rx,
            },
        );
        let watchdog = Arc::new(Watchdog {
            start: Instant::now(),
            answered_ms: AtomicU64::new(0),
        });
        tokio::spawn(task::probe(commands.downgrade(), watchdog.clone()));
        let shard = Shard {
            commands,
            shutdown,
            drain,
            watchdog,
        };
        (shard, task)
    }

    fn with_shards(shards: Vec<Shard>, bus: Arc<dyn Bus>) -> Self {
        Self {
            shards: shards.into(),
            draining: Arc::new(AtomicBool::new(false)),
            bus,
        }
    }

    /// How many shards the node runs.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that serves `meeting` ([`shard_index`]).
    pub fn shard_of(&self, meeting: &MeetingId) -> usize {
        shard_index(meeting, self.shards.len())
    }

    fn commands_for(&self, meeting: &MeetingId) -> &mpsc::Sender<Command> {
        &self.shards[self.shard_of(meeting)].commands
    }

    /// Whether every shard task answered the watchdog's probe within [`RESPONSE_LIMIT`]: a
    /// task stuck in one input (or drowning in commands) fails health checks instead of passing
    /// them while its meetings stand still.
    pub fn responsive(&self) -> bool {
        self.since_last_answer() <= RESPONSE_LIMIT
    }

    /// Time since the slowest shard task last answered a probe.
    pub fn since_last_answer(&self) -> Duration {
        self.shards
            .iter()
            .map(|s| s.watchdog.since_answer())
            .max()
            .unwrap_or_default()
    }

    /// Whether the node can take sessions, for health checks (`/healthz`, a load balancer's
    /// readiness): `Err` says why not — draining, a shard task not answering, the bus cut off.
    pub fn health(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining".to_owned());
        }
        if !self.responsive() {
            let waited = self.since_last_answer().as_millis();
            return Err(format!(
                "relay core not responding (last answer {waited} ms ago)"
            ));
        }
        match *self.bus.state().borrow() {
            BusState::Connected => Ok(()),
            BusState::Disconnected => Err("bus disconnected".to_owned()),
        }
    }

    /// Drains the node before it stops (a rolling update): joins are refused and
    /// [`NodeHandle::health`] fails from now on, every session is told to reconnect to another
    /// node (MEETING `NODE_DRAINING`), and this waits until they have gone and no leave is left
    /// that other nodes could hear ([`Relay::drained`]) on every shard, at most `limit`.
    /// Returns false if sessions were still there at the limit ([`NodeHandle::shutdown`]
    /// closes them).
    pub async fn drain(&self, limit: Duration) -> bool {
        self.draining.store(true, Ordering::Relaxed);
        let asked = ask_every_shard(self.shards.iter().map(|s| &s.drain));
        matches!(tokio::time::timeout(limit, asked).await, Ok(true))
    }

    /// A stopping service's drain (`--drain-seconds`): [`NodeHandle::drain`] for at most
    /// `limit` (nothing when zero), cut short when `interrupted` resolves (a second Ctrl-C or
    /// SIGTERM), with what happened logged. [`NodeHandle::shutdown`] comes next.
    pub async fn drain_before_stop(&self, limit: Duration, interrupted: impl Future<Output = ()>) {
        if limit.is_zero() {
            return;
        }
        info!("draining: clients are told to reconnect to another node; waiting up to {limit:?}");
        let started = Instant::now();
        let drained = tokio::select! {
            drained = self.drain(limit) => drained,
            () = interrupted => {
                info!("stopping at once (signalled again)");
                return;
            }
        };
        if drained {
            info!("drained in {:?}: every client has gone", started.elapsed());
        } else {
            warn!("clients still connected after {limit:?}: closing them");
        }
    }

    /// Stops the node: closes every session of every shard, publishes their leaves on the bus
    /// at once, waits (up to `limit`) for the bus to send them, and refuses joins from then
    /// on. Returns false if that did not finish within `limit`.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        let asked = ask_every_shard(self.shards.iter().map(|s| &s.shutdown));
        matches!(tokio::time::timeout(limit, asked).await, Ok(true))
    }

    /// Joins `user` to `meeting` as a trusted join ([`Join::trusted`]); the session's first
    /// packet is its SESSION_ASSIGNED.
    pub async fn join(&self, user: UserId, meeting: MeetingId) -> Result<SessionHandle, NodeError> {
        self.admit(Join::trusted(user, meeting)).await
    }

    /// Joins as admitted by the transport (grants, display name, proof; see
    /// [`Relay::handle_admit`]), on the meeting's shard: refused with
    /// [`JoinError::UserPresent`] on a takeover attempt, [`JoinError::Removed`] for a removed
    /// user.
    pub async fn admit(&self, join: Join) -> Result<SessionHandle, NodeError> {
        let commands = self.commands_for(&join.meeting).clone();
        let (reply, response) = oneshot::channel();
        commands
            .send(Command::Join { join, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        let (id, outbound) = response.await.map_err(|_| NodeError::Stopped)??;
        Ok(SessionHandle::new(id, commands, outbound))
    }

    /// A host removes `user` from `meeting`: its sessions on every node serving the meeting
    /// (over the bus) are closed at once with "removed from the meeting by a host", and its
    /// joins are refused. For the meeting API.
    pub async fn remove_participant(
        &self,
        meeting: MeetingId,
        user: UserId,
    ) -> Result<(), NodeError> {
        self.host(meeting, HostCommand::Remove(user)).await
    }

    /// A host asks `user` in `meeting` to mute: its sessions on every node get a MEETING
    /// `MUTE_REQUESTED` event. For the meeting API.
    pub async fn ask_to_mute(&self, meeting: MeetingId, user: UserId) -> Result<(), NodeError> {
        self.host(meeting, HostCommand::AskToMute(user)).await
    }

    /// A host ends `meeting`: every session on every node gets MEETING_ENDED and is closed.
    /// For the meeting API.
    pub async fn end_meeting(&self, meeting: MeetingId) -> Result<(), NodeError> {
        self.host(meeting, HostCommand::End).await
    }

    async fn host(&self, meeting: MeetingId, action: HostCommand) -> Result<(), NodeError> {
        self.commands_for(&meeting)
            .send(Command::Host { meeting, action })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// The node's counters in the Prometheus text format (every shard's summed, each metric
    /// once), with the sessions per shard and the bus state.
    ///
    /// Gives up with [`NodeError::Unresponsive`] after [`RESPONSE_LIMIT`] rather than hang.
    pub async fn render_metrics(&self) -> Result<String, NodeError> {
        let ask = async {
            let mut replies = Vec::with_capacity(self.shards.len());
            for shard in self.shards.iter() {
                let (reply, response) = oneshot::channel();
                shard
                    .commands
                    .send(Command::Metrics { reply })
                    .await
                    .map_err(|_| NodeError::Stopped)?;
                replies.push(response);
            }
            let mut stats = Vec::with_capacity(replies.len());
            for response in replies {
                stats.push(response.await.map_err(|_| NodeError::Stopped)?);
            }
            Ok::<_, NodeError>(stats)
        };
        let stats = tokio::time::timeout(RESPONSE_LIMIT, ask)
            .await
            .map_err(|_| NodeError::Unresponsive)??;
        let mut total = Metrics::default();
        let (mut sessions, mut meetings) = (0, 0);
        for shard in &stats {
            total.add(&shard.metrics);
            sessions += shard.sessions;
            meetings += shard.meetings;
        }
        let mut text = String::new();
        total.render_prometheus(sessions, meetings, &mut text);
        let connected = *self.bus.state().borrow() == BusState::Connected;
        let mut e = Exposition::new();
        let labels: Vec<String> = (0..stats.len()).map(|i| i.to_string()).collect();
        e.gauges(
            "videocall_shard_sessions",
            "Sessions on each shard of this node (a meeting lives on one shard).",
            "shard",
            labels
                .iter()
                .zip(&stats)
                .map(|(label, s)| (label.as_str(), s.sessions as f64)),
        );
        e.gauges(
            "videocall_bus_connected",
            "Whether the bus reaches the other nodes.",
            "bus",
            [(self.bus.kind(), f64::from(u8::from(connected)))],
        );
        e.counter(
            "videocall_bus_dropped_total",
            "Bus messages dropped on full queues or while cut off.",
            self.bus.dropped(),
        );
        // Milliseconds are precise enough for a watchdog that probes every 250 ms.
        let since = (self.since_last_answer().as_secs_f64() * 1000.0).round() / 1000.0;
        e.gauge(
            "videocall_node_response_seconds",
            "Time since the slowest shard task last answered the watchdog's probe.",
            since,
        );
        e.render(&mut text);
        Ok(text)
    }

    /// Watches the bus state (for health checks).
    pub fn bus_state(&self) -> watch::Receiver<BusState> {
        self.bus.state()
    }
}

/// Sends a stop request to every shard, then waits for every answer; false if a shard has
/// stopped.
async fn ask_every_shard<'a>(
    stops: impl Iterator<Item = &'a mpsc::Sender<oneshot::Sender<()>>>,
) -> bool {
    let mut answers = Vec::new();
    for stop in stops {
        let (reply, done) = oneshot::channel();
        if stop.send(reply).await.is_err() {
            return false;
        }
        answers.push(done);
    }
    for done in answers {
        if done.await.is_err() {
            return false;
        }
    }
    true
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("bus", &self.bus.kind())
            .field("shards", &self.shards.len())
            .finish()
    }
}
