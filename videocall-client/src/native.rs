//! The native driver (feature `native`): runs a [`Session`] on tokio over WebTransport
//! (wtransport) or WebSocket (tokio-tungstenite), falling back from the first to the second,
//! and from one relay node to the next when it cannot be reached.
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

use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;
use videocall_types::framing::{Deframer, FRAMED_STREAM_MARKER};
use videocall_types::{HeartbeatMetadata, MediaPacket};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig as WtConfig, Endpoint};

use crate::e2ee::{E2ee, E2eeConfig, Identity, OsRng, SafetyCode};
use crate::{ClientConfig, ConnectionState, Event, Session};

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
    /// the node that last opened and moves on to the next when one cannot be reached, so a
    /// client given several nodes moves to another when its node dies.
    pub relays: Vec<RelayUrls>,
    /// How the WebTransport servers are verified.
    pub verification: ServerVerification,
    /// A WebTransport handshake that takes longer is given up (then WebSocket is tried).
    pub webtransport_timeout: Duration,
    /// A QUIC connection silent for this long is considered lost.
    pub webtransport_idle_timeout: Duration,
    /// End-to-end encrypt media under this identity (`None`: media in clear).
    pub e2ee: Option<Identity>,
    /// A room token from the meeting API (base64url JWT) for a protected meeting: joins through
    /// `/lobby/{user}/{meeting}?token=` (relays that check tokens accept it as well as
    /// `/lobby?token=`; one that does not yet ignores the query).
    pub token: Option<String>,
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
            token: None,
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
        /// Why.
        error: String,
        /// True when the failure is about the server's identity (wrong certificate): the driver
        /// does not fall back to another transport then.
        certificate: bool,
    },
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
}

