//! The native driver (feature `native`): runs a [`Session`] on tokio over WebTransport
//! (wtransport) or WebSocket (tokio-tungstenite), falling back from the first to the second,
//! and from one relay node to the next when it cannot be reached or drains (the session's
//! `Action::Connect { elsewhere: true }`).
//!
//! The driver only moves bytes and time: every protocol decision (join, heartbeats, RTT,
//! keyframe requests, reconnect backoff) stays in the sans-IO [`Session`]. One task owns the
//! session; the application talks to it through a cheap [`ClientHandle`] (send media, ask for
//! keyframes, leave) and reads [`Update`]s and a [`Status`] from the [`Client`].
//!
//! WebTransport framing: we send one packet per unidirectional stream. We ask the relay
//! (`?framed=1`) to send on one long-lived stream of length-prefixed packets (first byte 0, then
//! per packet a 4-byte big-endian length and the packet); a relay that does not know the query
//! sends one packet per stream, which we read to its end and deliver in stream order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use videocall_types::{HeartbeatMetadata, MediaPacket, UserId};

use crate::e2ee::{Identity, SafetyCode};
use crate::{ClientConfig, ConnectionState, Event, Session, Subscription, TransportError};

mod connect;

pub use connect::{connect_webtransport, spawn_stream_writer};

/// Which transport carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// WebTransport over QUIC.
    WebTransport,
    /// WebSocket over TCP.
    WebSocket,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WebTransport => "webtransport",
            Self::WebSocket => "websocket",
        })
    }
}

/// How the WebTransport server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerification {
    /// By the system's certificate authorities.
    NativeRoots,
    /// By the SHA-256 of the server certificate (as browsers do with `serverCertificateHashes`).
    CertHash([u8; 32]),
    /// Not at all (development only: anyone on the path can read and alter the session).
    Insecure,
}

/// One relay node's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrls {
    /// WebTransport base URL (`https://host:port`); tried first when set.
    pub webtransport_url: Option<String>,
    /// WebSocket base URL (`http://host:port` or `ws://host:port`); used when WebTransport is not
    /// set or fails for a reason other than the server's certificate.
    pub websocket_url: Option<String>,
}

/// Where and how the driver connects.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The relay nodes of one deployment, tried in turn: each connection attempt starts with
    /// the node that last opened (the next one when that node drains) and moves on to the next
    /// when one cannot be reached, so a client given several nodes moves to another when its
    /// node dies or stops.
    pub relays: Vec<RelayUrls>,
    /// How the WebTransport servers are verified.
    pub verification: ServerVerification,
    /// A WebTransport handshake that takes longer is given up (then WebSocket is tried).
    pub webtransport_timeout: Duration,
    /// A QUIC connection silent for this long is considered lost.
    pub webtransport_idle_timeout: Duration,
    /// End-to-end encrypt media under this identity (`None`: media in clear).
    pub e2ee: Option<Identity>,
}

impl NativeConfig {
    /// One relay node: WebTransport at `webtransport_url`, falling back to WebSocket at
    /// `websocket_url`.
    pub fn new(webtransport_url: Option<String>, websocket_url: Option<String>) -> Self {
        Self::with_relays(vec![RelayUrls {
            webtransport_url,
            websocket_url,
        }])
    }

    /// Several relay nodes, tried in this order first.
    pub fn with_relays(relays: Vec<RelayUrls>) -> Self {
        Self {
            relays,
            verification: ServerVerification::NativeRoots,
            webtransport_timeout: Duration::from_secs(3),
            webtransport_idle_timeout: Duration::from_secs(4),
            e2ee: None,
        }
    }

    /// Whether any relay is tried over WebTransport.
    pub fn uses_webtransport(&self) -> bool {
        self.relays.iter().any(|r| r.webtransport_url.is_some())
    }
}

