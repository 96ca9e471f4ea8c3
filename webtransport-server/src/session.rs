//! One WebTransport session: QUIC streams and datagrams in; out, one unidirectional stream per
//! packet (the original's framing) or, for clients that ask with `?framed=1`, one long-lived
//! stream of length-prefixed packets (`videocall_types::framing`). The session's outbound queue lives in the
//! relay core; this task writes what it is given and reports what was written, so a slow client
//! only ever slows itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tracing::debug;
use videocall_relay::CloseReason;
use videocall_relay::node::{NodeError, NodeHandle, Outbound, SessionHandle, SessionSender};
use videocall_types::framing;
use wtransport::endpoint::IncomingSession;
use wtransport::{Connection, RecvStream, SendStream, VarInt};

use crate::admission::{Gatekeeper, Refusal};
use crate::limits::{InboundBudget, NodeLimits};
use crate::{StreamLimits, WtMetrics};

/// Packets being written at once on one session (each on its own stream).
const IN_FLIGHT: usize = 64;
// Why a framed stream (`videocall_types::framing`): a stream per packet costs ≈ 7 µs of relay
// CPU and a stream open, a MAX_STREAMS round trip and an acknowledged FIN per packet; on one
// stream a packet costs a length and a share of a write.

/// Packets taken from the relay's queue into one write of the framed stream, at most.
const FRAMED_BATCH: usize = 64;
/// How long the last packets before a close may take to be written to a client.
const CLOSE_WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Written bytes are reported to the relay's queue accounting once this many have accumulated
/// (as on WebSocket).
const REPORT_BYTES: usize = 32 * 1024;
/// Bytes an inbound stream is read by at once (straight into its packet's buffer).
const READ_CHUNK: usize = 16 * 1024;

/// Close codes this server uses (application codes, shown to the page with the reason).
const CLOSE_NORMAL: u32 = 0;
const CLOSE_SHUTDOWN: u32 = 4001;
/// STOP_SENDING / RESET_STREAM codes of the streams the server refuses.
const STOP_OVERSIZE: u32 = 1;
const STOP_BUFFER_FULL: u32 = 2;
const STOP_TIMEOUT: u32 = 3;
const STOP_UNUSED: u32 = 4;

/// What one session task needs.
pub(crate) struct Session {
    pub(crate) node: NodeHandle,
    pub(crate) gatekeeper: Arc<Gatekeeper>,
    pub(crate) limits: StreamLimits,
    pub(crate) node_limits: Arc<NodeLimits>,
    pub(crate) metrics: Arc<WtMetrics>,
}

