//! One WebSocket session: binary messages in (one `PacketWrapper` each), the relay's packets
//! out. Reading and writing run in one task per connection; the session's queue lives in the
//! relay core, so a slow socket only ever slows itself.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use actix_ws::{CloseCode, CloseReason, Item, Message, MessageStream};
use futures_util::StreamExt;
use tracing::debug;
use videocall_relay::JoinError;
use videocall_relay::node::{NodeError, Outbound, SessionHandle};
use webtransport_server::admission::Refusal as Admission;
use webtransport_server::limits::Refusal;

use crate::AppState;
use crate::unfinished::{Overflow, Unfinished, Watched};
use crate::ws_out::{Outgoing, outgoing};

/// Packets taken from the relay's queue at once.
const BATCH: usize = 64;
/// Written bytes are reported to the relay's queue accounting once this many have accumulated,
/// not after every batch: at light load every packet is its own batch, and a report per batch
/// cost the node task more commands (and wake-ups) than the inbound packets themselves. The
/// accounting then lags by less than this, a small part of the 512 KiB video queue.
const REPORT_BYTES: usize = 32 * 1024;
/// How long the close frame may wait to be queued for a peer that is not reading.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Room beyond the relay's largest frame for a WebSocket message: a message up to this much
/// larger still reaches the relay, which refuses and counts it (`oversize`) while the
/// connection stays; a larger one closes the connection. It is also the most a connection's
/// unfinished message (frame or fragments) may hold.
pub(crate) const MESSAGE_SLACK_BYTES: usize = 64 * 1024;

/// `GET /lobby?token=…` or `GET /lobby/{user_id}/{meeting_id}`: counts the connection against
/// the node's and the address's limits (HTTP 503 / 429 with the reason), admits it
/// ([`Gatekeeper`](webtransport_server::admission::Gatekeeper): 400 bad path, 401 bad token,
/// 403 not allowed, 404 no such meeting, 503 store down), joins the meeting before upgrading
/// (409 for a takeover attempt, 403 for a removed user), then upgrades (a full meeting or node
/// closes the socket with the reason).
pub(crate) async fn lobby(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    // Only a connection without a TCP peer (a test's) has no address.
    let ip = req
        .peer_addr()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |a| a.ip());
    let permit = match state.limits.connections.try_acquire(ip) {
        Ok(permit) => permit,
        Err(refusal) => {
            let reason = format!("{}\n", refusal.as_str());
            return Ok(match refusal {
                Refusal::NodeFull => HttpResponse::ServiceUnavailable().body(reason),
                Refusal::TooManyFromAddress => HttpResponse::TooManyRequests().body(reason),
            });
        }
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let join = match state.gatekeeper.admit(target).await {
        Ok(join) => join,
        Err(refusal) => {
            if refusal.status == 400 {
                state.metrics.refused.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(refused(&refusal));
        }
    };
    let (user, meeting) = (join.user.clone(), join.meeting.clone());
    // Joined before upgrading, so that a takeover attempt, a removed user or a join while the
    // node drains hears its status.
    let joined = match state.node.admit(join).await {
        Err(NodeError::Join(
            e @ (JoinError::UserPresent { .. } | JoinError::Removed | JoinError::ShuttingDown),
        )) => {
            let refusal = Admission::join(&e);
            state.gatekeeper.count(&refusal);
            return Ok(refused(&refusal));
        }
        joined => joined,
    };
    let cap = state.max_frame_bytes.saturating_add(MESSAGE_SLACK_BYTES);
    let unfinished = Unfinished::new(cap, state.limits.clone());
    let watched = Watched {
        inner: body.into_inner(),
        unfinished: unfinished.clone(),
    };
    let mut payload = dev::Payload::Stream {
        payload: Box::pin(watched)
            as std::pin::Pin<
                Box<dyn futures_util::Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>,
            >,
    };
    let body = web::Payload::from_request(&req, &mut payload).await?;
    // A failed handshake drops `joined`: the session leaves.
    let (response, _session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(cap);
    // Frames are written into our own body (ws_out), not through actix-ws' session channel.
    let (head, original) = response.into_parts();
    let (session, body) = outgoing(original);
    let response = head.set_body(body).map_into_boxed_body();
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let _permit = permit;
        match joined {
            Ok(handle) => {
                debug!(%user, %meeting, session = %handle.id(), "WebSocket session joined");
                let inbound = Inbound {
                    stream,
                    unfinished,
                    cap,
                    message: None,
                };
                let reason = run(handle, &session, inbound, &state).await;
                // A peer that stopped reading never takes the close frame: do not wait for it.
                let _ = tokio::time::timeout(CLOSE_WAIT, session.close(reason)).await;
            }
            Err(e) => {
                let code = match e {
                    NodeError::Join(_) => CloseCode::Again,
                    _ => CloseCode::Error,
                };
                let reason = CloseReason {
                    code,
                    description: Some(e.to_string()),
                };
                let _ = tokio::time::timeout(CLOSE_WAIT, session.close(reason)).await;
            }
        }
    });
    Ok(response)
}

