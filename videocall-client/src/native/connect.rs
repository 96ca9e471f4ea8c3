//! Opening a transport to a relay: WebTransport first, WebSocket after it unless the server's
//! certificate was refused, one relay node after another. Each opened link gets a writer task
//! and a reader task that report to the driver tagged with the connection's generation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use videocall_types::framing::UniStreamReader;
use videocall_types::lobby::LobbyPath;
use wtransport::error::{ConnectingError, ConnectionError};
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig as WtConfig, Endpoint};

use super::{Link, LinkEvent, LinkSender, NativeConfig, ServerVerification, TransportKind};
use crate::TransportError;

/// Opens a transport for connection `generation`: tries the relays in turn from `first`, on
/// each WebTransport first when configured, then WebSocket unless WebTransport refused the
/// server's certificate.
pub(super) async fn connect(
    native: Arc<NativeConfig>,
    path: LobbyPath,
    first: usize,
    generation: u64,
    events: LinkSender,
) {
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
    path: &LobbyPath,
    generation: u64,
    events: &LinkSender,
) -> Result<(), String> {
    let urls = &native.relays[index];
    let mut last_error = String::from("no transport configured");
    let failed = |transport, error| {
        let _ = events.send((generation, LinkEvent::Failed { transport, error }));
    };
    if let Some(base) = &urls.webtransport_url {
        let framed = path.clone().with_query("framed", "1");
        let url = format!("{}{framed}", base.trim_end_matches('/'));
        match open_webtransport(native, &url, index, generation, events).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                last_error = format!("webtransport {url}: {error}");
                let certificate = error.is_certificate();
                failed(TransportKind::WebTransport, error);
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
                failed(TransportKind::WebSocket, error);
            }
        }
    }
    Err(last_error)
}

/// What a failed WebSocket handshake means.
fn websocket_error(error: tungstenite::Error) -> TransportError {
    use tungstenite::Error;
    match error {
        Error::Http(response) => TransportError::Refused {
            status: response.status().as_u16(),
            reason: response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default(),
        },
        Error::Io(e) => TransportError::Io(e.to_string()),
        Error::Url(e) => TransportError::Config(e.to_string()),
        Error::Tls(e) => TransportError::Certificate(e.to_string()),
        Error::ConnectionClosed | Error::AlreadyClosed => {
            TransportError::Closed("websocket closed".to_owned())
        }
        other => TransportError::Protocol(other.to_string()),
    }
}

/// What a failed WebTransport handshake means.
fn webtransport_error(error: ConnectingError) -> TransportError {
    match error {
        ConnectingError::InvalidUrl(e) | ConnectingError::InvalidServerName(e) => {
            TransportError::Config(e)
        }
        ConnectingError::InvalidRemoteAddress(a) => TransportError::Config(a.to_string()),
        ConnectingError::DnsLookup(e) => TransportError::Io(e.to_string()),
        ConnectingError::DnsNotFound => TransportError::Io("cannot resolve the host".to_owned()),
        ConnectingError::SessionRejected => TransportError::Refused {
            status: 0,
            reason: "WebTransport session rejected".to_owned(),
        },
        ConnectingError::ConnectionError(e) => connection_error(e),
        other => TransportError::Protocol(other.to_string()),
    }
}

fn connection_error(error: ConnectionError) -> TransportError {
    match &error {
        ConnectionError::QuicProto(e) => {
            // wtransport 0.7 keeps the QUIC error code private and shows it only as
            // "… (code: N)"; a TLS alert about the certificate is one of a few codes.
            let text = e.to_string();
            let code = text
                .rsplit_once("(code: ")
                .and_then(|(_, c)| c.trim_end_matches(')').parse::<u64>().ok());
            if code.is_some_and(is_certificate_alert) {
                TransportError::Certificate(text)
            } else {
                TransportError::Protocol(text)
            }
        }
        ConnectionError::TimedOut => TransportError::Io(error.to_string()),
        ConnectionError::ApplicationClosed(close) => TransportError::ClosedByServer {
            // Application codes past u32 are no code of ours (never final).
            code: u32::try_from(close.code().into_inner()).unwrap_or(u32::MAX),
            reason: String::from_utf8_lossy(close.reason()).into_owned(),
        },
        _ => TransportError::Closed(error.to_string()),
    }
}

