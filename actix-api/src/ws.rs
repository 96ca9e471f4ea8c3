//! One WebSocket session: binary messages in (one `PacketWrapper` each), the relay's packets
//! out. Reading and writing run in one task per connection; the session's queue lives in the
//! relay core, so a slow socket only ever slows itself.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tracing::debug;
use videocall_relay::node::{NodeError, Outbound, SessionHandle};
use videocall_types::{MeetingId, UserId};

use crate::AppState;

/// Packets taken from the relay's queue at once.
const BATCH: usize = 64;
/// Written bytes are reported to the relay's queue accounting once this many have accumulated,
/// not after every batch: at light load every packet is its own batch, and a report per batch
/// cost the node task more commands (and wake-ups) than the inbound packets themselves. The
/// accounting then lags by less than this, a small part of the 512 KiB video queue.
const REPORT_BYTES: usize = 32 * 1024;
/// How long the close frame may wait to be queued for a peer that is not reading.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /lobby/{user_id}/{meeting_id}`: validates the ids (HTTP 400 with the reason), upgrades,
/// joins the meeting (a full meeting or node closes the socket with the reason).
pub(crate) async fn lobby(
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let (user, meeting) = path.into_inner();
    let ids = UserId::new(user)
        .map_err(|e| e.to_string())
        .and_then(|u| Ok((u, MeetingId::new(meeting).map_err(|e| e.to_string())?)));
    let (user, meeting) = match ids {
        Ok(ids) => ids,
        Err(reason) => {
            state.metrics.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(HttpResponse::BadRequest().body(reason + "\n"));
        }
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    // Twice the relay's limit gets through the codec so that the relay refuses and counts
    // oversize packets itself; anything larger is a protocol error that ends the connection.
    let limit = state.max_frame_bytes.saturating_mul(2);
    let stream = stream
        .max_frame_size(limit)
        .aggregate_continuations()
        .max_continuation_size(limit);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        match state.node.join(user.clone(), meeting.clone()).await {
            Ok(handle) => {
                debug!(%user, %meeting, session = %handle.id(), "WebSocket session joined");
                let reason = run(handle, session.clone(), stream, &state).await;
                // A peer that stopped reading never takes the close frame: do not wait for it.
                let _ = tokio::time::timeout(CLOSE_WAIT, session.close(Some(reason))).await;
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
                let _ = session.close(Some(reason)).await;
            }
        }
    });
    Ok(response)
}

fn close(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

/// Pumps one session until either side ends it; returns the close reason to send.
///
/// Writing never holds up the rest: a socket whose peer stops reading blocks only the write in
/// progress, while inbound packets, pings and the relay's decision to close the session (a
/// stalled reader is cut off by the relay) are still handled.
async fn run(
    mut handle: SessionHandle,
    mut session: Session,
    mut stream: AggregatedMessageStream,
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
    loop {
        // Cancel-safe: a write that loses the race is not sent and stays at the front.
        let front = pending.front().cloned();
        tokio::select! {
            message = stream.next() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Binary(data))) => {
                        if sender.send(data).await.is_err() {
                            return close(CloseCode::Error, "relay stopped");
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return close(CloseCode::Normal, "closed");
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Text(_))) => {
                        state.metrics.text_messages.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(AggregatedMessage::Close(_))) | None => {
                        return close(CloseCode::Normal, "bye");
                    }
                    Some(Err(e)) => {
                        state.metrics.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        debug!("WebSocket protocol error: {e}");
                        return close(CloseCode::Protocol, &e.to_string());
                    }
                }
            }
            written = session.binary(front.clone().unwrap_or_default()), if front.is_some() => {
                if written.is_err() {
                    return close(CloseCode::Normal, "closed");
                }
                if let Some(packet) = pending.pop_front() {
                    unreported += packet.len();
                }
                // Then whatever else goes without waiting, as one batch did before.
                while let Some(packet) = pending.front() {
                    match session.binary(packet.clone()).now_or_never() {
                        Some(Ok(())) => unreported += packet.len(),
                        Some(Err(_)) => return close(CloseCode::Normal, "closed"),
                        None => break,
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
            more = handle.recv_batch(&mut batch, BATCH), if pending.len() < BATCH => {
                if !more {
                    return close(CloseCode::Error, "relay stopped");
                }
                for out in batch.drain(..) {
                    match out {
                        Outbound::Packet(packet) => pending.push_back(packet),
                        Outbound::Close(reason) => {
                            // Going away (1001) tells clients to reconnect, to another node.
                            let code = match reason {
                                videocall_relay::CloseReason::Shutdown => CloseCode::Away,
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
                if session.ping(b"").await.is_err() {
                    return close(CloseCode::Normal, "closed");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => {
                return close(CloseCode::Away, "server shutting down");
            }
        }
    }
}
