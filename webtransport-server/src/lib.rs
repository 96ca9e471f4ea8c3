//! The WebTransport relay transport of videocall.
//!
//! Sessions connect to `https://host:port/lobby/{user_id}/{meeting_id}` (parsed by
//! [`videocall_types::lobby`]). Framing is that of the
//! original videocall-rs, so its clients keep working: each packet (one encoded
//! `PacketWrapper`) travels on its own unidirectional stream, read to its end; clients may also
//! send small packets as datagrams. All meeting logic is in `videocall-relay`; this crate only
//! moves bytes between QUIC and a [`NodeHandle`](videocall_relay::node::NodeHandle).
//!
//! What a client can make the server hold is bounded ([`limits`], [`transport_config`]):
//! connections per node and per address, concurrent inbound streams, bytes of unfinished
//! streams per connection and per node, and the time a stream or a handshake may take.

pub mod admission;
pub mod health;
pub mod limits;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};
use videocall_relay::exposition::Exposition;
use videocall_relay::node::NodeHandle;
use videocall_service::cert::CertArgs;
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::quinn::{AckFrequencyConfig, VarInt};
use wtransport::{Endpoint, Identity, ServerConfig};

use crate::admission::Gatekeeper;
use crate::limits::NodeLimits;

/// Default for `--wt-max-uni-streams`: the relay's own outbound side keeps as many streams in
/// flight; a client sending one packet per stream (≈ 80 packets/s of video, audio and
/// heartbeats) needs fewer than 64 unless its round trip passes 800 ms.
pub const DEFAULT_MAX_UNI_STREAMS: u32 = 64;
/// Unidirectional streams HTTP/3 itself opens (control, QPACK encoder and decoder), allowed on
/// top of `--wt-max-uni-streams`.
const HTTP3_UNI_STREAMS: u32 = 3;
/// Bidirectional streams: the session's CONNECT request, and one more that is accepted and
/// refused (the relay uses none), so that a client's stray stream does not sit unread.
const MAX_BIDI_STREAMS: u32 = 2;
/// Room beyond one largest frame, per connection, for the packets in flight beside it (audio,
/// heartbeats, a WebTransport stream header each): both the QUIC connection window and the
/// bytes of unfinished streams the server buffers per connection are `max frame + this`.
pub const CONNECTION_SLACK_BYTES: usize = 1024 * 1024;
/// Room beyond one largest frame in one stream's QUIC window (its WebTransport header).
const STREAM_HEADER_BYTES: usize = 64;
/// Datagrams QUIC holds for the server before dropping new ones (the server reads them as they
/// come; a datagram is at most one QUIC packet).
const DATAGRAM_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;
/// Keep-alive and idle timeout of the QUIC connection. Keep-alives keep a connection, not a
/// session: the relay closes a session that sends no packet for its idle timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
const QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// ACK frequency (draft-ietf-quic-ack-frequency, which quinn implements and announces): the
/// relay asks each client to acknowledge every 10th ack-eliciting packet instead of every 2nd,
/// and at the latest [`MAX_ACK_DELAY`] after one arrived. A relay sends far more than it
/// receives, and without this it reads and decrypts about one ACK per two packets it sends.
/// Loss detection is unchanged (packet and time thresholds; a gap is acknowledged at once), and
/// a peer without the extension ignores the request.
pub const ACK_ELICITING_THRESHOLD: u32 = 9;
/// The longest a peer may hold an ACK when asked for sparse ACKs. A sender whose congestion
/// window holds fewer packets than the threshold waits for this delayed ACK: quinn's initial
/// window is 8 full packets and stays there while a connection is application-limited (a
/// relay's usual state). With quinn's default (25 ms, many round trips on a fast path) the
/// 25×25 bench's p99 reached 0.6 s in one run of three; 5 ms bounds that wait.
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(5);

/// WebTransport flags, shared by the standalone server and the all-in-one node.
#[derive(Debug, Clone, clap::Args)]
pub struct WtArgs {
    /// UDP address for WebTransport. `[::]:PORT` binds dual-stack (IPv4 and IPv6), which
    /// browsers opening `https://localhost:PORT` need.
    #[arg(long, env = "WEBTRANSPORT_LISTEN", default_value = "[::]:4433")]
    pub webtransport_listen: SocketAddr,
    /// The TLS certificate (`--cert`/`--key`, or a generated development one).
    #[command(flatten)]
    pub tls: CertArgs,
    /// Inbound unidirectional streams one client may have open at once (each carries one
    /// packet); further ones wait for QUIC stream credit.
    #[arg(long, env = "WT_MAX_UNI_STREAMS", default_value_t = DEFAULT_MAX_UNI_STREAMS, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub wt_max_uni_streams: u32,
}

