//! The async driver of one relay node: a task that owns a [`Relay`], carries out its outputs on
//! a [`Bus`] and on per-session channels, and fires its timers.
//!
//! Transports (WebSocket, WebTransport) are thin: for each connection they call
//! [`NodeHandle::join`], copy socket reads into [`SessionHandle::send`] and write what
//! [`SessionHandle::recv`] yields, reporting written bytes with [`SessionHandle::transmitted`].
//! The outbound channel of a session is unbounded, but the core never queues more than
//! `queue_video_bytes + queue_audio_headroom_bytes + queue_control_bytes` unwritten bytes for
//! it, and the node never more than about `max_node_queued_bytes` in all.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::debug;
use videocall_types::{MeetingId, SessionId, UserId};

use crate::bus::{Bus, BusMessage, BusState, BusSubscription};
use crate::exposition::Exposition;
use crate::{CloseReason, InboundError, Join, JoinError, Output, Relay, RelayConfig};

/// Commands waiting for the node task, at most.
const COMMAND_QUEUE: usize = 64 * 1024;
/// Bus messages waiting for the node task, at most.
const BUS_QUEUE: usize = 64 * 1024;
/// How often the watchdog probes the node task.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// The node task is unresponsive (health checks fail, `/metrics` gives up) when it has not
/// answered a probe for this long.
pub const RESPONSE_LIMIT: Duration = Duration::from_secs(1);

/// What a session's transport must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Write this packet.
    Packet(Bytes),
    /// Close the connection for this reason; nothing follows.
    Close(CloseReason),
}

#[derive(Debug)]
enum Command {
    Join {
        join: Join,
        reply: oneshot::Sender<Result<(SessionId, mpsc::UnboundedReceiver<Outbound>), JoinError>>,
    },
    Inbound {
        session: SessionId,
        data: Bytes,
    },
    Transmitted {
        session: SessionId,
        bytes: usize,
    },
    Leave {
        session: SessionId,
    },
    Metrics {
        reply: oneshot::Sender<String>,
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

/// A cheap, cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    bus: Arc<dyn Bus>,
    watchdog: Arc<Watchdog>,
}

/// When the node task last answered a probe, in milliseconds since `start`.
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

impl NodeHandle {
    /// Starts a node on `bus` and returns its handle; the node runs until every handle (and
    /// every session) is dropped.
    pub fn spawn(config: RelayConfig, bus: Arc<dyn Bus>) -> Self {
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (shutdown, shutdown_rx) = mpsc::channel(1);
        tokio::spawn(run(
            Relay::new(config),
            bus.clone(),
            commands_rx,
            shutdown_rx,
        ));
        let watchdog = Arc::new(Watchdog {
            start: Instant::now(),
            answered_ms: AtomicU64::new(0),
        });
        tokio::spawn(probe(commands.downgrade(), watchdog.clone()));
        Self {
            commands,
            shutdown,
            bus,
            watchdog,
        }
    }

    /// Whether the node task answered the watchdog's probe within [`RESPONSE_LIMIT`]: a task
    /// stuck in one input (or drowning in commands) fails health checks instead of passing them
    /// while every meeting on the node stands still.
    pub fn responsive(&self) -> bool {
        self.watchdog.since_answer() <= RESPONSE_LIMIT
    }

    /// Time since the node task last answered a probe.
    pub fn since_last_answer(&self) -> Duration {
        self.watchdog.since_answer()
    }

    /// Stops the node: closes every session, publishes their leaves on the bus at once, waits
    /// (up to `limit`) for the bus to send them, and refuses joins from then on. Returns false
    /// if that did not finish within `limit`.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        let (reply, done) = oneshot::channel();
        let asked = async { self.shutdown.send(reply).await.is_ok() && done.await.is_ok() };
        matches!(tokio::time::timeout(limit, asked).await, Ok(true))
    }

    /// Joins `user` to `meeting` as a trusted join ([`Join::trusted`]); the session's first
    /// packet is its SESSION_ASSIGNED.
    pub async fn join(&self, user: UserId, meeting: MeetingId) -> Result<SessionHandle, NodeError> {
        self.admit(Join::trusted(user, meeting)).await
    }