impl Session {
    pub(crate) async fn run(
        self,
        incoming: IncomingSession,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Counted from the first packet, so that handshakes in progress count too.
        let permit = self
            .node_limits
            .connections
            .try_acquire(incoming.remote_address().ip());
        let handshake = self.node_limits.handshake_timeout;
        let request = match tokio::time::timeout(handshake, incoming.into_future()).await {
            Ok(request) => request.context("handshake")?,
            Err(_) => {
                // Dropping the connection closes it.
                self.node_limits
                    .handshake_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        let _permit = match permit {
            Ok(permit) => permit,
            Err(refusal) => {
                debug!(
                    "refusing WebTransport session from {}: {}",
                    request.remote_address(),
                    refusal.as_str()
                );
                let _ = tokio::time::timeout(handshake, request.too_many_requests()).await;
                return Ok(());
            }
        };
        let admitted = match self.gatekeeper.admit(request.path()).await {
            Ok(join) => {
                let ids = (join.user.clone(), join.meeting.clone());
                self.node
                    .admit(join)
                    .await
                    .map(|s| (s, ids))
                    .map_err(|e| match e {
                        NodeError::Join(e) => {
                            let refusal = Refusal::join(&e);
                            self.gatekeeper.count(&refusal);
                            Some(refusal)
                        }
                        _ => None,
                    })
            }
            Err(refusal) => Err(Some(refusal)),
        };
        let (session, (user, meeting)) = match admitted {
            Ok(admitted) => admitted,
            Err(Some(refusal)) => {
                if refusal.status == 400 {
                    self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                }
                refuse(request, &refusal).await;
                return Ok(());
            }
            Err(None) => anyhow::bail!("the relay node has stopped"),
        };
        let framed = wants_framing(request.path().split_once('?').map_or("", |(_, q)| q));
        // A client gone during the handshake: dropping the session leaves the meeting.
        let connection = request.accept().await.context("accept")?;
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
            () = self.inbound(&connection, sender) => {}
            (code, reason) = outbound => {
                connection.close(VarInt::from_u32(code), reason.as_bytes());
            }
            _ = shutdown.wait_for(|stop| *stop) => {
                connection.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
            }
        }
        Ok(())
    }

    /// Reads streams and datagrams until the connection ends.
    async fn inbound(&self, connection: &Connection, sender: SessionSender) {
        // Bytes of this connection's unfinished streams (the readers all run in this task;
        // an atomic only because the task must be `Send`).
        let held = AtomicUsize::new(0);
        let budget = Buffers {
            connection: &held,
            connection_cap: self.limits.connection_buffer_bytes(),
            node: &self.node_limits.inbound,
        };
        let mut readers = FuturesUnordered::new();
        loop {
            tokio::select! {
                stream = connection.accept_uni() => {
                    let Ok(stream) = stream else { return };
                    readers.push(self.read_packet(stream, budget));
                }
                stream = connection.accept_bi() => {
                    let Ok((mut send, recv)) = stream else { return };
                    self.metrics.bidi_refused.fetch_add(1, Ordering::Relaxed);
                    recv.stop(VarInt::from_u32(STOP_UNUSED));
                    let _ = send.reset(VarInt::from_u32(STOP_UNUSED));
                }
                datagram = connection.receive_datagram() => {
                    let Ok(datagram) = datagram else { return };
                    if sender.send(datagram.payload()).await.is_err() {
                        return;
                    }
                }
                Some(read) = readers.next(), if !readers.is_empty() => match read {
                    StreamRead::Packet(packet) => {
                        if sender.send(packet).await.is_err() {
                            return;
                        }
                    }
                    StreamRead::Oversize => {
                        self.metrics.oversize_streams.fetch_add(1, Ordering::Relaxed);
                    }
                    StreamRead::ConnectionBufferFull => {
                        self.metrics.connection_buffer_full.fetch_add(1, Ordering::Relaxed);
                    }
                    StreamRead::TimedOut => {
                        self.node_limits
                            .wt_partial_message_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    // Counted by the node's budget; a broken stream is the client's business.
                    StreamRead::NodeBufferFull | StreamRead::Broken => {}
                },
            }
        }
    }

    /// One packet per stream, read to its end within the partial-message timeout; a stream
    /// that outgrows the frame limit or a buffer, or takes too long, is stopped.
    async fn read_packet(&self, mut stream: RecvStream, budget: Buffers<'_>) -> StreamRead {
        let mut charge = Charge { budget, bytes: 0 };
        let deadline = self.node_limits.partial_message_timeout;
        let read = tokio::time::timeout(
            deadline,
            read_to_end(&mut stream, self.limits.max_frame_bytes, &mut charge),
        )
        .await
        .unwrap_or(StreamRead::TimedOut);
        let code = match read {
            StreamRead::Packet(_) | StreamRead::Broken => return read,
            StreamRead::Oversize => STOP_OVERSIZE,
            StreamRead::ConnectionBufferFull | StreamRead::NodeBufferFull => STOP_BUFFER_FULL,
            StreamRead::TimedOut => STOP_TIMEOUT,
        };
        stream.stop(VarInt::from_u32(code));
        read
    }
}

/// Whether a request's query (`a=b&c=d`) asks for the framed stream.
pub(crate) fn wants_framing(query: &str) -> bool {
    query.split('&').any(|pair| pair == "framed=1")
}

/// How reading one inbound stream ended.
enum StreamRead {
    /// The stream's bytes: one packet.
    Packet(Bytes),
    /// Longer than the largest frame.
    Oversize,
    /// The connection's unfinished streams held their limit.
    ConnectionBufferFull,
    /// The node's unfinished messages held their limit.
    NodeBufferFull,
    /// Not finished within the partial-message timeout.
    TimedOut,
    /// Reset by the client or lost with the connection.
    Broken,
}

/// The buffers an unfinished stream's bytes are charged to.
#[derive(Clone, Copy)]
struct Buffers<'a> {
    connection: &'a AtomicUsize,
    connection_cap: usize,
    node: &'a InboundBudget,
}

/// Bytes one stream holds, given back when it ends (however it ends).
struct Charge<'a> {
    budget: Buffers<'a>,
    bytes: usize,
}

