//! What one node lets strangers hold, whatever the transport: connections (per node and per
//! client address) and bytes of inbound messages not yet complete (per node), with the
//! deadlines for a handshake and for an unfinished message.
//!
//! One [`NodeLimits`] serves every transport of a process (the all-in-one node shares it
//! between WebSocket and WebTransport), so a client address is counted once across both.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use videocall_relay::exposition::Exposition;

/// Default for `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for `--max-connections-per-ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;
/// Default for `--max-inbound-buffer-bytes`: bytes of unfinished inbound messages the whole
/// node holds. Honest clients hold a few KiB each (a frame is in flight for a round trip), so
/// this only binds under attack.
pub const DEFAULT_MAX_INBOUND_BUFFER_BYTES: usize = 256 * 1024 * 1024;
/// Default for `--inbound-share-bytes`: unfinished bytes every connection may hold whatever
/// the node's pool holds (three 20 KB video frames in flight; a 1 MB keyframe waits for the
/// pool like any large message).
pub const DEFAULT_INBOUND_SHARE_BYTES: usize = 64 * 1024;
/// Default for `--partial-message-timeout-ms`. A 1 MB keyframe needs 1.6 s at 5 Mbit/s; a
/// message that takes longer than this is someone holding memory, not sending media.
pub const DEFAULT_PARTIAL_MESSAGE_TIMEOUT_MS: u64 = 5_000;
/// Default for `--handshake-timeout-ms`.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

/// Connection and buffer limits, shared by every transport's binary.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Connections (WebSocket and WebTransport) this node holds at once; more are refused
    /// (WebSocket: HTTP 503; WebTransport: 429).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Connections from one IP address at once; more are refused with HTTP 429.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,
    /// Bytes of inbound messages not yet complete that the node holds beyond each
    /// connection's share (`--inbound-share-bytes`), all connections together; a message
    /// that would pass it is dropped (WebTransport: its stream is stopped; WebSocket: the
    /// connection is closed).
    #[arg(long, env = "MAX_INBOUND_BUFFER_BYTES", default_value_t = DEFAULT_MAX_INBOUND_BUFFER_BYTES)]
    pub max_inbound_buffer_bytes: usize,
    /// Bytes of unfinished inbound messages each connection may hold however full the node's
    /// buffer is, so that connections holding large messages cannot starve the others.
    #[arg(long, env = "INBOUND_SHARE_BYTES", default_value_t = DEFAULT_INBOUND_SHARE_BYTES)]
    pub inbound_share_bytes: usize,
    /// A message (WebSocket frame or fragmented message, WebTransport stream) must be complete
    /// this long after its first byte arrived, or it is dropped as above.
    #[arg(long, env = "PARTIAL_MESSAGE_TIMEOUT_MS", default_value_t = DEFAULT_PARTIAL_MESSAGE_TIMEOUT_MS)]
    pub partial_message_timeout_ms: u64,
    /// Time a new connection has to present its request (WebSocket: the HTTP request head;
    /// WebTransport: QUIC and HTTP/3 handshakes and the session request).
    #[arg(long, env = "HANDSHAKE_TIMEOUT_MS", default_value_t = DEFAULT_HANDSHAKE_TIMEOUT_MS)]
    pub handshake_timeout_ms: u64,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_inbound_buffer_bytes: DEFAULT_MAX_INBOUND_BUFFER_BYTES,
            inbound_share_bytes: DEFAULT_INBOUND_SHARE_BYTES,
            partial_message_timeout_ms: DEFAULT_PARTIAL_MESSAGE_TIMEOUT_MS,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
        }
    }
}

/// The limits of one node and the counters of their refusals.
#[derive(Debug)]
pub struct NodeLimits {
    /// Connections at once, per node and per address.
    pub connections: Arc<ConnectionLimiter>,
    /// Bytes of unfinished inbound messages, per node.
    pub inbound: InboundBudget,
    /// Deadline of an unfinished inbound message.
    pub partial_message_timeout: Duration,
    /// Deadline of a connection's handshake and request.
    pub handshake_timeout: Duration,
    /// WebSocket messages (frames or fragmented messages) dropped for missing
    /// [`Self::partial_message_timeout`].
    pub ws_partial_message_timeouts: AtomicU64,
    /// WebTransport streams dropped for missing [`Self::partial_message_timeout`].
    pub wt_partial_message_timeouts: AtomicU64,
    /// Connections dropped for missing [`Self::handshake_timeout`].
    pub handshake_timeouts: AtomicU64,
}

