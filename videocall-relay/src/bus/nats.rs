//! The NATS bus: one async-nats connection per node at a time.
//!
//! One worker task owns the connection's work queue so that a subscription is always on the
//! wire before any publication the node makes after asking for it (a joining session's
//! PARTICIPANT_JOINED must not overtake its node's subscription, or the roster replies are lost).
//! Publishing never waits: a full queue (NATS slow) drops and counts.
//!
//! Media is only worth sending now. A publication made while NATS is away is dropped and
//! counted, never sent late: async-nats keeps the commands given to a client while it
//! reconnects and sends them once it is back, so a client is never reused after its connection
//! breaks. The worker abandons it (its one reconnect attempt fails on a server that is away, and
//! what it queued goes with it) and connects a fresh client, then subscribes again.
//!
//! Publications are coalesced per meeting ([`super::coalesce`]): a NATS message carries the
//! packets a node sends to one meeting within about 2 ms (at most 64 KiB or 1024 packets), in
//! the [`crate::bus_batch`] format, and the receiving side splits it back into packets. A node
//! still accepts single-packet messages (nodes of earlier versions sent those).
//!
//! `url` may list several servers of one cluster, separated by commas: the client connects to
//! any that answers, and after losing it, to another.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::coalesce::{Coalescer, Ready};
use super::{Bus, BusMessage, BusState, BusSubscription, DropCounter};
use crate::bus_batch::{self as batch, BATCH_TOKEN};

/// How many publications may wait while NATS is slow.
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Publications the worker takes off its queue in one go before looking at its timers again.
const PUBLISH_BURST: usize = 256;
/// The wait before the second attempt to reach NATS after losing it; it doubles per failed
/// attempt up to [`RECONNECT_DELAY_MAX`] (the first attempt is immediate).
const RECONNECT_DELAY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between attempts: a server that comes back is found again within this
/// (meetings across nodes must resume within 2 s of NATS' return). An attempt on a server that
/// refuses connections costs next to nothing.
const RECONNECT_DELAY_MAX: Duration = Duration::from_millis(500);

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
    /// Flush the client's buffer to the server, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
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
}

