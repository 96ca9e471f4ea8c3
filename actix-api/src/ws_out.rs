//! The outgoing side of a WebSocket: the session task encodes frames straight into a buffer
//! that the connection's response body hands to actix's HTTP dispatcher.
//!
//! actix-ws would carry each message through a bounded channel (a semaphore permit, a send and
//! a wake-up per packet) to a body that encodes it. The session task and the dispatcher run on
//! the same actix worker thread, so a buffer they share (`Rc<RefCell>`) does the same with one
//! wake-up per batch. The buffer holds at most [`BUFFER_LIMIT`] bytes before the session task
//! waits for the dispatcher to take them (plus one packet, and control frames); the
//! dispatcher takes them only as fast as the socket accepts them, so a peer that stops reading
//! stops the session's writes, not the worker.

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use actix_codec::Encoder;
use actix_http::ws::{Codec, Message};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use actix_ws::CloseReason;

/// Encoded bytes the dispatcher has not taken yet, at most, before the session task waits.
pub(crate) const BUFFER_LIMIT: usize = 64 * 1024;
/// Control frames (pongs) beyond the limit are dropped past this much: a peer that sends
/// pings without reading cannot grow the buffer.
const CONTROL_SLACK: usize = 16 * 1024;
/// RFC 6455: a control frame carries at most 125 bytes; a close reason at most 123.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The connection is gone: the dispatcher dropped the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

#[derive(Default)]
struct Shared {
    buf: BytesMut,
    codec: Codec,
    /// The body waits for bytes.
    body: Option<Waker>,
    /// The session task waits for room.
    writer: Option<Waker>,
    /// The body was dropped: nothing more is sent.
    gone: bool,
    /// A close frame is in the buffer: the body ends once it is taken.
    finished: bool,
}

impl Shared {
    fn encode(&mut self, message: Message) {
        // Encoding into a BytesMut cannot fail for server-side frames within the size the
        // codec allows; a frame it refuses is not sent.
        let mut codec = std::mem::take(&mut self.codec);
        let _ = codec.encode(message, &mut self.buf);
        self.codec = codec;
        if let Some(waker) = self.body.take() {
            waker.wake();
        }
    }
}

/// The session task's end: encodes frames into the shared buffer.
#[derive(Clone)]
pub(crate) struct Outgoing {
    shared: Rc<RefCell<Shared>>,
}

/// The response body of the connection: hands the buffer to the dispatcher.
pub(crate) struct OutgoingBody {
    shared: Rc<RefCell<Shared>>,
    /// actix-ws's own body, never polled: while it lives, its message stream keeps reading
    /// (dropping it tells the stream the connection closed).
    _original: BoxBody,
}

/// A buffer and the body that drains it; `original` is actix-ws's body it replaces.
pub(crate) fn outgoing(original: BoxBody) -> (Outgoing, OutgoingBody) {
    let shared = Rc::new(RefCell::new(Shared::default()));
    (
        Outgoing {
            shared: shared.clone(),
        },
        OutgoingBody {
            shared,
            _original: original,
        },
    )
}