impl Charge<'_> {
    fn take(&mut self, bytes: usize) -> Result<(), StreamRead> {
        let held = self.budget.connection.load(Ordering::Relaxed);
        if held.saturating_add(bytes) > self.budget.connection_cap {
            return Err(StreamRead::ConnectionBufferFull);
        }
        if !self.budget.node.try_take(held, bytes) {
            return Err(StreamRead::NodeBufferFull);
        }
        self.budget.connection.fetch_add(bytes, Ordering::Relaxed);
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        let held = self
            .budget
            .connection
            .fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget.node.give_back(held, self.bytes);
    }
}

async fn read_to_end(stream: &mut RecvStream, max: usize, charge: &mut Charge<'_>) -> StreamRead {
    let mut data = Vec::new();
    loop {
        // Read straight into the packet's buffer: no scratch buffer per stream.
        let len = data.len();
        data.resize(len + READ_CHUNK, 0);
        match stream.read(&mut data[len..]).await {
            Ok(Some(n)) => {
                data.truncate(len + n);
                if data.len() > max {
                    return StreamRead::Oversize;
                }
                if let Err(full) = charge.take(n) {
                    return full;
                }
            }
            Ok(None) => {
                data.truncate(len);
                return StreamRead::Packet(data.into());
            }
            Err(_) => return StreamRead::Broken,
        }
    }
}

/// Writes what the relay queues for this session until it is closed; returns the reason.
async fn outbound(connection: &Connection, mut session: SessionHandle) -> (u32, String) {
    let mut batch = Vec::with_capacity(IN_FLIGHT);
    let mut writes = FuturesUnordered::new();
    loop {
        tokio::select! {
            more = session.recv_batch(&mut batch, IN_FLIGHT - writes.len()), if writes.len() < IN_FLIGHT => {
                if !more {
                    return closing("relay stopped");
                }
                for out in batch.drain(..) {
                    match out {
                        Outbound::Packet(packet) => {
                            // Streams are opened in queue order so that clients, which see
                            // streams in id order, get packets in the order the relay sent
                            // them (SESSION_ASSIGNED first); the writes then run side by side.
                            let Ok(stream) = open_stream(connection).await else {
                                return closing("connection lost");
                            };
                            writes.push(write_packet(stream, packet));
                        }
                        Outbound::Close(reason) => return closed_by_relay(reason),
                    }
                }
            }
            Some(written) = writes.next(), if !writes.is_empty() => {
                let mut total = written;
                while let Some(Some(more)) = futures_util::FutureExt::now_or_never(writes.next()) {
                    total += more;
                }
                if session.transmitted(total).await.is_err() {
                    return closing("relay stopped");
                }
            }
        }
    }
}

