//! One WebTransport session: QUIC streams and datagrams in; out, one unidirectional stream per
//! packet (the original's framing) or, for clients that ask with `?framed=1`, one long-lived
//! stream of length-prefixed packets (`videocall_types::framing`). The session's outbound queue lives in the
//! relay core; this task writes what it is given and reports what was written, so a slow client
//! only ever slows itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tracing::debug;
use videocall_relay::node::{NodeError, NodeHandle, Outbound, SessionHandle, SessionSender};
use videocall_types::framing;
use videocall_types::lobby::parse_lobby_path;
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use crate::WtMetrics;

/// Packets being written at once on one session (each on its own stream).
const IN_FLIGHT: usize = 64;
// Why a framed stream (`videocall_types::framing`): a stream per packet costs ≈ 7 µs of relay
// CPU and a stream open, a MAX_STREAMS round trip and an acknowledged FIN per packet; on one
// stream a packet costs a length and a share of a write.

/// Packets taken from the relay's queue into one write of the framed stream, at most.
const FRAMED_BATCH: usize = 64;
/// Written bytes are reported to the relay's queue accounting once this many have accumulated
/// (as on WebSocket).
const REPORT_BYTES: usize = 32 * 1024;

/// Close codes this server uses (application codes, shown to the page with the reason).
const CLOSE_NORMAL: u32 = 0;
const CLOSE_REFUSED: u32 = 4000;
const CLOSE_SHUTDOWN: u32 = 4001;