impl NodeLimits {
    /// Limits as configured.
    pub fn new(args: &LimitArgs) -> Arc<Self> {
        Arc::new(Self {
            connections: Arc::new(ConnectionLimiter::new(
                args.max_connections,
                args.max_connections_per_ip,
            )),
            inbound: InboundBudget::new(args.max_inbound_buffer_bytes, args.inbound_share_bytes),
            partial_message_timeout: Duration::from_millis(args.partial_message_timeout_ms.max(1)),
            handshake_timeout: Duration::from_millis(args.handshake_timeout_ms.max(1)),
            ws_partial_message_timeouts: AtomicU64::new(0),
            wt_partial_message_timeouts: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
        })
    }

    /// Appends the gauges and counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let (open, addresses) = self.connections.open();
        let c = &self.connections;
        let mut e = Exposition::new();
        e.gauge(
            "videocall_connections",
            "Connections held (WebSocket and WebTransport).",
            open as f64,
        );
        e.gauge(
            "videocall_connection_addresses",
            "Client addresses with a connection.",
            addresses as f64,
        );
        e.counters(
            "videocall_connections_refused_total",
            "Connections refused by a connection limit.",
            "reason",
            [
                ("node_full", c.refused_node_full.load(Ordering::Relaxed)),
                ("per_ip", c.refused_per_ip.load(Ordering::Relaxed)),
            ],
        );
        e.gauge(
            "videocall_inbound_buffer_bytes",
            "Bytes of unfinished inbound messages held.",
            self.inbound.used() as f64,
        );
        e.gauge(
            "videocall_inbound_buffer_pooled_bytes",
            "Bytes of unfinished inbound messages held beyond the connections' shares.",
            self.inbound.pooled() as f64,
        );
        e.counter(
            "videocall_inbound_buffer_full_total",
            "Inbound messages dropped because the node's inbound buffer was full.",
            self.inbound.refused.load(Ordering::Relaxed),
        );
        e.counters(
            "videocall_partial_message_timeouts_total",
            "Inbound messages dropped for not completing in time.",
            "transport",
            [
                (
                    "websocket",
                    self.ws_partial_message_timeouts.load(Ordering::Relaxed),
                ),
                (
                    "webtransport",
                    self.wt_partial_message_timeouts.load(Ordering::Relaxed),
                ),
            ],
        );
        e.counter(
            "videocall_handshake_timeouts_total",
            "Connections dropped for not completing their handshake in time.",
            self.handshake_timeouts.load(Ordering::Relaxed),
        );
        e.render(out);
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds `--max-connections`.
    NodeFull,
    /// The address holds `--max-connections-per-ip`.
    TooManyFromAddress,
}

impl Refusal {
    /// The reason, as told to the client.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NodeFull => "this node is full (too many connections); try again later",
            Refusal::TooManyFromAddress => "too many connections from your address",
        }
    }
}

/// Counts connections per node and per client address.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Open>,
    /// Refusals because the node was full.
    pub refused_node_full: AtomicU64,
    /// Refusals because the address had too many connections.
    pub refused_per_ip: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    // At most `max_total` entries: an address is removed with its last connection.
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionLimiter {
    /// A limiter for `max_total` connections, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            state: Mutex::new(Open::default()),
            refused_node_full: AtomicU64::new(0),
            refused_per_ip: AtomicU64::new(0),
        }
    }

    /// Counts a connection from `ip` if the limits allow it (and counts the refusal if not);
    /// the connection is counted until the permit drops.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut open = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            self.refused_node_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::NodeFull);
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            self.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::TooManyFromAddress);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionPermit {
            limiter: self.clone(),
            ip,
        })
    }

    /// Connections and distinct addresses held now.
    pub fn open(&self) -> (usize, usize) {
        let open = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (open.total, open.per_ip.len())
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.state.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }
}

/// One counted connection; dropping it releases the count.
#[derive(Debug)]
pub struct ConnectionPermit {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limiter.release(self.ip);
    }
}