/// Writes what the relay queues for this session on one framed stream, until it is closed;
/// returns the reason. While a write is in progress the relay's queue is still read (into the
/// next write), so a client that stops reading (its write never completes) still hears the
/// relay close it; the write in progress is only abandoned then.
async fn outbound_framed(connection: &Connection, mut session: SessionHandle) -> (u32, String) {
    let Ok(mut stream) = open_stream(connection).await else {
        return closing("connection lost");
    };
    let mut batch = Vec::with_capacity(FRAMED_BATCH);
    // Being written, and gathered for the next write. The relay hands out at most its queue
    // budget before hearing bytes were written, which bounds both.
    let mut writing = Vec::with_capacity(64 * 1024);
    let mut next = Vec::with_capacity(64 * 1024);
    next.push(framing::FRAMED_STREAM_MARKER);
    let mut unreported = 0;
    let mut written_unreported = 0;
    loop {
        if next.is_empty() {
            // Nothing to write: wait for the relay.
            if !session.recv_batch(&mut batch, FRAMED_BATCH).await {
                return closing("relay stopped");
            }
            if let Some(reason) = frame_batch(&mut batch, &mut next, &mut unreported) {
                // What came before the close still goes out, unless the client is not reading.
                let _ = tokio::time::timeout(CLOSE_WRITE_WAIT, stream.write_all(&next)).await;
                return reason;
            }
            continue;
        }
        std::mem::swap(&mut writing, &mut next);
        let in_flight = std::mem::take(&mut unreported);
        {
            let write = stream.write_all(&writing);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    written = &mut write => {
                        if written.is_err() {
                            return closing("connection lost");
                        }
                        break;
                    }
                    more = session.recv_batch(&mut batch, FRAMED_BATCH) => {
                        if !more {
                            return closing("relay stopped");
                        }
                        if let Some(reason) = frame_batch(&mut batch, &mut next, &mut unreported) {
                            // The relay closed us mid-write (a stalled reader, a shutdown).
                            return reason;
                        }
                    }
                }
            }
        }
        writing.clear();
        written_unreported += in_flight;
        if written_unreported >= REPORT_BYTES {
            if session.transmitted(written_unreported).await.is_err() {
                return closing("relay stopped");
            }
            written_unreported = 0;
        }
    }
}

/// Appends a batch of the relay's packets to `buf` as frames, counting their bytes; returns the
/// close reason if the relay closed the session.
fn frame_batch(
    batch: &mut Vec<Outbound>,
    buf: &mut Vec<u8>,
    unreported: &mut usize,
) -> Option<(u32, String)> {
    for out in batch.drain(..) {
        match out {
            Outbound::Packet(packet) => {
                framing::push_frame(buf, &packet);
                *unreported += packet.len();
            }
            Outbound::Close(reason) => return Some(closed_by_relay(reason)),
        }
    }
    None
}

fn closing(reason: &str) -> (u32, String) {
    (CLOSE_NORMAL, reason.to_owned())
}

/// The application close code and reason of a session the relay closed: a removal, an end
/// or a replacement carry their own codes (the WebSocket's too), so clients do not reconnect.
fn closed_by_relay(reason: CloseReason) -> (u32, String) {
    let code = match reason {
        CloseReason::Shutdown => CLOSE_SHUTDOWN,
        CloseReason::Removed | CloseReason::MeetingEnded | CloseReason::Replaced => {
            u32::from(reason.close_code())
        }
        _ => CLOSE_NORMAL,
    };
    (code, reason.as_str().to_owned())
}

/// Answers a refused CONNECT: a bad path 404, otherwise the session is accepted and closed at
/// once with application code 4000 + status (4401, 4403, 4409, …) and the reason. wtransport
/// can only answer 403, 404 and 429 on the CONNECT, and clients (wtransport's, the browser's)
/// see a refused CONNECT without its status; a close code and reason they do see.
async fn refuse(request: wtransport::endpoint::SessionRequest, refusal: &Refusal) {
    match refusal.status {
        400 | 404 => request.not_found().await,
        status => {
            if let Ok(connection) = request.accept().await {
                let code = 4000 + u32::from(status);
                connection.close(VarInt::from_u32(code), refusal.message.as_bytes());
            }
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