/// What the driver tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Updates move through a channel by value; boxing the common (media) variant would cost an
// allocation per packet to save bytes in the rare ones.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    /// An event of the session (joined, media, keyframe requested, disconnected, …).
    Session(Event),
    /// A transport opened (the relay's SESSION_ASSIGNED follows as [`Event::Joined`]).
    Connected(TransportKind),
    /// A connection attempt on one transport failed.
    TransportFailed {
        /// Which transport.
        transport: TransportKind,
        /// Why ([`TransportError::Certificate`]: the server's identity was refused, and the
        /// driver does not fall back to another transport to it).
        error: TransportError,
    },
    /// E2EE: the key holders the safety code commits to (ourselves first, user + fingerprint),
    /// sent right after every [`Event::SafetyCode`] so that they can be shown next to it.
    KeyHolders(Vec<crate::e2ee::KeyHolder>),
    /// A [`ClientHandle::command`] was refused (not joined, empty or too long, …).
    CommandRefused(crate::SessionError),
}

/// A snapshot of the driver's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// Where the session is (None before the driver started it).
    pub state: Option<ConnectionState>,
    /// The transport in use while connected.
    pub transport: Option<TransportKind>,
    /// Which of [`NativeConfig::relays`] is in use while connected.
    pub relay: Option<usize>,
    /// The last round trip to the relay.
    pub rtt: Option<Duration>,
    /// Packets written to a transport.
    pub sent_packets: u64,
    /// Bytes written to a transport.
    pub sent_bytes: u64,
    /// Media the application sent while not joined (dropped).
    pub dropped_media: u64,
    /// Times the session joined (1 + reconnects).
    pub joins: u64,
    /// The meeting's safety code while E2EE is on (once joined).
    pub safety_code: Option<SafetyCode>,
    /// E2EE: frames opened.
    pub e2ee_opened: u64,
    /// E2EE: frames that did not open (no key yet, tampered, replayed, …), dropped.
    pub e2ee_dropped: u64,
    /// Media dropped because a peer and we disagree on encryption.
    pub mismatch_drops: u64,
    /// E2EE: every counter of the core (refused key packets by kind, drops by reason, keys
    /// held aside from outside the roster, …), while E2EE is on.
    pub e2ee_stats: Option<crate::e2ee::E2eeStats>,
}