pub(crate) async fn run(
    incoming: IncomingSession,
    node: NodeHandle,
    max_frame_bytes: usize,
    metrics: Arc<WtMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let request = incoming.await.context("handshake")?;
    let (user, meeting) = match parse_lobby_path(request.path()) {
        Ok(ids) => ids,
        Err(reason) => {
            metrics.refused.fetch_add(1, Ordering::Relaxed);
            debug!("refusing WebTransport session: {reason}");
            request.not_found().await;
            return Ok(());
        }
    };
    let framed = wants_framing(request.path().split_once('?').map_or("", |(_, q)| q));
    let connection = request.accept().await.context("accept")?;
    let session = match node.join(user.clone(), meeting.clone()).await {
        Ok(session) => session,
        Err(NodeError::Join(e)) => {
            connection.close(VarInt::from_u32(CLOSE_REFUSED), e.to_string().as_bytes());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    debug!(%user, %meeting, session = %session.id(), framed, "WebTransport session joined");
    let sender = session.sender();
    let outbound = async {
        if framed {
            outbound_framed(&connection, session).await
        } else {
            outbound(&connection, session).await
        }
    };
    tokio::select! {
        () = inbound(&connection, sender, max_frame_bytes, &metrics) => {}
        reason = outbound => {
            connection.close(VarInt::from_u32(CLOSE_NORMAL), reason.as_bytes());
        }
        _ = shutdown.wait_for(|stop| *stop) => {
            connection.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
        }
    }
    Ok(())
}

/// Whether a request's query (`a=b&c=d`) asks for the framed stream.
pub(crate) fn wants_framing(query: &str) -> bool {
    query.split('&').any(|pair| pair == "framed=1")
}

/// Reads streams and datagrams until the connection ends.
async fn inbound(
    connection: &Connection,
    sender: SessionSender,
    max_frame_bytes: usize,
    metrics: &WtMetrics,
) {
    let mut readers = FuturesUnordered::new();
    loop {
        tokio::select! {
            stream = connection.accept_uni() => {
                let Ok(stream) = stream else { return };
                readers.push(read_to_end(stream, max_frame_bytes));
            }
            datagram = connection.receive_datagram() => {
                let Ok(datagram) = datagram else { return };
                if sender.send(datagram.payload()).await.is_err() {
                    return;
                }
            }
            Some(packet) = readers.next(), if !readers.is_empty() => match packet {
                Some(packet) => {
                    if sender.send(packet).await.is_err() {
                        return;
                    }
                }
                None => {
                    metrics.oversize_streams.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
}

/// One packet per stream: the stream's bytes, or `None` if it outgrew the limit (the stream is
/// then stopped and the packet discarded; a broken stream also yields `None`).
async fn read_to_end(mut stream: RecvStream, max: usize) -> Option<Bytes> {
    let mut data = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(Some(n)) => {
                if data.len() + n > max {
                    stream.stop(VarInt::from_u32(1));
                    return None;
                }
                data.extend_from_slice(&chunk[..n]);
            }
            Ok(None) => return Some(data.into()),
            Err(_) => return None,
        }
    }
}

/// Writes what the relay queues for this session until it is closed; returns the reason.
async fn outbound(connection: &Connection, mut session: SessionHandle) -> String {
    let mut batch = Vec::with_capacity(IN_FLIGHT);
    let mut writes = FuturesUnordered::new();
    loop {
        tokio::select! {
            more = session.recv_batch(&mut batch, IN_FLIGHT - writes.len()), if writes.len() < IN_FLIGHT => {
                if !more {
                    return "relay stopped".to_owned();
                }
                for out in batch.drain(..) {
                    match out {
                        Outbound::Packet(packet) => {
                            // Streams are opened in queue order so that clients, which see
                            // streams in id order, get packets in the order the relay sent
                            // them (SESSION_ASSIGNED first); the writes then run side by side.
                            let Ok(stream) = open_stream(connection).await else {
                                return "connection lost".to_owned();
                            };
                            writes.push(write_packet(stream, packet));
                        }
                        Outbound::Close(reason) => return reason.as_str().to_owned(),
                    }
                }
            }
            Some(written) = writes.next(), if !writes.is_empty() => {
                let mut total = written;
                while let Some(Some(more)) = futures_util::FutureExt::now_or_never(writes.next()) {
                    total += more;
                }
                if session.transmitted(total).await.is_err() {
                    return "relay stopped".to_owned();
                }
            }
        }
    }
}

/// Writes what the relay queues for this session on one framed stream, each
/// batch in one write, until it is closed; returns the reason.
async fn outbound_framed(connection: &Connection, mut session: SessionHandle) -> String {
    let Ok(mut stream) = open_stream(connection).await else {
        return "connection lost".to_owned();
    };
    let mut batch = Vec::with_capacity(FRAMED_BATCH);
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.push(framing::FRAMED_STREAM_MARKER);
    let mut unreported = 0;
    loop {
        if !session.recv_batch(&mut batch, FRAMED_BATCH).await {
            return "relay stopped".to_owned();
        }
        let mut closing = None;
        for out in batch.drain(..) {
            match out {
                Outbound::Packet(packet) => {
                    framing::push_frame(&mut buf, &packet);
                    unreported += packet.len();
                }
                Outbound::Close(reason) => {
                    closing = Some(reason.as_str().to_owned());
                    break;
                }
            }
        }
        if stream.write_all(&buf).await.is_err() {
            return "connection lost".to_owned();
        }
        buf.clear();
        if let Some(reason) = closing {
            return reason;
        }
        if unreported >= REPORT_BYTES {
            if session.transmitted(unreported).await.is_err() {
                return "relay stopped".to_owned();
            }
            unreported = 0;
        }
    }
}

async fn open_stream(connection: &Connection) -> anyhow::Result<SendStream> {
    Ok(connection.open_uni().await?.await?)
}

/// Writes one packet on its own stream and finishes it; returns its size (also when the client
/// went away: the relay only needs to know the bytes left its queue).
async fn write_packet(mut stream: SendStream, packet: Bytes) -> usize {
    let len = packet.len();
    let result: anyhow::Result<()> = async {
        stream.write_all(&packet).await?;
        stream.finish().await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        debug!("WebTransport write failed: {e}");
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_asked_for_in_the_query() {
        assert!(wants_framing("framed=1"));
        assert!(wants_framing("token=abc&framed=1"));
        assert!(!wants_framing(""));
        assert!(!wants_framing("framed=0"));
        assert!(!wants_framing("xframed=1"));
    }
}
