//! Buses join relay nodes: a node publishes what its sessions send on `room.<meeting>.<session>`
//! and holds one subscription per meeting it serves (`room.<meeting>.>`).
//!
//! [`InProcessBus`] joins nodes inside one process (the single-node default, and tests);
//! [`NatsBus`] (feature `nats`) joins processes through a NATS server. Neither ever blocks the
//! node: publishing only queues, and a full queue drops the message and counts it. A bus that is
//! cut off drops (and counts) what is published meanwhile rather than sending it late.

#[cfg(feature = "nats")]
mod coalesce;
mod in_process;
#[cfg(feature = "nats")]
mod nats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

pub use in_process::{InProcessBus, InProcessConnection};
#[cfg(feature = "nats")]
pub use nats::{NatsBus, NatsError};

/// One message received on a subscription.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The subject it was published on.
    pub subject: String,
    /// One encoded `PacketWrapper`.
    pub payload: Bytes,
}

/// Whether the bus currently reaches the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusState {
    /// Connected: publications reach the other nodes.
    Connected,
    /// Cut off (reconnecting): local sessions are still served.
    Disconnected,
}

/// A node's connection to a bus.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Queues `payload` for publication on `subject`; never waits. Returns false if it was
    /// dropped because the bus's queue is full.
    fn publish(&self, subject: &str, payload: Bytes) -> bool;

    /// Delivers every message on `subject` (a literal subject, or a prefix ending in `.>`) to
    /// `sink` until the returned handle is dropped. Subscriptions survive reconnects.
    fn subscribe(&self, subject: &str, sink: mpsc::Sender<BusMessage>) -> BusSubscription;

    /// Watches the connection state.
    fn state(&self) -> watch::Receiver<BusState>;

    /// Messages dropped so far because a queue was full (publish or delivery), because the
    /// bus was cut off when they were published, or (NATS) because a batch from the bus did not
    /// decode (each such batch counts one).
    fn dropped(&self) -> u64;

    /// A short name for logs and metrics ("in-process", "nats").
    fn kind(&self) -> &'static str;

    /// Resolves once what was published so far has been handed to the bus's server (callers
    /// bound the wait). The in-process bus delivers at once.
    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Ends its subscription when dropped.
#[must_use = "the subscription ends when this handle is dropped"]
pub struct BusSubscription {
    on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl BusSubscription {
    pub(crate) fn new(on_drop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            on_drop: Some(Box::new(on_drop)),
        }
    }
}

impl std::fmt::Debug for BusSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BusSubscription")
    }
}

impl Drop for BusSubscription {
    fn drop(&mut self) {
        if let Some(on_drop) = self.on_drop.take() {
            on_drop();
        }
    }
}

/// A shared drop counter.
#[derive(Debug, Clone, Default)]
pub(crate) struct DropCounter(Arc<AtomicU64>);

impl DropCounter {
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