// As for `Update`: the media variant is the common one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Command {
    Media(MediaPacket),
    KeyframeRequest(UserId),
    Heartbeat(HeartbeatMetadata),
    Subscription(Subscription),
    Session(crate::Command),
    Leave(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to the driver; usable from any thread.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl ClientHandle {
    /// Sends a media packet (dropped and counted while not joined).
    pub fn send_media(&self, media: MediaPacket) {
        let _ = self.commands.send(Command::Media(media));
    }

    /// Asks `peer_user` for a keyframe.
    pub fn request_keyframe(&self, peer_user: UserId) {
        let _ = self.commands.send(Command::KeyframeRequest(peer_user));
    }

    /// What heartbeats tell peers.
    pub fn set_heartbeat(&self, heartbeat: HeartbeatMetadata) {
        let _ = self.commands.send(Command::Heartbeat(heartbeat));
    }

    /// Receive video only from these streams, or from everyone. Kept across reconnects.
    pub fn subscribe(&self, subscription: Subscription) {
        let _ = self.commands.send(Command::Subscription(subscription));
    }

    /// Chat, hands, reactions ([`crate::Command`]); refused ones (not joined, too long, …) are
    /// reported as [`Update::CommandRefused`].
    pub fn command(&self, command: crate::Command) {
        let _ = self.commands.send(Command::Session(command));
    }

    /// Leaves the meeting and closes the transport; returns once it is closed (or the driver
    /// is gone).
    pub async fn leave(&self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// A running client: its handle, its updates and its status.
#[derive(Debug)]
pub struct Client {
    handle: ClientHandle,
    updates: mpsc::UnboundedReceiver<Update>,
    status: watch::Receiver<Status>,
}

impl Client {
    /// Starts the driver on the current tokio runtime; it connects at once.
    pub fn start(config: ClientConfig, native: NativeConfig) -> Self {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (update_tx, updates) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Status::default());
        let session = Session::with_identity(config, native.e2ee.clone());
        let driver = Driver {
            session,
            native: Arc::new(native),
            start: Instant::now(),
            commands: command_rx,
            updates: update_tx,
            status: status_tx,
            generation: 0,
            link: None,
            preferred: 0,
        };
        tokio::spawn(driver.run());
        Self {
            handle: ClientHandle { commands },
            updates,
            status,
        }
    }

    /// The handle (clone it for other tasks or threads).
    pub fn handle(&self) -> &ClientHandle {
        &self.handle
    }

    /// The next update; `None` once the driver has stopped.
    pub async fn next_update(&mut self) -> Option<Update> {
        self.updates.recv().await
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}

/// What a transport's tasks report to the driver, tagged with the connection's generation.
#[derive(Debug)]
enum LinkEvent {
    Failed {
        transport: TransportKind,
        error: TransportError,
    },
    GaveUp(String),
    Opened(Link),
    Packet(Bytes),
    Closed(TransportError),
}

/// An open transport: where to write, and the writer task to await on leave.
#[derive(Debug)]
struct Link {
    kind: TransportKind,
    /// Index of the relay in [`NativeConfig::relays`].
    relay: usize,
    outgoing: mpsc::UnboundedSender<Bytes>,
    writer: tokio::task::JoinHandle<()>,
}

type LinkSender = mpsc::UnboundedSender<(u64, LinkEvent)>;

struct Driver {
    session: Session,
    native: Arc<NativeConfig>,
    start: Instant,
    commands: mpsc::UnboundedReceiver<Command>,
    updates: mpsc::UnboundedSender<Update>,
    status: watch::Sender<Status>,
    generation: u64,
    link: Option<Link>,
    /// The relay the next connection attempt starts with: the one that last opened.
    preferred: usize,
}

impl Driver {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(mut self) {
        let (link_tx, mut link_rx) = mpsc::unbounded_channel::<(u64, LinkEvent)>();
        let mut leaving: Option<oneshot::Sender<()>> = None;
        let now = self.now();
        self.session.handle_start(now);
        loop {
            self.flush(&link_tx);
            if leaving.is_some() && self.session.state() == ConnectionState::Closed {
                break;
            }
            let deadline = self.session.poll_timeout().map(|t| self.start + t);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Media(media)) => {
                        if self.session.send_media(media).is_err() {
                            self.status.send_modify(|s| s.dropped_media += 1);
                        }
                    }
                    Some(Command::KeyframeRequest(user)) => {
                        let now = self.now();
                        let _ = self.session.request_keyframe(now, user.as_str());
                    }
                    Some(Command::Heartbeat(heartbeat)) => self.session.set_heartbeat(heartbeat),
                    Some(Command::Subscription(subscription)) => self.session.subscribe(&subscription),
                    Some(Command::Session(command)) => {
                        let wall_ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64);
                        if let Err(error) = self.session.handle_command(wall_ms, command) {
                            let _ = self.updates.send(Update::CommandRefused(error));
                        }
                    }
                    Some(Command::Leave(done)) => {
                        self.session.leave();
                        leaving = Some(done);
                    }
                    None => self.session.leave(),
                },
                Some((generation, event)) = link_rx.recv() => {
                    if generation == self.generation {
                        self.handle_link(event);
                    }
                }
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
            }
            if leaving.is_none() && self.commands.is_closed() {
                break;
            }
        }
        // Closing: let the writer send what is queued and close the transport properly.
        if let Some(link) = self.link.take() {
            drop(link.outgoing);
            let _ = tokio::time::timeout(Duration::from_secs(2), link.writer).await;
        }
        self.status.send_modify(|s| {
            s.state = Some(ConnectionState::Closed);
            s.transport = None;
            s.relay = None;
        });
        if let Some(done) = leaving {
            let _ = done.send(());
        }
    }

    /// Carries out what the session asks for: actions, packets to write, events to report.
    fn flush(&mut self, link_tx: &LinkSender) {
        while let Some(action) = self.session.poll_action() {
            match action {
                crate::Action::Connect { elsewhere, .. } => {
                    if elsewhere {
                        // Our relay drains: start with the next one.
                        self.preferred = (self.preferred + 1) % self.native.relays.len().max(1);
                    }
                    self.close_link();
                    self.generation += 1;
                    tokio::spawn(connect::connect(
                        self.native.clone(),
                        self.session.lobby_path(),
                        self.preferred,
                        self.generation,
                        link_tx.clone(),
                    ));
                }
                crate::Action::Close => self.close_link(),
            }
        }
        let mut sent = (0u64, 0u64);
        while let Some(bytes) = self.session.poll_transmit() {
            if let Some(link) = &self.link {
                sent.0 += 1;
                sent.1 += bytes.len() as u64;
                let _ = link.outgoing.send(bytes);
            }
        }
        let mut rtt = None;
        let mut joined = 0;
        while let Some(event) = self.session.poll_event() {
            match &event {
                Event::Rtt(value) => rtt = Some(*value),
                Event::Joined { .. } => joined += 1,
                _ => {}
            }
            let code = matches!(event, Event::SafetyCode(_));
            let _ = self.updates.send(Update::Session(event));
            if code {
                let _ = self
                    .updates
                    .send(Update::KeyHolders(self.session.key_holders()));
            }
        }
        let state = self.session.state();
        let transport = self.link.as_ref().map(|l| l.kind);
        let relay = self.link.as_ref().map(|l| l.relay);
        let e2ee = self.session.e2ee().map(|e| *e.stats());
        let safety_code = self.session.safety_code();
        let mismatch_drops = self.session.mismatch_drops();
        self.status.send_if_modified(|s| {
            let before = s.clone();
            s.safety_code = safety_code;
            if let Some(stats) = e2ee {
                s.e2ee_opened = stats.opened;
                s.e2ee_dropped = stats.dropped.total();
                s.e2ee_stats = Some(stats);
            }
            s.mismatch_drops = mismatch_drops;
            s.state = Some(state);
            s.transport = transport;
            s.relay = relay;
            s.sent_packets += sent.0;
            s.sent_bytes += sent.1;
            s.joins += joined;
            if rtt.is_some() {
                s.rtt = rtt;
            }
            *s != before
        });
    }

    fn close_link(&mut self) {
        // Dropping the sender ends the writer, which closes the transport; events still in
        // flight from it carry an old generation and are ignored.
        self.link = None;
        self.generation += 1;
    }

    fn handle_link(&mut self, event: LinkEvent) {
        let now = self.now();
        match event {
            LinkEvent::Failed { transport, error } => {
                let _ = self
                    .updates
                    .send(Update::TransportFailed { transport, error });
            }
            LinkEvent::GaveUp(reason) => self.session.handle_disconnected(now, reason),
            LinkEvent::Opened(link) => {
                let _ = self.updates.send(Update::Connected(link.kind));
                self.preferred = link.relay;
                self.link = Some(link);
                self.session.handle_connected(now);
            }
            LinkEvent::Packet(bytes) => {
                // A relay that sends garbage is reported by the session; the link stays.
                let _ = self.session.handle_packet(now, bytes);
            }
            LinkEvent::Closed(error @ TransportError::ClosedByServer { code, .. }) => {
                self.link = None;
                self.session.handle_closed(now, code, error.to_string());
            }
            LinkEvent::Closed(reason) => {
                self.link = None;
                self.session.handle_disconnected(now, reason.to_string());
            }
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("session", &self.session)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