/// The HTTP answer to a refused join: its status and reason.
fn refused(refusal: &Admission) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(refusal.status)
        .unwrap_or(actix_web::http::StatusCode::FORBIDDEN);
    HttpResponse::build(status).body(format!("{}\n", refusal.message))
}

fn close(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

/// The WebSocket's messages: frames from the codec, fragments assembled here (with the cap and
/// the deadline of [`Unfinished`]).
struct Inbound {
    stream: MessageStream,
    unfinished: Rc<Unfinished>,
    cap: usize,
    /// A fragmented message being assembled: its bytes (binary) or length (text, discarded)
    /// and when it began.
    message: Option<(Fragments, Instant)>,
}

enum Fragments {
    Binary(BytesMut),
    Text(usize),
}

/// What the session does with one frame.
enum Received {
    Binary(Bytes),
    Text,
    Ping(Bytes),
    Pong,
    /// A fragment: nothing to do yet.
    Fragment,
    Closed,
    /// The connection must close with this reason.
    Refused(CloseReason),
}

impl Inbound {
    /// When the oldest unfinished part (a frame, or a fragmented message) is due.
    fn deadline(&self, timeout: std::time::Duration) -> Option<tokio::time::Instant> {
        let frame = self.unfinished.waiting_since();
        let message = self.message.as_ref().map(|(_, since)| *since);
        let oldest = match (frame, message) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        oldest.map(|since| tokio::time::Instant::from_std(since + timeout))
    }

    async fn next(&mut self, state: &AppState) -> Received {
        let frame = self.stream.next().await;
        self.unfinished.frame_done();
        let metrics = &state.metrics;
        match frame {
            Some(Ok(Message::Binary(data))) => Received::Binary(data),
            Some(Ok(Message::Text(_))) => Received::Text,
            Some(Ok(Message::Ping(bytes))) => Received::Ping(bytes),
            Some(Ok(Message::Pong(_))) => Received::Pong,
            Some(Ok(Message::Continuation(item))) => self.fragment(item, state),
            Some(Ok(Message::Close(_))) | Some(Ok(Message::Nop)) | None => Received::Closed,
            Some(Err(e)) => match self.unfinished.overflow() {
                Some(Overflow::Connection) => {
                    metrics.oversize_messages.fetch_add(1, Ordering::Relaxed);
                    Received::Refused(close(CloseCode::Size, "message too large"))
                }
                Some(Overflow::Node) => Received::Refused(close(
                    CloseCode::Again,
                    "server busy: too many unfinished messages",
                )),
                None => {
                    metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    debug!("WebSocket protocol error: {e}");
                    Received::Refused(close(CloseCode::Protocol, &e.to_string()))
                }
            },
        }
    }

    fn fragment(&mut self, item: Item, state: &AppState) -> Received {
        let protocol_error = |reason: &str| {
            state
                .metrics
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            Received::Refused(close(CloseCode::Protocol, reason))
        };
        let (bytes, last) = match item {
            Item::FirstBinary(bytes) | Item::FirstText(bytes) if self.message.is_some() => {
                let _ = bytes;
                return protocol_error("a new message began inside a fragmented one");
            }
            Item::FirstBinary(bytes) => {
                self.message = Some((Fragments::Binary(BytesMut::new()), Instant::now()));
                (bytes, false)
            }
            Item::FirstText(bytes) => {
                self.message = Some((Fragments::Text(0), Instant::now()));
                (bytes, false)
            }
            Item::Continue(bytes) => (bytes, false),
            Item::Last(bytes) => (bytes, true),
        };
        let Some((fragments, _)) = self.message.as_mut() else {
            return protocol_error("a continuation without a message");
        };
        let len = match fragments {
            Fragments::Binary(data) => {
                data.extend_from_slice(&bytes);
                data.len()
            }
            Fragments::Text(len) => {
                *len += bytes.len();
                *len
            }
        };
        if len > self.cap {
            state
                .metrics
                .oversize_messages
                .fetch_add(1, Ordering::Relaxed);
            return Received::Refused(close(CloseCode::Size, "message too large"));
        }
        if !last {
            self.unfinished.set_assembled(len);
            return Received::Fragment;
        }
        self.unfinished.set_assembled(0);
        match self.message.take() {
            Some((Fragments::Binary(data), _)) => Received::Binary(data.freeze()),
            _ => Received::Text,
        }
    }
}

/// Pumps one session until either side ends it; returns the close reason to send.
///
/// Writing never holds up the rest: a socket whose peer stops reading blocks only the write in
/// progress, while inbound packets, pings and the relay's decision to close the session (a
/// stalled reader is cut off by the relay) are still handled.
async fn run(
    mut handle: SessionHandle,
    session: &Outgoing,
    mut inbound: Inbound,
    state: &AppState,
) -> CloseReason {
    let sender = handle.sender();
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(state.ping_interval);
    let mut last_heard = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    // Taken from the relay, not yet written; at most two batches.
    let mut pending: VecDeque<Bytes> = VecDeque::with_capacity(2 * BATCH);
    let mut unreported = 0;
    let unfinished = inbound.unfinished.clone();
    let timeout = state.limits.partial_message_timeout;
    loop {
        let deadline = inbound.deadline(timeout);
        tokio::select! {
            received = inbound.next(state) => {
                last_heard = Instant::now();
                match received {
                    Received::Binary(data) => {
                        if sender.send(data).await.is_err() {
                            return close(CloseCode::Error, "relay stopped");
                        }
                    }
                    Received::Ping(bytes) => {
                        if session.pong(&bytes).is_err() {
                            return close(CloseCode::Normal, "closed");
                        }
                    }
                    Received::Pong | Received::Fragment => {}
                    Received::Text => {
                        state.metrics.text_messages.fetch_add(1, Ordering::Relaxed);
                    }
                    Received::Closed => return close(CloseCode::Normal, "bye"),
                    Received::Refused(reason) => return reason,
                }
            }
            // Cancel-safe: nothing is taken from `pending` until there is room for it.
            writable = session.writable(), if !pending.is_empty() => {
                if writable.is_err() {
                    return close(CloseCode::Normal, "closed");
                }
                // Whatever fits goes now, encoded into the connection's buffer.
                while let Some(packet) = pending.front() {
                    match session.try_binary(packet) {
                        Ok(true) => unreported += packet.len(),
                        Ok(false) => break,
                        Err(_) => return close(CloseCode::Normal, "closed"),
                    }
                    pending.pop_front();
                }
                if unreported >= REPORT_BYTES {
                    if handle.transmitted(unreported).await.is_err() {
                        return close(CloseCode::Error, "relay stopped");
                    }
                    unreported = 0;
                }
            }
            // Bytes began to wait: loop, so that the deadline below is armed.
            () = unfinished.started() => {}
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                state.limits.ws_partial_message_timeouts.fetch_add(1, Ordering::Relaxed);
                return close(CloseCode::Policy, "message not completed in time");
            }
            more = handle.recv_batch(&mut batch, BATCH), if pending.len() < BATCH => {
                if !more {
                    return close(CloseCode::Error, "relay stopped");
                }
                for out in batch.drain(..) {
                    match out {
                        Outbound::Packet(packet) => pending.push_back(packet),
                        Outbound::Close(reason) => {
                            // Going away (1001) tells clients to reconnect, to another node;
                            // a removal, an end or a replacement has its own code (4010-4012)
                            // so that clients do not.
                            use videocall_relay::CloseReason as Why;
                            let code = match reason {
                                Why::Shutdown => CloseCode::Away,
                                Why::Removed | Why::MeetingEnded | Why::Replaced => {
                                    CloseCode::Other(reason.close_code())
                                }
                                _ => CloseCode::Policy,
                            };
                            return close(code, reason.as_str());
                        }
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > state.ping_interval * 3 {
                    state.metrics.ping_timeouts.fetch_add(1, Ordering::Relaxed);
                    return close(CloseCode::Away, "no answer to pings");
                }
                if session.ping().is_err() {
                    return close(CloseCode::Normal, "closed");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => {
                return close(CloseCode::Away, "server shutting down");
            }
        }
    }
}