    /// Joins as admitted by the transport (grants, display name, proof; see
    /// [`Relay::handle_admit`]): refused with [`JoinError::UserPresent`] on a takeover attempt,
    /// [`JoinError::Removed`] for a removed user.
    pub async fn admit(&self, join: Join) -> Result<SessionHandle, NodeError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Join { join, reply })
            .await
            .map_err(|_| NodeError::Stopped)?;
        let (id, outbound) = response.await.map_err(|_| NodeError::Stopped)??;
        Ok(SessionHandle {
            id,
            node: self.clone(),
            outbound,
        })
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
        self.commands
            .send(Command::Host { meeting, action })
            .await
            .map_err(|_| NodeError::Stopped)
    }

    /// The node's counters in the Prometheus text format, with the bus state.
    ///
    /// Gives up with [`NodeError::Unresponsive`] after [`RESPONSE_LIMIT`] rather than hang.
    pub async fn render_metrics(&self) -> Result<String, NodeError> {
        let (reply, response) = oneshot::channel();
        let ask = async {
            self.commands
                .send(Command::Metrics { reply })
                .await
                .map_err(|_| NodeError::Stopped)?;
            response.await.map_err(|_| NodeError::Stopped)
        };
        let mut text = tokio::time::timeout(RESPONSE_LIMIT, ask)
            .await
            .map_err(|_| NodeError::Unresponsive)??;
        let connected = *self.bus.state().borrow() == BusState::Connected;
        let mut e = Exposition::new();
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
            "Time since the node task last answered the watchdog's probe.",
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

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("bus", &self.bus.kind())
            .finish()
    }
}

/// One session on a node. Dropping it leaves the meeting.
#[derive(Debug)]
pub struct SessionHandle {
    id: SessionId,
    node: NodeHandle,
    outbound: mpsc::UnboundedReceiver<Outbound>,
}

impl SessionHandle {
    /// Its id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// A cloneable sender for the task that reads the socket.
    pub fn sender(&self) -> SessionSender {
        SessionSender {
            id: self.id,
            commands: self.node.commands.clone(),
        }
    }

    /// Hands one packet read from the socket to the relay. Waits only when the node is
    /// saturated with commands.
    pub async fn send(&self, data: Bytes) -> Result<(), NodeError> {
        self.sender().send(data).await
    }

    /// The next thing to write, or `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.outbound.recv().await
    }

    /// Waits for the next thing to write, then takes everything else already waiting (up to
    /// `max` in all) into `batch`, so the transport can write them together. Returns false once
    /// the node has stopped.
    pub async fn recv_batch(&mut self, batch: &mut Vec<Outbound>, max: usize) -> bool {
        if self.outbound.recv_many(batch, max.max(1)).await == 0 {
            return false;
        }
        true
    }

    /// Reports `bytes` written to the socket, freeing that much of the session's queue.
    pub async fn transmitted(&self, bytes: usize) -> Result<(), NodeError> {
        self.node
            .commands
            .send(Command::Transmitted {
                session: self.id,
                bytes,
            })
            .await
            .map_err(|_| NodeError::Stopped)
    }
}

/// The inbound half of a session: hands packets read from its socket to the node.
#[derive(Debug, Clone)]
pub struct SessionSender {
    id: SessionId,
    commands: mpsc::Sender<Command>,
}

impl SessionSender {
    /// Hands one packet read from the socket to the relay. Waits only when the node is
    /// saturated with commands.
    pub async fn send(&self, data: Bytes) -> Result<(), NodeError> {
        self.commands
            .send(Command::Inbound {
                session: self.id,
                data,
            })
            .await
            .map_err(|_| NodeError::Stopped)
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let leave = Command::Leave { session: self.id };
        if let Err(mpsc::error::TrySendError::Full(leave)) = self.node.commands.try_send(leave) {
            // Never lose a leave: the meeting would keep a ghost until the idle timeout.
            let commands = self.node.commands.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = commands.send(leave).await;
                });
            }
        }
    }
}

/// Probes the node task every [`PROBE_INTERVAL`] through its command queue (so a probe waits
/// behind whatever the task has not yet done) and records when it answered.
async fn probe(commands: mpsc::WeakSender<Command>, watchdog: Arc<Watchdog>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(commands) = commands.upgrade() else {
            return; // every handle is gone: the node is stopping
        };
        let (reply, answered) = oneshot::channel();
        if commands.send(Command::Probe { reply }).await.is_err() {
            return;
        }
        drop(commands);
        if answered.await.is_err() {
            return;
        }
        let at = watchdog.start.elapsed().as_millis() as u64;
        watchdog.answered_ms.store(at, Ordering::Relaxed);
    }
}

