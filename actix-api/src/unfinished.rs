//! The bytes a WebSocket has received but not yet turned into a message, watched from below
//! the WebSocket codec.
//!
//! actix's codec buffers a frame until all of it has arrived, and believes the length a frame
//! header announces: a client announcing a huge frame and trickling bytes would otherwise be
//! buffered without limit, for as long as it likes. [`Watched`] sits between the request
//! payload and the codec: every chunk is charged to the connection (at most `cap` bytes of an
//! unfinished message, fragments assembled so far included) and to the node's
//! [`InboundBudget`](webtransport_server::limits::InboundBudget); the session gives the bytes
//! back whenever the codec yields a frame, and closes the connection when a message is still
//! unfinished after the partial-message timeout.
//!
//! Accounting is per read: bytes of the next frame that arrived in the same read as the end of
//! a frame are given back with it, so the count can run short by one read (the HTTP/1 reader's
//! buffer, tens of KiB), never long.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;
use tokio::sync::Notify;
use webtransport_server::limits::NodeLimits;

/// Why the watch refused a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The connection's unfinished message passed `cap`.
    Connection,
    /// The node's inbound budget was spent.
    Node,
}

/// One connection's unfinished bytes.
#[derive(Debug)]
pub(crate) struct Unfinished {
    cap: usize,
    limits: Arc<NodeLimits>,
    /// Bytes received since the codec last yielded a frame.
    pending: Cell<usize>,
    /// When the first of them arrived.
    since: Cell<Option<Instant>>,
    /// Bytes of a fragmented message assembled so far (held by the session).
    assembled: Cell<usize>,
    overflow: Cell<Option<Overflow>>,
    /// Told when bytes start to wait, so the session arms its deadline.
    started: Notify,
}

impl Unfinished {
    pub(crate) fn new(cap: usize, limits: Arc<NodeLimits>) -> Rc<Self> {
        Rc::new(Self {
            cap,
            limits,
            pending: Cell::new(0),
            since: Cell::new(None),
            assembled: Cell::new(0),
            overflow: Cell::new(None),
            started: Notify::new(),
        })
    }

    fn charge(&self, bytes: usize) -> Result<(), Overflow> {
        let pending = self.pending.get();
        if pending + self.assembled.get() + bytes > self.cap {
            return Err(Overflow::Connection);
        }
        if !self.limits.inbound.try_take(pending, bytes) {
            return Err(Overflow::Node);
        }
        if pending == 0 && bytes > 0 {
            self.since.set(Some(Instant::now()));
            self.started.notify_one();
        }
        self.pending.set(pending + bytes);
        Ok(())
    }

    /// The codec yielded a frame: what was pending is no longer unfinished.
    pub(crate) fn frame_done(&self) {
        let pending = self.pending.replace(0);
        self.limits.inbound.give_back(pending, pending);
        self.since.set(None);
    }

    /// Bytes of the fragmented message being assembled (0 when none).
    pub(crate) fn set_assembled(&self, bytes: usize) {
        self.assembled.set(bytes);
    }

    /// Why a chunk was refused, if one was.
    pub(crate) fn overflow(&self) -> Option<Overflow> {
        self.overflow.get()
    }

    /// Since when an unfinished frame has been waiting, if one is.
    pub(crate) fn waiting_since(&self) -> Option<Instant> {
        self.since.get()
    }

    /// Resolves when bytes start waiting (or did since the last call).
    pub(crate) async fn started(&self) {
        self.started.notified().await;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let pending = self.pending.get();
        self.limits.inbound.give_back(pending, pending);
    }
}

/// The request payload, charged to an [`Unfinished`] as it arrives.
pub(crate) struct Watched<S> {
    pub(crate) inner: S,
    pub(crate) unfinished: Rc<Unfinished>,
}

impl<S> Stream for Watched<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.unfinished.overflow().is_some() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => match self.unfinished.charge(bytes.len()) {
                Ok(()) => Poll::Ready(Some(Ok(bytes))),
                Err(overflow) => {
                    self.unfinished.overflow.set(Some(overflow));
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use webtransport_server::limits::LimitArgs;

    fn limits(node_bytes: usize) -> Arc<NodeLimits> {
        NodeLimits::new(&LimitArgs {
            max_inbound_buffer_bytes: node_bytes,
            // Every byte from the node's pool, so that a small pool binds.
            inbound_share_bytes: 0,
            ..LimitArgs::default()
        })
    }

    #[tokio::test]
    async fn a_trickled_message_past_the_cap_is_refused_and_its_bytes_given_back() {
        let node = limits(1 << 20);
        let unfinished = Unfinished::new(100, node.clone());
        let chunks = (0..5).map(|_| Ok(Bytes::from_static(&[0u8; 30])));
        let mut watched = Watched {
            inner: futures_util::stream::iter(chunks),
            unfinished: unfinished.clone(),
        };
        for _ in 0..3 {
            assert!(watched.next().await.unwrap().is_ok());
        }
        assert!(unfinished.waiting_since().is_some());
        assert_eq!(node.inbound.used(), 90);
        assert!(matches!(
            watched.next().await,
            Some(Err(PayloadError::Overflow))
        ));
        assert_eq!(unfinished.overflow(), Some(Overflow::Connection));
        assert!(watched.next().await.is_none(), "nothing after an overflow");
        drop(watched);
        drop(unfinished);
        assert_eq!(node.inbound.used(), 0);
    }

    #[tokio::test]
    async fn a_yielded_frame_gives_its_bytes_back_and_the_node_budget_binds_too() {
        let node = limits(50);
        let unfinished = Unfinished::new(1000, node.clone());
        let chunks = (0..3).map(|_| Ok(Bytes::from_static(&[0u8; 30])));
        let mut watched = Watched {
            inner: futures_util::stream::iter(chunks),
            unfinished: unfinished.clone(),
        };
        assert!(watched.next().await.unwrap().is_ok());
        unfinished.frame_done();
        assert_eq!((node.inbound.used(), unfinished.waiting_since()), (0, None));
        assert!(watched.next().await.unwrap().is_ok());
        assert!(watched.next().await.unwrap().is_err(), "60 > the node's 50");
        assert_eq!(unfinished.overflow(), Some(Overflow::Node));
    }
}