/// Opens a WebSocket and announces it ([`LinkEvent::Opened`]) before its first packet.
async fn open_websocket(
    url: &str,
    relay: usize,
    generation: u64,
    events: &LinkSender,
) -> Result<(), TransportError> {
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(websocket_error)?;
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
                Some(Ok(tungstenite::Message::Close(Some(frame)))) => {
                    break TransportError::ClosedByServer {
                        code: u16::from(frame.code).into(),
                        reason: frame.reason.to_string(),
                    };
                }
                Some(Ok(tungstenite::Message::Close(None))) => {
                    break TransportError::Closed("websocket closed by the server".to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break websocket_error(e),
                None => break TransportError::Closed("websocket closed".to_owned()),
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
) -> Result<(), TransportError> {
    let connection = connect_webtransport(native, url).await?;
    let connection = Arc::new(connection);
    let (outgoing, writer) = spawn_stream_writer(connection.clone(), Duration::from_secs(1));
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
                    Err(e) => break connection_error(e),
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
        // A stream read fails with "not connected" when the relay closes the connection: its
        // close code (a removal, an end, a replacement) is on the connection.
        let reason = match reader.closed().now_or_never() {
            Some(closed) => connection_error(closed),
            None => reason,
        };
        let _ = events.send((generation, LinkEvent::Closed(reason)));
    });
    Ok(())
}

/// What an incoming unidirectional stream turned out to be.
enum Incoming {
    /// A stream holding one packet, read to its end.
    Packet(Bytes),
    /// The framed stream, with what was read of it.
    Framed(wtransport::RecvStream, UniStreamReader),
    /// A stream that was reset or broke the framing (a partial packet is no packet).
    Broken,
}

async fn read_stream(mut stream: wtransport::RecvStream) -> Incoming {
    let mut reader = UniStreamReader::default();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                if reader.handle_chunk(&chunk[..n]).is_err() {
                    return Incoming::Broken;
                }
                if reader.is_framed() {
                    return Incoming::Framed(stream, reader);
                }
            }
            Ok(None) => {
                reader.handle_end();
                return match reader.poll_packet() {
                    Ok(Some(packet)) => Incoming::Packet(packet),
                    _ => Incoming::Broken,
                };
            }
            Err(_) => return Incoming::Broken,
        }
    }
}

/// Delivers the packets of the framed stream until it ends or `deliver` refuses one; returns
/// why it ended.
async fn read_framed(
    mut stream: wtransport::RecvStream,
    mut reader: UniStreamReader,
    deliver: impl Fn(Bytes) -> bool,
) -> TransportError {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match reader.poll_packet() {
                Ok(Some(packet)) => {
                    if !deliver(packet) {
                        return TransportError::Closed("driver gone".to_owned());
                    }
                }
                Ok(None) => break,
                Err(e) => return TransportError::Protocol(e.to_string()),
            }
        }
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                if let Err(e) = reader.handle_chunk(&chunk[..n]) {
                    return TransportError::Protocol(e.to_string());
                }
            }
            Ok(None) => {
                return TransportError::Closed("the relay ended its stream".to_owned());
            }
            Err(e) => return TransportError::Closed(e.to_string()),
        }
    }
}

/// TLS alerts ride in QUIC's CRYPTO_ERROR codes (0x100 + alert, RFC 9001 §4.8); these are the
/// ones about the peer's certificate (RFC 8446 §6.2: bad_certificate 42 … unknown_ca 48,
/// certificate_required 116).
fn is_certificate_alert(code: u64) -> bool {
    matches!(code.checked_sub(0x100), Some(42..=46 | 48 | 116))
}