impl Outgoing {
    /// Waits until the buffer has room (cancel-safe).
    pub(crate) async fn writable(&self) -> Result<(), Closed> {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if shared.gone || shared.finished {
                return Poll::Ready(Err(Closed));
            }
            if shared.buf.len() < BUFFER_LIMIT {
                return Poll::Ready(Ok(()));
            }
            shared.writer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Encodes a binary message if the buffer has room: `Ok(false)` when it is full.
    pub(crate) fn try_binary(&self, data: &Bytes) -> Result<bool, Closed> {
        let mut shared = self.shared.borrow_mut();
        if shared.gone || shared.finished {
            return Err(Closed);
        }
        if shared.buf.len() >= BUFFER_LIMIT {
            return Ok(false);
        }
        shared.encode(Message::Binary(data.clone()));
        Ok(true)
    }

    /// Encodes a ping.
    pub(crate) fn ping(&self) -> Result<(), Closed> {
        self.control(Message::Ping(Bytes::new()))
    }

    /// Encodes a pong with (at most 125 bytes of) the ping's payload; dropped when the peer
    /// leaves far more than the buffer unread.
    pub(crate) fn pong(&self, payload: &Bytes) -> Result<(), Closed> {
        let payload = payload.slice(..payload.len().min(MAX_CONTROL_PAYLOAD));
        self.control(Message::Pong(payload))
    }

    fn control(&self, message: Message) -> Result<(), Closed> {
        let mut shared = self.shared.borrow_mut();
        if shared.gone || shared.finished {
            return Err(Closed);
        }
        if shared.buf.len() < BUFFER_LIMIT + CONTROL_SLACK {
            shared.encode(message);
        }
        Ok(())
    }

    /// Waits for room, then encodes the close frame; the body ends after it. Nothing is sent
    /// after a close.
    pub(crate) async fn close(&self, mut reason: CloseReason) -> Result<(), Closed> {
        self.writable().await?;
        if let Some(description) = reason.description.as_mut()
            && description.len() > MAX_CONTROL_PAYLOAD - 2
        {
            let mut end = MAX_CONTROL_PAYLOAD - 2;
            while !description.is_char_boundary(end) {
                end -= 1;
            }
            description.truncate(end);
        }
        let mut shared = self.shared.borrow_mut();
        shared.encode(Message::Close(Some(reason)));
        shared.finished = true;
        Ok(())
    }
}

impl MessageBody for OutgoingBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut shared = self.shared.borrow_mut();
        if !shared.buf.is_empty() {
            // `split` leaves the buffer empty with no capacity: a large frame is not kept.
            let bytes = shared.buf.split().freeze();
            if let Some(waker) = shared.writer.take() {
                waker.wake();
            }
            return Poll::Ready(Some(Ok(bytes)));
        }
        if shared.finished {
            return Poll::Ready(None);
        }
        shared.body = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for OutgoingBody {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.gone = true;
        if let Some(waker) = shared.writer.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::Frame;
    use futures_util::FutureExt;

    fn poll_body(body: &mut OutgoingBody) -> Poll<Option<Bytes>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|o| o.map(|r| r.unwrap_or_else(|e| match e {})))
    }

    /// Frames as a client reads them.
    fn frames(mut bytes: BytesMut) -> Vec<Frame> {
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut bytes).expect("valid frames") {
            out.push(frame);
        }
        assert!(bytes.is_empty(), "no partial frame left");
        out
    }

    #[test]
    fn packets_come_out_as_binary_frames_in_order_and_a_full_buffer_waits() {
        let (out, mut body) = outgoing(BoxBody::new(()));
        assert!(poll_body(&mut body).is_pending());
        let packet = Bytes::from(vec![7u8; 10_000]);
        let mut queued = 0;
        while out.try_binary(&packet).expect("open") {
            queued += 1;
        }
        // The limit holds the buffer to 64 KiB plus the packet that crossed it.
        assert_eq!(queued, BUFFER_LIMIT.div_ceil(10_004));
        assert!(out.writable().now_or_never().is_none(), "full: waits");
        out.ping().expect("open");
        let Poll::Ready(Some(bytes)) = poll_body(&mut body) else {
            panic!("bytes are ready");
        };
        assert_eq!(out.writable().now_or_never(), Some(Ok(())));
        let frames = frames(BytesMut::from(&bytes[..]));
        assert_eq!(frames.len(), queued + 1);
        assert!(
            frames[..queued]
                .iter()
                .all(|f| *f == Frame::Binary(packet.clone()))
        );
        assert_eq!(frames[queued], Frame::Ping(Bytes::new()));
    }

    #[test]
    fn a_close_ends_the_body_and_a_dropped_body_closes_the_writer() {
        let (out, mut body) = outgoing(BoxBody::new(()));
        let long = "é".repeat(100);
        let reason = CloseReason {
            code: actix_ws::CloseCode::Policy,
            description: Some(long),
        };
        assert_eq!(out.close(reason).now_or_never(), Some(Ok(())));
        assert_eq!(out.try_binary(&Bytes::from_static(b"x")), Err(Closed));
        let Poll::Ready(Some(bytes)) = poll_body(&mut body) else {
            panic!("the close frame is ready");
        };
        let [Frame::Close(Some(reason))] = &frames(BytesMut::from(&bytes[..]))[..] else {
            panic!("one close frame");
        };
        assert_eq!(reason.code, actix_ws::CloseCode::Policy);
        let description = reason.description.as_deref().unwrap_or_default();
        assert!(description.len() <= 123 && description.starts_with('é'));
        assert_eq!(poll_body(&mut body), Poll::Ready(None));

        let (out, body) = outgoing(BoxBody::new(()));
        drop(body);
        assert_eq!(out.writable().now_or_never(), Some(Err(Closed)));
        assert_eq!(out.pong(&Bytes::from_static(b"p")), Err(Closed));
    }

    #[test]
    fn pongs_to_a_peer_that_does_not_read_stop_past_the_slack() {
        let (out, _body) = outgoing(BoxBody::new(()));
        let payload = Bytes::from(vec![1u8; 500]);
        for _ in 0..10_000 {
            out.pong(&payload).expect("open");
        }
        let len = out.shared.borrow().buf.len();
        assert!(len <= BUFFER_LIMIT + CONTROL_SLACK + 2 + 125, "{len}");
    }
}
