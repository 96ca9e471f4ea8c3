//! WebSocket and WebTransport test clients with one interface: send encoded wrappers, await
//! the ones you want.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use videocall_types::framing::UniStreamReader;
use videocall_types::{PacketType, PacketWrapper, SYSTEM_USER_ID};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Endpoint};

use crate::PATIENCE;

/// What a client observed.
#[derive(Debug)]
pub enum Incoming {
    /// A packet from the relay.
    Packet(PacketWrapper),
    /// Bytes that are not a `PacketWrapper` (a relay bug).
    Garbage(Bytes),
    /// The connection ended, with the reason given.
    Closed(String),
}

/// A connected test client.
#[derive(Debug)]
pub struct TestClient {
    outgoing: mpsc::UnboundedSender<Bytes>,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    /// "websocket" or "webtransport".
    pub transport: &'static str,
    /// Packets received but not yet asked for. WebTransport carries each packet on its own
    /// stream, so packets sent back to back may arrive in another order; waiting for one must
    /// not lose the others.
    backlog: std::collections::VecDeque<PacketWrapper>,
    _keep: Option<Arc<wtransport::Connection>>,
}

impl TestClient {
    /// Connects a WebSocket to `url` (`ws://…/lobby/user/meeting`).
    pub async fn websocket(url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if sink
                    .send(tungstenite::Message::Binary(bytes))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                let event = match message {
                    Ok(tungstenite::Message::Binary(bytes)) => decode(bytes),
                    Ok(tungstenite::Message::Close(frame)) => {
                        Incoming::Closed(frame.map(|f| f.reason.to_string()).unwrap_or_default())
                    }
                    Ok(_) => continue,
                    Err(e) => Incoming::Closed(e.to_string()),
                };
                let closed = matches!(event, Incoming::Closed(_));
                if in_tx.send(event).is_err() || closed {
                    return;
                }
            }
            let _ = in_tx.send(Incoming::Closed("stream ended".into()));
        });
        Ok(Self {
            outgoing,
            incoming,
            transport: "websocket",
            backlog: Default::default(),
            _keep: None,
        })
    }

    /// Connects WebTransport to `url` (`https://…/lobby/user/meeting`), trusting the server
    /// certificate with SHA-256 `cert_hash` (as browsers do with `serverCertificateHashes`).
    pub async fn webtransport(url: &str, cert_hash: [u8; 32]) -> anyhow::Result<Self> {
        let config = ClientConfig::builder()
            .with_bind_default()
            .with_server_certificate_hashes([Sha256Digest::new(cert_hash)])
            .keep_alive_interval(Some(Duration::from_secs(2)))
            .build();
        let connection = Arc::new(Endpoint::client(config)?.connect(url).await?);
        let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let (in_tx, incoming) = mpsc::unbounded_channel();
        let writer = connection.clone();
        tokio::spawn(async move {
            // Streams are opened and written in send order; finishing (which waits for the
            // peer's acknowledgement) happens beside, as the native client does, so a sender
            // is not held to one packet per round trip.
            let mut finishing = tokio::task::JoinSet::new();
            while let Some(bytes) = out_rx.recv().await {
                let opened: anyhow::Result<_> = async {
                    let mut stream = writer.open_uni().await?.await?;
                    stream.write_all(&bytes).await?;
                    Ok(stream)
                }
                .await;
                let Ok(mut stream) = opened else { break };
                finishing.spawn(async move {
                    let _ = stream.finish().await;
                });
                while finishing.try_join_next().is_some() {}
            }
        });
        let reader = connection.clone();
        tokio::spawn(async move {
            // Streams are read side by side but delivered in stream-id order, as a careful
            // client does: the relay opens them in the order it sends. A framed stream (asked
            // for with `?framed=1`) carries everything after it and is read to its end.
            let mut reads = FuturesOrdered::new();
            let deliver = |stream| match stream {
                Stream::Packet(packet) => in_tx.send(decode(packet)).is_ok(),
                Stream::Framed(stream, reader) => {
                    tokio::spawn(read_framed(stream, reader, in_tx.clone()));
                    true
                }
                Stream::Garbage(why) => in_tx.send(Incoming::Garbage(Bytes::from(why))).is_ok(),
                Stream::Broken => true,
            };
            loop {
                tokio::select! {
                    stream = reader.accept_uni() => match stream {
                        Ok(stream) => reads.push_back(read_stream(stream)),
                        Err(e) => {
                            while let Some(stream) = reads.next().await {
                                deliver(stream);
                            }
                            let _ = in_tx.send(Incoming::Closed(e.to_string()));
                            return;
                        }
                    },
                    Some(stream) = reads.next(), if !reads.is_empty() => {
                        if !deliver(stream) {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Self {
            outgoing,
            incoming,
            transport: "webtransport",
            backlog: Default::default(),
            _keep: Some(connection),
        })
    }

    /// Sends bytes as one message (one WebSocket binary message or one WebTransport stream).
    pub fn send(&self, bytes: Bytes) {
        let _ = self.outgoing.send(bytes);
    }

    /// The next event, or `None` after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Incoming> {
        tokio::time::timeout(wait, self.incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Awaits SESSION_ASSIGNED (from the server's own id) and returns the session id.
    pub async fn session_assigned(&mut self) -> u64 {
        let assigned = self
            .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
            .await;
        assert_eq!(assigned.user_id, SYSTEM_USER_ID.as_bytes());
        assigned.session_id
    }

    /// Awaits the first packet satisfying `want`; panics on closure or after [`PATIENCE`].
    pub async fn recv_until(&mut self, want: impl FnMut(&PacketWrapper) -> bool) -> PacketWrapper {
        match self.try_recv_until(PATIENCE, want).await {
            Some(packet) => packet,
            None => panic!("{} client: expected packet did not arrive", self.transport),
        }
    }

    /// Awaits the first packet satisfying `want` (looking first at packets received earlier and
    /// not yet taken), or `None` after `wait`; panics if the connection closes or sends
    /// garbage. Packets that do not match stay for later calls.
    pub async fn try_recv_until(
        &mut self,
        wait: Duration,
        mut want: impl FnMut(&PacketWrapper) -> bool,
    ) -> Option<PacketWrapper> {
        if let Some(at) = self.backlog.iter().position(&mut want) {
            return self.backlog.remove(at);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => return None,
                Ok(Some(Incoming::Packet(packet))) => {
                    if want(&packet) {
                        return Some(packet);
                    }
                    self.backlog.push_back(packet);
                }
                Ok(Some(Incoming::Garbage(bytes))) => {
                    panic!("{} client got a non-wrapper: {bytes:?}", self.transport)
                }
                Ok(Some(Incoming::Closed(reason))) => {
                    panic!("{} client closed: {reason}", self.transport)
                }
                Ok(None) => panic!("{} client ended", self.transport),
            }
        }
    }

    /// Awaits the end of the connection (skipping packets) and returns its reason.
    pub async fn closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Err(_) => panic!("{} client: connection never closed", self.transport),
                Ok(Some(Incoming::Closed(reason))) => return reason,
                Ok(None) => return String::new(),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// What an incoming stream turned out to be.
enum Stream {
    /// One packet, read to the stream's end.
    Packet(Bytes),
    /// The framed stream, with what was read of it.
    Framed(wtransport::RecvStream, UniStreamReader),
    /// Bytes that break the framing (a relay bug).
    Garbage(String),
    /// Reset: a partial packet is no packet.
    Broken,
}

/// Reads one incoming stream through the clients' [`UniStreamReader`] until it is known to be
/// one packet (read to its end) or the framed stream.
async fn read_stream(mut stream: wtransport::RecvStream) -> Stream {
    let mut reader = UniStreamReader::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                if let Err(e) = reader.handle_chunk(&chunk[..n]) {
                    return Stream::Garbage(e.to_string());
                }
                if reader.is_framed() {
                    return Stream::Framed(stream, reader);
                }
            }
            Ok(None) => {
                reader.handle_end();
                return match reader.poll_packet() {
                    Ok(Some(packet)) => Stream::Packet(packet),
                    Ok(None) => Stream::Broken,
                    Err(e) => Stream::Garbage(e.to_string()),
                };
            }
            Err(_) => return Stream::Broken,
        }
    }
}

/// Sends on the packets of the framed stream as they complete, until it ends.
async fn read_framed(
    mut stream: wtransport::RecvStream,
    mut reader: UniStreamReader,
    out: mpsc::UnboundedSender<Incoming>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match reader.poll_packet() {
                Ok(Some(packet)) => {
                    if out.send(decode(packet)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = out.send(Incoming::Garbage(Bytes::from(e.to_string())));
                    return;
                }
            }
        }
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                if let Err(e) = reader.handle_chunk(&chunk[..n]) {
                    let _ = out.send(Incoming::Garbage(Bytes::from(e.to_string())));
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

fn decode(bytes: Bytes) -> Incoming {
    match PacketWrapper::decode(bytes.clone()) {
        Ok(packet) => Incoming::Packet(packet),
        Err(_) => Incoming::Garbage(bytes),
    }
}