impl NatsBus {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`, or several servers of one cluster
    /// separated by commas). With `wait_for_server` false the bus starts even if no server is
    /// reachable yet and keeps trying in the background.
    pub async fn connect(url: &str, wait_for_server: bool) -> Result<Self, NatsError> {
        let (state_tx, state) = watch::channel(BusState::Disconnected);
        let first = match connect_once(url).await {
            Ok(connection) => Some(connection),
            Err(source) if wait_for_server => {
                return Err(NatsError::Connect {
                    url: url.to_owned(),
                    source,
                });
            }
            Err(e) => {
                warn!("NATS at {url} not reachable yet ({e}); retrying in the background");
                None
            }
        };
        let (control, control_rx) = mpsc::unbounded_channel();
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let dropped = DropCounter::default();
        let worker = Worker {
            url: url.to_owned(),
            control: control_rx,
            publish: publish_rx,
            state: state_tx,
            dropped: dropped.clone(),
            subscriptions: HashMap::new(),
            coalescer: Coalescer::default(),
            ready: Vec::new(),
        };
        if first.is_some() {
            // Connected before returning, as callers that waited for the server expect.
            worker.state.send_replace(BusState::Connected);
        }
        tokio::spawn(worker.run(first));
        Ok(Self {
            control,
            publish,
            state,
            dropped,
            next_id: Default::default(),
        })
    }
}

/// One live client and the signal that its connection broke.
struct Connection {
    client: async_nats::Client,
    lost: mpsc::UnboundedReceiver<()>,
}

/// The servers a `NATS_URL` lists: comma-separated, blanks around them ignored.
fn server_list(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// One attempt to reach a server with a fresh client that will not replay: one try per listed
/// server, and after its connection breaks at most one pass over the list of its own, at once.
async fn connect_once(url: &str) -> Result<Connection, async_nats::ConnectError> {
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let servers = server_list(url);
    let client = async_nats::ConnectOptions::new()
        .no_echo()
        .name("videocall-relay")
        // Each server tried counts as one attempt. `Some(0)` would mean "forever"; one pass over
        // the list, immediately, is the least there is.
        .max_reconnects(Some(servers.len().max(1)))
        .reconnect_delay_callback(|_| Duration::ZERO)
        .event_callback(move |event| {
            let lost = lost_tx.clone();
            async move {
                match event {
                    async_nats::Event::Disconnected | async_nats::Event::Closed => {
                        let _ = lost.send(());
                    }
                    async_nats::Event::Connected => {}
                    other => warn!("NATS: {other}"),
                }
            }
        })
        .connect(servers.as_slice())
        .await?;
    Ok(Connection { client, lost })
}

struct Subscription {
    subject: String,
    sink: mpsc::Sender<BusMessage>,
    /// The task forwarding from the current connection, if any.
    forward: Option<AbortHandle>,
}

struct Worker {
    url: String,
    control: mpsc::UnboundedReceiver<Control>,
    publish: mpsc::Receiver<(String, Bytes)>,
    state: watch::Sender<BusState>,
    dropped: DropCounter,
    subscriptions: HashMap<u64, Subscription>,
    coalescer: Coalescer,
    /// Messages the coalescer made ready, reused between turns.
    ready: Vec<Ready>,
}

impl Worker {
    async fn run(mut self, mut first: Option<Connection>) {
        loop {
            let connection = match first.take() {
                Some(connection) => connection,
                None => match self.reconnect().await {
                    Some(connection) => connection,
                    None => break,
                },
            };
            info!("NATS connected");
            for (id, sub) in &mut self.subscriptions {
                sub.forward = subscribe(&connection.client, *id, sub, &self.dropped).await;
            }
            self.state.send_replace(BusState::Connected);
            let node_gone = self.serve(connection).await;
            self.state.send_replace(BusState::Disconnected);
            for sub in self.subscriptions.values_mut() {
                if let Some(task) = sub.forward.take() {
                    task.abort();
                }
            }
            if node_gone {
                break;
            }
            warn!("NATS disconnected; serving local sessions, dropping publications, reconnecting");
            // What waited here was meant for the moment it was published: drop it.
            for _ in 0..self.coalescer.discard() {
                self.dropped.add();
            }
            while self.publish.try_recv().is_ok() {
                self.dropped.add();
            }
        }
        for sub in self.subscriptions.into_values() {
            if let Some(task) = sub.forward {
                task.abort();
            }
        }
    }

    /// Carries out the node's requests on a live connection until it breaks (false) or the node
    /// drops the bus (true).
    async fn serve(&mut self, mut connection: Connection) -> bool {
        loop {
            let window = self.coalescer.poll_timeout();
            let window_closes = async {
                match window {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A broken connection first: nothing more may be handed to that client.
                // Then subscriptions: they were asked for before any publication still queued.
                // Then closed windows, so that a busy queue cannot hold a batch back.
                biased;
                _ = connection.lost.recv() => return false,
                op = self.control.recv() => match op {
                    Some(Control::Subscribe { id, subject, sink }) => {
                        let mut sub = Subscription { subject, sink, forward: None };
                        sub.forward = subscribe(&connection.client, id, &sub, &self.dropped).await;
                        self.subscriptions.insert(id, sub);
                    }
                    Some(Control::Unsubscribe { id }) => self.unsubscribe(id),
                    Some(Control::Flush(done)) => {
                        self.coalescer.drain(&mut self.ready);
                        self.send_ready(&connection.client).await;
                        if let Err(e) = connection.client.flush().await {
                            warn!("NATS flush failed: {e}");
                        }
                        let _ = done.send(());
                    }
                    None => return true,
                },
                () = window_closes => {
                    self.coalescer.handle_timeout(Instant::now(), &mut self.ready);
                    self.send_ready(&connection.client).await;
                }
                message = self.publish.recv() => {
                    let Some((subject, payload)) = message else { return true };
                    let now = Instant::now();
                    self.coalescer.handle_publish(now, &subject, payload, &mut self.ready);
                    // Take what else is queued in the same turn: one clock read, one wake-up.
                    for _ in 0..PUBLISH_BURST {
                        let Ok((subject, payload)) = self.publish.try_recv() else { break };
                        self.coalescer.handle_publish(now, &subject, payload, &mut self.ready);
                    }
                    self.send_ready(&connection.client).await;
                }
            }
        }
    }

    /// Hands what the coalescer made ready to the client.
    async fn send_ready(&mut self, client: &async_nats::Client) {
        for ready in self.ready.drain(..) {
            if let Err(e) = client.publish(ready.subject, ready.payload).await {
                for _ in 0..ready.packets {
                    self.dropped.add();
                }
                warn!("NATS publish failed: {e}");
            }
        }
    }

    /// Tries to reach the server until it answers (`None`: the node dropped the bus meanwhile),
    /// keeping the subscription list and dropping publications while it waits.
    async fn reconnect(&mut self) -> Option<Connection> {
        let mut delay = Duration::ZERO;
        loop {
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    op = self.control.recv() => match op {
                        Some(Control::Subscribe { id, subject, sink }) => {
                            let sub = Subscription { subject, sink, forward: None };
                            self.subscriptions.insert(id, sub);
                        }
                        Some(Control::Unsubscribe { id }) => self.unsubscribe(id),
                        // Cut off: nothing was kept to flush.
                        Some(Control::Flush(done)) => {
                            let _ = done.send(());
                        }
                        None => return None,
                    },
                    message = self.publish.recv() => match message {
                        Some(_) => self.dropped.add(),
                        None => return None,
                    },
                }
            }
            match connect_once(&self.url).await {
                Ok(connection) => return Some(connection),
                Err(e) => tracing::debug!("NATS still unreachable: {e}"),
            }
            delay = (delay * 2).clamp(RECONNECT_DELAY_FIRST, RECONNECT_DELAY_MAX);
        }
    }

    fn unsubscribe(&mut self, id: u64) {
        if let Some(task) = self.subscriptions.remove(&id).and_then(|s| s.forward) {
            task.abort();
        }
    }
}

/// Subscribes on `client` and starts forwarding; `None` if the client refused (the next
/// connection tries again).
async fn subscribe(
    client: &async_nats::Client,
    id: u64,
    sub: &Subscription,
    dropped: &DropCounter,
) -> Option<AbortHandle> {
    match client.subscribe(sub.subject.clone()).await {
        Ok(subscriber) => {
            let forward = tokio::spawn(forward(subscriber, sub.sink.clone(), dropped.clone()));
            Some(forward.abort_handle())
        }
        Err(e) => {
            warn!(subject = %sub.subject, id, "NATS subscribe failed: {e}");
            None
        }
    }
}

async fn forward(
    mut subscriber: async_nats::Subscriber,
    sink: mpsc::Sender<BusMessage>,
    dropped: DropCounter,
) {
    let mut malformed = 0u64;
    while let Some(message) = subscriber.next().await {
        let subject = message.subject.as_str();
        let Some(meeting) = subject
            .strip_suffix(BATCH_TOKEN)
            .and_then(|s| s.strip_suffix('.'))
        else {
            // A single packet (a node of an earlier version, or a subject outside meetings).
            let message = BusMessage {
                subject: subject.to_owned(),
                payload: message.payload,
            };
            if !deliver(&sink, message, &dropped) {
                break;
            }
            continue;
        };
        let packets = match batch::decode(&message.payload) {
            Ok(packets) => packets,
            Err(e) => {
                // The bus is not trusted more than a client: refuse, count, and say so rarely.
                dropped.add();
                malformed += 1;
                if malformed.is_power_of_two() {
                    warn!(%subject, malformed, "dropping a malformed batch from NATS: {e}");
                }
                continue;
            }
        };
        for (tail, payload) in packets {
            let message = BusMessage {
                subject: format!("{meeting}.{tail}"),
                payload,
            };
            if !deliver(&sink, message, &dropped) {
                return;
            }
        }
    }
}

/// Hands a message to the node without waiting (a full queue drops and counts); false once
/// the node is gone.
fn deliver(sink: &mpsc::Sender<BusMessage>, message: BusMessage, dropped: &DropCounter) -> bool {
    if sink.try_send(message).is_err() {
        if sink.is_closed() {
            return false;
        }
        dropped.add();
    }
    true
}

impl Bus for NatsBus {
    fn publish(&self, subject: &str, payload: Bytes) -> bool {
        // Cut off: the publication would only be sent late, if ever.
        let connected = *self.state.borrow() == BusState::Connected;
        if !connected
            || self
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
            // Wait for the worker to take every queued publication (it coalesces each before
            // taking the next command), then have it send its open batches and flush the client
            // to the server.
            while self.publish.capacity() < self.publish.max_capacity() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (done, flushed) = tokio::sync::oneshot::channel();
            if self.control.send(Control::Flush(done)).is_ok() {
                let _ = flushed.await;
            }
        })
    }
}