/// Bytes of unfinished inbound messages held by the whole node.
///
/// Each connection's first `share` bytes are its own: a connection holding no more than that
/// is never refused by the node (an honest publisher holds one frame in flight, tens of KiB).
/// Bytes a connection holds beyond its share come from one node-wide pool of `cap` bytes, so
/// connections holding large unfinished messages compete with each other, not with the
/// meeting next to them. The node holds at most `cap` + connections × `share`.
///
/// Callers say what the connection held before each change; a connection's changes must be
/// serialised (one task or one thread per connection), which keeps the pool exact.
#[derive(Debug)]
pub struct InboundBudget {
    cap: usize,
    share: usize,
    /// Bytes beyond the connections' shares (≤ `cap`).
    pooled: AtomicUsize,
    /// All bytes held.
    used: AtomicUsize,
    /// Times a message was dropped because the pool was spent.
    pub refused: AtomicU64,
}

impl InboundBudget {
    /// A pool of `cap` bytes beyond `share` bytes per connection.
    pub fn new(cap: usize, share: usize) -> Self {
        Self {
            cap,
            share,
            pooled: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Bytes of a holding of `held` that come from the pool.
    fn beyond_share(&self, held: usize) -> usize {
        held.saturating_sub(self.share)
    }

    /// A connection holding `held` bytes takes `bytes` more, or a refusal is counted and
    /// nothing is taken.
    pub fn try_take(&self, held: usize, bytes: usize) -> bool {
        let Some(after) = held.checked_add(bytes) else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let pooled = self.beyond_share(after) - self.beyond_share(held);
        if pooled > 0 {
            let taken = self
                .pooled
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(pooled).filter(|&total| total <= self.cap)
                })
                .is_ok();
            if !taken {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        self.used.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// A connection holding `held` bytes gives `bytes` of them back.
    pub fn give_back(&self, held: usize, bytes: usize) {
        let bytes = bytes.min(held);
        let pooled = self.beyond_share(held) - self.beyond_share(held - bytes);
        saturating_sub(&self.pooled, pooled);
        saturating_sub(&self.used, bytes);
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes held beyond the connections' shares now.
    pub fn pooled(&self) -> usize {
        self.pooled.load(Ordering::Relaxed)
    }
}

fn saturating_sub(counter: &AtomicUsize, bytes: usize) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
        Some(used.saturating_sub(bytes))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_past_either_limit_is_refused_and_a_closed_one_frees_its_place() {
        let limiter = Arc::new(ConnectionLimiter::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.try_acquire(a).unwrap();
        // The same address over a dual-stack socket is the same client.
        let second = limiter
            .try_acquire("::ffff:10.0.0.1".parse().unwrap())
            .unwrap();
        assert_eq!(
            limiter.try_acquire(a).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        let third = limiter.try_acquire(b).unwrap();
        assert_eq!(limiter.try_acquire(b).unwrap_err(), Refusal::NodeFull);
        assert_eq!(limiter.open(), (3, 2));
        drop(first);
        let again = limiter.try_acquire(a).unwrap();
        drop((second, third, again));
        assert_eq!(limiter.open(), (0, 0));
        assert_eq!(limiter.refused_per_ip.load(Ordering::Relaxed), 1);
        assert_eq!(limiter.refused_node_full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_inbound_pool_never_passes_its_cap() {
        // No share: every byte comes from the pool.
        let budget = InboundBudget::new(100, 0);
        assert!(budget.try_take(0, 60));
        assert!(!budget.try_take(0, 41));
        assert!(budget.try_take(0, 40));
        assert!(!budget.try_take(40, 1));
        budget.give_back(60, 60);
        assert_eq!((budget.used(), budget.pooled()), (40, 40));
        assert!(!budget.try_take(40, usize::MAX));
        assert!(!budget.try_take(usize::MAX, 1));
        assert_eq!(budget.refused.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_connection_within_its_share_gets_through_when_large_holders_spent_the_pool() {
        let budget = InboundBudget::new(100, 10);
        // A large holder: its first 10 bytes are its share, the next 100 the whole pool.
        assert!(budget.try_take(0, 110));
        assert!(!budget.try_take(110, 1), "the pool is spent");
        assert!(
            !budget.try_take(0, 11),
            "another large message does not fit"
        );
        // Small holders still get their share, and only that.
        assert!(budget.try_take(0, 6));
        assert!(budget.try_take(6, 4));
        assert!(!budget.try_take(10, 1));
        assert_eq!((budget.used(), budget.pooled()), (120, 100));
        // Bytes given back leave the pool first (they were the last taken).
        budget.give_back(110, 50);
        assert_eq!((budget.used(), budget.pooled()), (70, 50));
        budget.give_back(60, 60);
        budget.give_back(10, 10);
        assert_eq!((budget.used(), budget.pooled()), (0, 0));
    }
}
