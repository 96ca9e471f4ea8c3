//! The bus of one process: a map from subject pattern to subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::{Bus, BusMessage, BusState, BusSubscription, DropCounter};

#[derive(Debug, Default)]
struct Router {
    next_id: u64,
    /// Pattern (`room.m.>` or a literal subject) → (subscription id, connection id, sink).
    subscriptions: HashMap<String, Vec<(u64, u64, mpsc::Sender<BusMessage>)>>,
}

/// A bus inside one process. Each [`InProcessBus::connect`] is one node's connection; like NATS
/// with `no_echo`, a connection does not receive its own publications.
#[derive(Debug, Clone, Default)]
pub struct InProcessBus {
    router: Arc<Mutex<Router>>,
    dropped: DropCounter,
    /// Connections open: with one (a single node, whatever its shards) nobody else could hear
    /// a publication, and publishing skips the router's lock.
    connections: Arc<AtomicUsize>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new node's connection to this bus.
    pub fn connect(&self) -> InProcessConnection {
        let id = {
            let mut router = self.router.lock().expect("bus lock holders never panic");
            router.next_id += 1;
            router.next_id
        };
        self.connections.fetch_add(1, Ordering::Relaxed);
        InProcessConnection {
            bus: self.clone(),
            id,
            state: watch::channel(BusState::Connected).1,
        }
    }
}

/// One node's connection to an [`InProcessBus`].
#[derive(Debug)]
pub struct InProcessConnection {
    bus: InProcessBus,
    id: u64,
    state: watch::Receiver<BusState>,
}

/// The patterns that match `subject`: itself and every `prefix.>`.
fn patterns(subject: &str) -> impl Iterator<Item = &str> {
    let prefixes = subject.match_indices('.').map(move |(i, _)| &subject[..=i]);
    std::iter::once(subject).chain(prefixes)
}

impl Drop for InProcessConnection {
    fn drop(&mut self) {
        self.bus.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Bus for InProcessConnection {
    fn publish(&self, subject: &str, payload: Bytes) -> bool {
        if self.bus.connections.load(Ordering::Relaxed) <= 1 {
            // Alone on the bus (no echo): nobody could receive it. A connection made from now
            // on subscribes before it can hear anything.
            return true;
        }
        let router = self
            .bus
            .router
            .lock()
            .expect("bus lock holders never panic");
        let mut all_delivered = true;
        for pattern in patterns(subject) {
            let subscribers = if pattern.len() == subject.len() {
                router.subscriptions.get(pattern)
            } else {
                router.subscriptions.get(&format!("{pattern}>"))
            };
            for (_, connection, sink) in subscribers.into_iter().flatten() {
                if *connection == self.id {
                    continue;
                }
                let message = BusMessage {
                    subject: subject.to_owned(),
                    payload: payload.clone(),
                };
                if sink.try_send(message).is_err() {
                    self.bus.dropped.add();
                    all_delivered = false;
                }
            }
        }
        all_delivered
    }

    fn subscribe(&self, subject: &str, sink: mpsc::Sender<BusMessage>) -> BusSubscription {
        let mut router = self
            .bus
            .router
            .lock()
            .expect("bus lock holders never panic");
        router.next_id += 1;
        let sub_id = router.next_id;
        router
            .subscriptions
            .entry(subject.to_owned())
            .or_default()
            .push((sub_id, self.id, sink));
        let weak = Arc::downgrade(&self.bus.router);
        let subject = subject.to_owned();
        BusSubscription::new(move || {
            if let Some(router) = weak.upgrade() {
                let mut router = router.lock().expect("bus lock holders never panic");
                if let Some(list) = router.subscriptions.get_mut(&subject) {
                    list.retain(|(id, _, _)| *id != sub_id);
                    if list.is_empty() {
                        router.subscriptions.remove(&subject);
                    }
                }
            }
        })
    }

    fn state(&self) -> watch::Receiver<BusState> {
        self.state.clone()
    }

    fn dropped(&self) -> u64 {
        self.bus.dropped.get()
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_reach_other_connections_on_matching_subjects_only() {
        let bus = InProcessBus::new();
        let (a, b) = (bus.connect(), bus.connect());
        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(8);
        let _sa = a.subscribe("room.m1.>", tx_a);
        let sb = b.subscribe("room.m1.>", tx_b.clone());
        let _other = b.subscribe("room.m2.>", tx_b);

        assert!(a.publish("room.m1.5", Bytes::from_static(b"hi")));
        let got = rx_b.recv().await.unwrap();
        assert_eq!(
            (got.subject.as_str(), &got.payload[..]),
            ("room.m1.5", &b"hi"[..])
        );
        assert!(
            rx_a.try_recv().is_err(),
            "a connection heard its own publication"
        );
        assert!(a.publish("room.m1.5.6", Bytes::from_static(b"directed")));
        assert_eq!(rx_b.recv().await.unwrap().subject, "room.m1.5.6");

        drop(sb);
        assert!(a.publish("room.m1.5", Bytes::from_static(b"after")));
        assert!(
            rx_b.try_recv().is_err(),
            "an ended subscription still delivered"
        );
        assert_eq!(*a.state().borrow(), BusState::Connected);
    }

    #[tokio::test]
    async fn a_lone_connection_publishes_to_nobody_until_another_connects() {
        let bus = InProcessBus::new();
        let a = bus.connect();
        assert!(a.publish("room.m.1", Bytes::from_static(b"alone")));
        let b = bus.connect();
        let (tx, mut rx) = mpsc::channel(8);
        let _s = b.subscribe("room.m.>", tx);
        assert!(a.publish("room.m.1", Bytes::from_static(b"heard")));
        assert_eq!(&rx.recv().await.unwrap().payload[..], b"heard");
        // Its publications reach others again only while others are connected.
        let c = bus.connect();
        drop(c);
        assert!(a.publish("room.m.1", Bytes::from_static(b"still")));
        assert_eq!(&rx.recv().await.unwrap().payload[..], b"still");
    }

    #[tokio::test]
    async fn a_full_subscriber_drops_and_counts_instead_of_blocking() {
        let bus = InProcessBus::new();
        let (a, b) = (bus.connect(), bus.connect());
        let (tx, _rx) = mpsc::channel(1);
        let _s = b.subscribe("room.m.>", tx);
        assert!(a.publish("room.m.1", Bytes::new()));
        assert!(!a.publish("room.m.1", Bytes::new()));
        assert_eq!(a.dropped(), 1);
    }
}