/// Opens a WebTransport session to `url` as `native` says (certificate check, keep-alive, idle
/// and connect timeouts); a refused certificate is [`TransportError::Certificate`].
pub async fn connect_webtransport(
    native: &NativeConfig,
    url: &str,
) -> Result<wtransport::Connection, TransportError> {
    let builder = WtConfig::builder().with_bind_default();
    let builder = match &native.verification {
        ServerVerification::NativeRoots => builder.with_native_certs(),
        ServerVerification::CertHash(hash) => {
            builder.with_server_certificate_hashes([Sha256Digest::new(*hash)])
        }
        ServerVerification::Insecure => builder.with_no_cert_validation(),
    };
    let mut config = builder.build();
    config
        .quic_config_mut()
        .transport_config(Arc::new(quic_transport_config(native)?));
    let endpoint = Endpoint::client(config).map_err(|e| TransportError::Io(e.to_string()))?;
    tokio::time::timeout(native.webtransport_timeout, endpoint.connect(url))
        .await
        .map_err(|_| TransportError::Timeout(native.webtransport_timeout))?
        .map_err(webtransport_error)
}

/// The ACK frequency a client asks of the relay: acknowledge every 10th ack-eliciting packet
/// instead of every 2nd, within 5 ms, as the relay asks of its clients (webtransport-server's
/// `ACK_ELICITING_THRESHOLD` and `MAX_ACK_DELAY`, which say why these values). Ignored by a
/// peer without the extension.
const ACK_ELICITING_THRESHOLD: u32 = 9;
const MAX_ACK_DELAY: Duration = Duration::from_millis(5);

/// The QUIC settings of a client connection: keep-alive and idle timeout, sparse
/// acknowledgements ([`ACK_ELICITING_THRESHOLD`]), and streams sent in the order they were
/// written (each packet is a stream: round-robin between them would only delay each packet).
fn quic_transport_config(
    native: &NativeConfig,
) -> Result<wtransport::config::QuicTransportConfig, TransportError> {
    use wtransport::quinn::{AckFrequencyConfig, IdleTimeout, VarInt};
    let idle = IdleTimeout::try_from(native.webtransport_idle_timeout)
        .map_err(|e| TransportError::Config(format!("bad idle timeout: {e}")))?;
    let mut ack_frequency = AckFrequencyConfig::default();
    ack_frequency
        .ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD))
        .max_ack_delay(Some(MAX_ACK_DELAY));
    let mut config = wtransport::config::QuicTransportConfig::default();
    config
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(idle))
        .ack_frequency_config(Some(ack_frequency))
        .send_fairness(false);
    Ok(config)
}

/// Sends each packet given to the returned sender on its own unidirectional stream of
/// `connection`, in order, as the relay (and the original's clients) expect. Streams are opened in
/// send order; finishing (which waits for the peer's acknowledgement) happens beside, so one slow
/// ack does not hold the next packet. When the sender is dropped, streams still in flight get at
/// most `close_wait` (closing the connection would discard them), then the connection closes.
pub fn spawn_stream_writer(
    connection: Arc<wtransport::Connection>,
    close_wait: Duration,
) -> (mpsc::UnboundedSender<Bytes>, tokio::task::JoinHandle<()>) {
    let (outgoing, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        let mut finishing = tokio::task::JoinSet::new();
        while let Some(bytes) = out_rx.recv().await {
            let Ok(opening) = connection.open_uni().await else {
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
        // (`join_next`, not `join_all`, which panics on a task the shutting-down runtime
        // cancelled.)
        let drained = async { while finishing.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(close_wait, drained).await;
        connection.close(0u32.into(), b"leave");
    });
    (outgoing, writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_alerts_are_told_apart_from_other_crypto_errors() {
        assert!(is_certificate_alert(0x12a)); // bad_certificate
        assert!(is_certificate_alert(0x130)); // unknown_ca
        assert!(!is_certificate_alert(0x128)); // handshake_failure
        assert!(!is_certificate_alert(42)); // not a crypto error at all
        assert!(!is_certificate_alert(0));
    }
}