// As for `Update`: the media variant is the common one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Command {
    Media(MediaPacket),
    KeyframeRequest(String),
    Heartbeat(HeartbeatMetadata),
    Subscription(Option<(Vec<u64>, Vec<u64>)>),
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
    pub fn request_keyframe(&self, peer_user: impl Into<String>) {
        let _ = self
            .commands
            .send(Command::KeyframeRequest(peer_user.into()));
    }

    /// What heartbeats tell peers.
    pub fn set_heartbeat(&self, heartbeat: HeartbeatMetadata) {
        let _ = self.commands.send(Command::Heartbeat(heartbeat));
    }

    /// Receive video only from these sessions (camera, screen); `None`: from everyone. Kept
    /// across reconnects.
    pub fn set_subscription(&self, video: Option<(Vec<u64>, Vec<u64>)>) {
        let _ = self.commands.send(Command::Subscription(video));
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
        let session = match native.e2ee.clone() {
            Some(identity) => {
                let user = config.user_id.as_str().to_owned();
                let e2ee = E2ee::with_identity(E2eeConfig::default(), user, identity, OsRng);
                Session::with_e2ee(config, e2ee)
            }
            None => Session::new(config),
        };
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
        error: String,
        certificate: bool,
    },
    GaveUp(String),
    Opened(Link),
    Packet(Bytes),
    Closed(String),
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
                        let _ = self.session.request_keyframe(now, &user);
                    }
                    Some(Command::Heartbeat(heartbeat)) => self.session.set_heartbeat(heartbeat),
                    Some(Command::Subscription(video)) => self.session.set_subscription(video),
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
                crate::Action::Connect { .. } => {
                    self.close_link();
                    self.generation += 1;
                    tokio::spawn(connect(
                        self.native.clone(),
                        self.session.config().clone(),
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
            let _ = self.updates.send(Update::Session(event));
        }
        let state = self.session.state();
        let transport = self.link.as_ref().map(|l| l.kind);
        let relay = self.link.as_ref().map(|l| l.relay);
        let e2ee = self.session.e2ee().map(|e| {
            let stats = e.stats();
            (stats.opened, stats.dropped.total())
        });
        let safety_code = self.session.safety_code();
        let mismatch_drops = self.session.mismatch_drops();
        self.status.send_if_modified(|s| {
            let before = s.clone();
            s.safety_code = safety_code;
            if let Some((opened, dropped)) = e2ee {
                s.e2ee_opened = opened;
                s.e2ee_dropped = dropped;
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
            LinkEvent::Failed {
                transport,
                error,
                certificate,
            } => {
                let _ = self.updates.send(Update::TransportFailed {
                    transport,
                    error,
                    certificate,
                });
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
            LinkEvent::Closed(reason) => {
                self.link = None;
                self.session.handle_disconnected(now, reason);
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

/// Opens a transport for connection `generation`: tries the relays in turn from `first`, on
/// each WebTransport first when configured, then WebSocket unless WebTransport refused the
/// server's certificate.
async fn connect(
    native: Arc<NativeConfig>,
    config: ClientConfig,
    first: usize,
    generation: u64,
    events: LinkSender,
) {
    let mut path = format!("/lobby/{}/{}", config.user_id, config.meeting_id);
    if let Some(token) = &native.token {
        // A JWT is base64url parts and dots: nothing in it needs escaping in a query.
        path.push_str(&format!("?token={token}"));
    }
    let count = native.relays.len();
    let mut errors = Vec::new();
    for relay in (0..count).map(|i| (first + i) % count) {
        match open_relay(&native, relay, &path, generation, &events).await {
            Ok(()) => return,
            Err(error) => errors.push(error),
        }
    }
    let reason = if errors.is_empty() {
        "no relay configured".to_owned()
    } else {
        errors.join("; ")
    };
    let _ = events.send((generation, LinkEvent::GaveUp(reason)));
}

/// Tries relay `index`: WebTransport, then WebSocket unless the certificate was refused.
/// Returns the last error when neither opened.
async fn open_relay(
    native: &NativeConfig,
    index: usize,
    path: &str,
    generation: u64,
    events: &LinkSender,
) -> Result<(), String> {
    let urls = &native.relays[index];
    let mut last_error = String::from("no transport configured");
    if let Some(base) = &urls.webtransport_url {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{separator}framed=1", base.trim_end_matches('/'));
        match open_webtransport(native, &url, index, generation, events).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                let certificate = error.contains("certificate");
                last_error = format!("webtransport {url}: {error}");
                let _ = events.send((
                    generation,
                    LinkEvent::Failed {
                        transport: TransportKind::WebTransport,
                        error,
                        certificate,
                    },
                ));
                if certificate {
                    return Err(last_error);
                }
            }
        }
    }
    if let Some(base) = &urls.websocket_url {
        let base = base.trim_end_matches('/');
        let url = match base.split_once("://") {
            Some(("http", rest)) => format!("ws://{rest}{path}"),
            Some(("https", rest)) => format!("wss://{rest}{path}"),
            _ => format!("{base}{path}"),
        };
        match open_websocket(&url, index, generation, events).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                last_error = format!("websocket {url}: {error}");
                let _ = events.send((
                    generation,
                    LinkEvent::Failed {
                        transport: TransportKind::WebSocket,
                        error,
                        certificate: false,
                    },
                ));
            }
        }
    }
    Err(last_error)
}

/// Opens a WebSocket and announces it ([`LinkEvent::Opened`]) before its first packet.
async fn open_websocket(
    url: &str,
    relay: usize,
    generation: u64,
    events: &LinkSender,
) -> Result<(), String> {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    // Real-time media: small packets must not wait for Nagle.
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
        let _ = tcp.set_nodelay(true);
    }
    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if sink
                .send(tungstenite::Message::Binary(bytes))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink.close().await;
    });
    // Announced before the reader starts: the session must know the link is open before it
    // handles SESSION_ASSIGNED, or what it sends on joining would find no link.
    let link = Link {
        kind: TransportKind::WebSocket,
        relay,
        outgoing,
        writer,
    };
    let _ = events.send((generation, LinkEvent::Opened(link)));
    let events = events.clone();
    tokio::spawn(async move {
        let reason = loop {
            match stream.next().await {
                Some(Ok(tungstenite::Message::Binary(bytes))) => {
                    if events.send((generation, LinkEvent::Packet(bytes))).is_err() {
                        return;
                    }
                }
                Some(Ok(tungstenite::Message::Close(frame))) => {
                    break format!(
                        "websocket closed by the server{}",
                        frame.map(|f| format!(": {}", f.reason)).unwrap_or_default()
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("websocket: {e}"),
                None => break "websocket closed".to_owned(),
            }
        };
        let _ = events.send((generation, LinkEvent::Closed(reason)));
    });
    Ok(())
}

/// Opens a WebTransport session and announces it ([`LinkEvent::Opened`]) before its first
/// packet.
async fn open_webtransport(
    native: &NativeConfig,
    url: &str,
    relay: usize,
    generation: u64,
    events: &LinkSender,
) -> Result<(), String> {
    let builder = WtConfig::builder().with_bind_default();
    let builder = match &native.verification {
        ServerVerification::NativeRoots => builder.with_native_certs(),
        ServerVerification::CertHash(hash) => {
            builder.with_server_certificate_hashes([Sha256Digest::new(*hash)])
        }
        ServerVerification::Insecure => builder.with_no_cert_validation(),
    };
    let config = builder
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(native.webtransport_idle_timeout))
        .map_err(|e| format!("bad idle timeout: {e}"))?
        .build();
    let endpoint = Endpoint::client(config).map_err(|e| e.to_string())?;
    let connection = tokio::time::timeout(native.webtransport_timeout, endpoint.connect(url))
        .await
        .map_err(|_| format!("no answer within {:?}", native.webtransport_timeout))?
        .map_err(|e| e.to_string())?;
    let connection = Arc::new(connection);
    let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
    let out = connection.clone();
    let writer = tokio::spawn(async move {
        let mut finishing = tokio::task::JoinSet::new();
        while let Some(bytes) = out_rx.recv().await {
            // Streams are opened in send order; finishing (which waits for the peer's
            // acknowledgement) happens beside, so one slow ack does not hold the next packet.
            let Ok(opening) = out.open_uni().await else {
                return;
            };
            let Ok(mut stream) = opening.await else {
                return;
            };
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            finishing.spawn(async move {
                let _ = stream.finish().await;
            });
            while finishing.try_join_next().is_some() {}
        }
        // Leaving: closing the connection would discard streams still in flight.
        // (`join_next`, not `join_all`, which panics on a task the shutting-down runtime
        // cancelled.)
        let drained = async { while finishing.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        out.close(0u32.into(), b"leave");
    });
    let link = Link {
        kind: TransportKind::WebTransport,
        relay,
        outgoing,
        writer,
    };
    let _ = events.send((generation, LinkEvent::Opened(link)));
    let events = events.clone();
    let reader = connection;
    tokio::spawn(async move {
        let mut reads = FuturesOrdered::new();
        let deliver = |packet| events.send((generation, LinkEvent::Packet(packet))).is_ok();
        let reason = loop {
            tokio::select! {
                stream = reader.accept_uni() => match stream {
                    Ok(stream) => reads.push_back(read_stream(stream)),
                    Err(e) => break format!("webtransport: {e}"),
                },
                Some(incoming) = reads.next(), if !reads.is_empty() => match incoming {
                    Incoming::Packet(packet) => {
                        if !deliver(packet) {
                            return;
                        }
                    }
                    // The relay sends everything on it from here on.
                    Incoming::Framed(stream, rest) => break read_framed(stream, rest, deliver).await,
                    Incoming::Broken => {}
                },
            }
        };
        let _ = events.send((generation, LinkEvent::Closed(reason)));
    });
    Ok(())
}

/// What an incoming unidirectional stream turned out to be.
enum Incoming {
    /// A stream holding one packet, read to its end.
    Packet(Bytes),
    /// The framed stream, with what was read of it after its marker.
    Framed(wtransport::RecvStream, Deframer),
    /// A stream that was reset (a partial packet is no packet).
    Broken,
}

async fn read_stream(mut stream: wtransport::RecvStream) -> Incoming {
    let mut data = BytesMut::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                data.extend_from_slice(&chunk[..n]);
                if data.first() == Some(&FRAMED_STREAM_MARKER) {
                    let mut frames = Deframer::default();
                    frames.push(&data[1..]);
                    return Incoming::Framed(stream, frames);
                }
            }
            Ok(None) => return Incoming::Packet(data.freeze()),
            Err(_) => return Incoming::Broken,
        }
    }
}

/// Delivers the packets of the framed stream until it ends or `deliver` refuses one; returns
/// why it ended.
async fn read_framed(
    mut stream: wtransport::RecvStream,
    mut frames: Deframer,
    deliver: impl Fn(Bytes) -> bool,
) -> String {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match frames.next_packet() {
                Ok(Some(packet)) => {
                    if !deliver(packet) {
                        return "driver gone".to_owned();
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("webtransport: {e}"),
            }
        }
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => frames.push(&chunk[..n]),
            Ok(None) => return "webtransport: the relay ended its stream".to_owned(),
            Err(e) => return format!("webtransport: {e}"),
        }
    }
}
