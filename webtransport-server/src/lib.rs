//! The WebTransport relay transport of videocall.
//!
//! Sessions connect to `https://host:port/lobby/{user_id}/{meeting_id}` (parsed by
//! [`videocall_types::lobby`]). Framing is that of the
//! original videocall-rs, so its clients keep working: each packet (one encoded
//! `PacketWrapper`) travels on its own unidirectional stream, read to its end; clients may also
//! send small packets as datagrams. All meeting logic is in `videocall-relay`; this crate only
//! moves bytes between QUIC and a [`NodeHandle`](videocall_relay::node::NodeHandle).

pub mod cert;
pub mod health;
mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};
use videocall_relay::node::NodeHandle;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig};

/// WebTransport flags, shared by the standalone server and the all-in-one node.
#[derive(Debug, Clone, clap::Args)]
pub struct WtArgs {
    /// UDP address for WebTransport. `[::]:PORT` binds dual-stack (IPv4 and IPv6), which
    /// browsers opening `https://localhost:PORT` need.
    #[arg(long, env = "WEBTRANSPORT_LISTEN", default_value = "[::]:4433")]
    pub webtransport_listen: SocketAddr,
    /// PEM certificate chain. Without `--cert`/`--key` a development certificate is generated
    /// (ECDSA P-256, valid `--dev-cert-days`), whose SHA-256 browsers accept through
    /// `serverCertificateHashes`.
    #[arg(long, env = "CERT_PATH", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, env = "KEY_PATH", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Validity of a generated development certificate, in days (browsers accept at most 14).
    #[arg(long, env = "DEV_CERT_DAYS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=14))]
    pub dev_cert_days: u32,
}

/// Counters of this transport, beside the relay's own.
#[derive(Debug, Default)]
pub struct WtMetrics {
    /// Sessions refused before the relay saw them (bad path or ids).
    pub refused: AtomicU64,
    /// Inbound streams discarded for exceeding the frame limit.
    pub oversize_streams: AtomicU64,
}

impl WtMetrics {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP videocall_wt_refused_total WebTransport sessions refused (bad path or ids).\n\
             # TYPE videocall_wt_refused_total counter\nvideocall_wt_refused_total {}\n\
             # HELP videocall_wt_oversize_streams_total Inbound streams over the frame limit.\n\
             # TYPE videocall_wt_oversize_streams_total counter\nvideocall_wt_oversize_streams_total {}",
            self.refused.load(Ordering::Relaxed),
            self.oversize_streams.load(Ordering::Relaxed)
        );
    }
}

/// Binds the WebTransport endpoint (UDP) on `listen`. Must run inside a tokio runtime.
pub fn bind(identity: Identity, listen: SocketAddr) -> anyhow::Result<Endpoint<Server>> {
    let builder = ServerConfig::builder();
    let builder = if listen.ip().is_unspecified() && listen.is_ipv6() {
        builder.with_bind_default(listen.port())
    } else {
        builder.with_bind_address(listen)
    };
    let config = builder
        .with_identity(identity)
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .max_idle_timeout(Some(Duration::from_secs(30)))?
        .build();
    let endpoint = Endpoint::server(config)
        .with_context(|| format!("cannot listen for WebTransport on {listen} (udp)"))?;
    info!("WebTransport listening on {listen} (udp)");
    Ok(endpoint)
}

/// Serves WebTransport sessions until `shutdown` turns true, then closes every session with
/// "server shutting down".
pub async fn serve(
    endpoint: Endpoint<Server>,
    node: NodeHandle,
    max_frame_bytes: usize,
    metrics: Arc<WtMetrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let node = node.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = session::run(incoming, node, max_frame_bytes, metrics, shutdown).await {
                warn!("WebTransport session ended: {e:#}");
            }
        });
    }
    // Give sessions a moment to send their close frames.
    endpoint.wait_idle().await;
    Ok(())
}

/// Logs of every videocall service: to stderr, filtered by `filter` (tracing `EnvFilter`
/// syntax), colours only on a terminal.
pub fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Ends the process with status 1 if a graceful stop is still running `limit` plus a second
/// from now: a stop signal must end a node whatever it is doing (the stop itself is bounded by
/// `limit`; this is the backstop).
pub fn exit_after(limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit + std::time::Duration::from_secs(1));
        eprintln!("stop did not finish within the drain limit of {limit:?}; exiting now");
        std::process::exit(1);
    });
}

/// Resolves on Ctrl-C or SIGTERM: how every videocall service is told to stop.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