async fn run(
    mut relay: Relay,
    bus: Arc<dyn Bus>,
    mut commands: mpsc::Receiver<Command>,
    mut shutdown: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let (bus_tx, mut bus_rx) = mpsc::channel::<BusMessage>(BUS_QUEUE);
    let mut sessions: HashMap<SessionId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
    let mut subscriptions: HashMap<MeetingId, BusSubscription> = HashMap::new();
    let mut stopping = false;
    let mut stopped: Option<oneshot::Sender<()>> = None;
    loop {
        let timeout = relay.poll_timeout();
        let sleep = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A shutdown goes before everything still queued.
            biased;
            Some(reply) = shutdown.recv() => {
                if !stopping {
                    stopping = true;
                    relay.handle_shutdown(Instant::now());
                }
                stopped = Some(reply);
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                handle_command(&mut relay, &mut sessions, command);
                // Take whatever else is already waiting before flushing outputs.
                for _ in 0..256 {
                    match commands.try_recv() {
                        Ok(command) => handle_command(&mut relay, &mut sessions, command),
                        Err(_) => break,
                    }
                }
            }
            Some(message) = bus_rx.recv() => {
                relay.handle_bus(Instant::now(), &message.subject, message.payload);
            }
            () = sleep => relay.handle_timeout(Instant::now()),
        }
        while let Some(output) = relay.poll_output() {
            match output {
                Output::Transmit { session, packet } => {
                    if let Some(tx) = sessions.get(&session) {
                        let _ = tx.send(Outbound::Packet(packet));
                    }
                }
                Output::Publish { subject, packet } => {
                    bus.publish(&subject, packet);
                }
                Output::Subscribe { meeting, subject } => {
                    debug!(%meeting, "subscribing to {subject}");
                    subscriptions.insert(meeting, bus.subscribe(&subject, bus_tx.clone()));
                }
                Output::Unsubscribe { meeting } => {
                    debug!(%meeting, "unsubscribing");
                    subscriptions.remove(&meeting);
                }
                Output::Close { session, reason } => {
                    if let Some(tx) = sessions.remove(&session) {
                        let _ = tx.send(Outbound::Close(reason));
                    }
                }
            }
        }
        if let Some(reply) = stopped.take() {
            // The leaves are queued on the bus; let it send them before saying done. The task
            // goes on (refusing joins) until the process ends.
            bus.flush().await;
            let _ = reply.send(());
        }
    }
}

fn handle_command(
    relay: &mut Relay,
    sessions: &mut HashMap<SessionId, mpsc::UnboundedSender<Outbound>>,
    command: Command,
) {
    let now = Instant::now();
    match command {
        Command::Join { join, reply } => {
            let result = relay.handle_admit(now, join).map(|id| {
                let (tx, rx) = mpsc::unbounded_channel();
                sessions.insert(id, tx);
                (id, rx)
            });
            if let Err(Ok((id, _))) = reply.send(result) {
                // The caller went away before hearing back.
                sessions.remove(&id);
                relay.handle_leave(now, id);
            }
        }
        Command::Inbound { session, data } => {
            if let Err(e) = relay.handle_inbound(now, session, data) {
                match e {
                    InboundError::UnknownSession => {}
                    e => debug!(%session, "packet discarded: {e}"),
                }
            }
        }
        Command::Transmitted { session, bytes } => relay.handle_transmitted(session, bytes),
        Command::Leave { session } => {
            sessions.remove(&session);
            relay.handle_leave(now, session);
        }
        Command::Metrics { reply } => {
            let mut text = String::new();
            relay.render_metrics(&mut text);
            let _ = reply.send(text);
        }
        Command::Probe { reply } => {
            let _ = reply.send(());
        }
        Command::Host { meeting, action } => match action {
            HostCommand::Remove(user) => relay.handle_remove(now, &meeting, &user),
            HostCommand::AskToMute(user) => relay.handle_ask_to_mute(now, &meeting, &user),
            HostCommand::End => relay.handle_end_meeting(now, &meeting),
        },
    }
}
