//! The NATS bus: one async-nats connection per node.
//!
//! One worker task owns the connection's work queue so that a subscription is always on the
//! wire before any publication the node makes after asking for it (a joining session's
//! PARTICIPANT_JOINED must not overtake its node's subscription, or the roster replies are lost).
//! Publishing never waits: a full queue (NATS down for long) drops and counts.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::{Bus, BusMessage, BusState, BusSubscription, DropCounter};

/// How many publications may wait while NATS is slow or away.
const PUBLISH_QUEUE: usize = 16 * 1024;

/// Why the NATS bus could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The URL or options were refused.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
}

enum Control {
    Subscribe {
        id: u64,
        subject: String,
        sink: mpsc::Sender<BusMessage>,
    },
    Unsubscribe {
        id: u64,
    },
}

/// A node's connection to NATS. Reconnects by itself (and resubscribes) after the server goes
/// away; [`Bus::state`] tells when it is cut off.
#[derive(Debug)]
pub struct NatsBus {
    control: mpsc::UnboundedSender<Control>,
    publish: mpsc::Sender<(String, Bytes)>,
    state: watch::Receiver<BusState>,
    dropped: DropCounter,
    next_id: std::sync::atomic::AtomicU64,
    client: async_nats::Client,
}

impl NatsBus {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`). With `wait_for_server` false the bus
    /// starts even if the server is not reachable yet and keeps trying in the background.
    pub async fn connect(url: &str, wait_for_server: bool) -> Result<Self, NatsError> {
        let (state_tx, state) = watch::channel(BusState::Disconnected);
        let events_state = state_tx.clone();
        let mut options = async_nats::ConnectOptions::new()
            .no_echo()
            .name("videocall-relay")
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                // Fast first retries: a restarted server is back in well under a second.
                Duration::from_millis((100 * 2u64.saturating_pow(attempts.min(5) as u32)).min(2000))
            })
            .event_callback(move |event| {
                let state = events_state.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            info!("NATS connected");
                            state.send_replace(BusState::Connected);
                        }
                        async_nats::Event::Disconnected => {
                            warn!("NATS disconnected; serving local sessions and reconnecting");
                            state.send_replace(BusState::Disconnected);
                        }
                        other => warn!("NATS: {other}"),
                    }
                }
            });
        if !wait_for_server {
            options = options.retry_on_initial_connect();
        }
        let client = options
            .connect(url)
            .await
            .map_err(|source| NatsError::Connect {
                url: url.to_owned(),
                source,
            })?;
        if client.connection_state() == async_nats::connection::State::Connected {
            state_tx.send_replace(BusState::Connected);
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let dropped = DropCounter::default();
        tokio::spawn(worker(
            client.clone(),
            control_rx,
            publish_rx,
            dropped.clone(),
        ));
        Ok(Self {
            control,
            publish,
            state,
            dropped,
            next_id: Default::default(),
            client,
        })
    }
}

async fn worker(
    client: async_nats::Client,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut publish: mpsc::Receiver<(String, Bytes)>,
    dropped: DropCounter,
) {
    let mut subscriptions: HashMap<u64, AbortHandle> = HashMap::new();
    loop {
        tokio::select! {
            // Subscriptions first: they were asked for before any publication still queued.
            biased;
            op = control.recv() => match op {
                Some(Control::Subscribe { id, subject, sink }) => {
                    match client.subscribe(subject.clone()).await {
                        Ok(subscriber) => {
                            let forward = tokio::spawn(forward(subscriber, sink, dropped.clone()));
                            subscriptions.insert(id, forward.abort_handle());
                        }
                        Err(e) => warn!(%subject, "NATS subscribe failed: {e}"),
                    }
                }
                Some(Control::Unsubscribe { id }) => {
                    if let Some(task) = subscriptions.remove(&id) {
                        task.abort();
                    }
                }
                None => break,
            },
            message = publish.recv() => match message {
                Some((subject, payload)) => {
                    if let Err(e) = client.publish(subject, payload).await {
                        dropped.add();
                        warn!("NATS publish failed: {e}");
                    }
                }
                None => break,
            },
        }
    }
    for task in subscriptions.into_values() {
        task.abort();
    }
}

async fn forward(
    mut subscriber: async_nats::Subscriber,
    sink: mpsc::Sender<BusMessage>,
    dropped: DropCounter,
) {
    while let Some(message) = subscriber.next().await {
        let message = BusMessage {
            subject: message.subject.to_string(),
            payload: message.payload,
        };
        if sink.try_send(message).is_err() {
            if sink.is_closed() {
                break;
            }
            dropped.add();
        }
    }
}

impl Bus for NatsBus {
    fn publish(&self, subject: &str, payload: Bytes) -> bool {
        if self
            .publish
            .try_send((subject.to_owned(), payload))
            .is_err()
        {
            self.dropped.add();
            return false;
        }
        true
    }

    fn subscribe(&self, subject: &str, sink: mpsc::Sender<BusMessage>) -> BusSubscription {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.control.send(Control::Subscribe {
            id,
            subject: subject.to_owned(),
            sink,
        });
        let control = self.control.clone();
        BusSubscription::new(move || {
            let _ = control.send(Control::Unsubscribe { id });
        })
    }

    fn state(&self) -> watch::Receiver<BusState> {
        self.state.clone()
    }

    fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    fn kind(&self) -> &'static str {
        "nats"
    }

    fn flush(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Wait for the worker to take every queued publication, give it a moment to hand
            // the last one to the client, then flush the client's buffer to the server.
            while self.publish.capacity() < self.publish.max_capacity() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Err(e) = self.client.flush().await {
                warn!("NATS flush on shutdown failed: {e}");
            }
        })
    }
}