/// What the server lets one connection hold, from the relay's largest frame.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Largest packet (the relay's `max_frame_bytes`): a longer stream is stopped.
    pub max_frame_bytes: usize,
    /// Inbound unidirectional streams open at once.
    pub max_uni_streams: u32,
}

impl StreamLimits {
    /// Bytes of unfinished inbound streams the server buffers for one connection.
    pub fn connection_buffer_bytes(&self) -> usize {
        self.max_frame_bytes.saturating_add(CONNECTION_SLACK_BYTES)
    }
}

/// The QUIC transport settings that bound one connection: stream counts, flow-control windows
/// sized from the largest frame, the datagram buffer, keep-alive and idle timeout; and what
/// makes it cheap to run: sparse acknowledgements ([`ACK_ELICITING_THRESHOLD`]) and streams
/// sent in the order they were written (no round-robin between the one-packet streams of
/// clients of the original, which would delay every packet to interleave them).
pub fn transport_config(limits: StreamLimits) -> QuicTransportConfig {
    let window = |bytes: usize| VarInt::from_u64(bytes as u64).unwrap_or(VarInt::MAX);
    let mut ack_frequency = AckFrequencyConfig::default();
    ack_frequency
        .ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD))
        .max_ack_delay(Some(MAX_ACK_DELAY));
    let mut config = QuicTransportConfig::default();
    config
        .ack_frequency_config(Some(ack_frequency))
        .send_fairness(false)
        .max_concurrent_uni_streams(VarInt::from_u32(
            limits.max_uni_streams.saturating_add(HTTP3_UNI_STREAMS),
        ))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS))
        .stream_receive_window(window(limits.max_frame_bytes + STREAM_HEADER_BYTES))
        .receive_window(window(limits.connection_buffer_bytes()))
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER_BYTES))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(
            QUIC_IDLE_TIMEOUT
                .try_into()
                .expect("30 s is a valid QUIC idle timeout"),
        ));
    config
}

/// Counters of this transport, beside the relay's own.
#[derive(Debug, Default)]
pub struct WtMetrics {
    /// Sessions refused before the relay saw them (bad path or ids).
    pub refused: AtomicU64,
    /// Inbound streams discarded for exceeding the frame limit.
    pub oversize_streams: AtomicU64,
    /// Inbound streams stopped because the connection's buffer of unfinished streams was full.
    pub connection_buffer_full: AtomicU64,
    /// Bidirectional streams a client opened (the relay uses none); refused.
    pub bidi_refused: AtomicU64,
}

impl WtMetrics {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut e = Exposition::new();
        for (name, help, value) in [
            (
                "wt_refused_total",
                "WebTransport sessions refused (bad path or ids).",
                &self.refused,
            ),
            (
                "wt_oversize_streams_total",
                "Inbound streams over the frame limit.",
                &self.oversize_streams,
            ),
            (
                "wt_connection_buffer_full_total",
                "Inbound streams stopped because their connection's buffer of unfinished streams was full.",
                &self.connection_buffer_full,
            ),
            (
                "wt_bidi_refused_total",
                "Bidirectional streams opened by clients and refused.",
                &self.bidi_refused,
            ),
        ] {
            e.counter(
                &format!("videocall_{name}"),
                help,
                value.load(Ordering::Relaxed),
            );
        }
        e.render(out);
    }
}

/// Binds the WebTransport endpoint (UDP) on `listen`, with the QUIC settings of `limits`.
/// Must run inside a tokio runtime.
pub fn bind(
    identity: Identity,
    listen: SocketAddr,
    limits: StreamLimits,
) -> anyhow::Result<Endpoint<Server>> {
    let builder = ServerConfig::builder();
    let builder = if listen.ip().is_unspecified() && listen.is_ipv6() {
        builder.with_bind_default(listen.port())
    } else {
        builder.with_bind_address(listen)
    };
    let config = builder
        .with_custom_transport(identity, transport_config(limits))
        .build();
    let endpoint = Endpoint::server(config)
        .with_context(|| format!("cannot listen for WebTransport on {listen} (udp)"))?;
    info!("WebTransport listening on {listen} (udp)");
    Ok(endpoint)
}

/// Serves WebTransport sessions, admitted by `gatekeeper`, until `shutdown` turns true, then closes every session with
/// "server shutting down".
pub async fn serve(
    endpoint: Endpoint<Server>,
    node: NodeHandle,
    gatekeeper: Arc<Gatekeeper>,
    limits: StreamLimits,
    node_limits: Arc<NodeLimits>,
    metrics: Arc<WtMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let session = session::Session {
            node: node.clone(),
            gatekeeper: gatekeeper.clone(),
            limits,
            node_limits: node_limits.clone(),
            metrics: metrics.clone(),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = session.run(incoming, shutdown).await {
                warn!("WebTransport session ended: {e:#}");
            }
        });
    }
    // Give sessions a moment to send their close frames.
    endpoint.wait_idle().await;
    Ok(())
}
