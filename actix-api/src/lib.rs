//! The HTTP side of videocall: the WebSocket relay transport (`/lobby?token=…`,
//! `/lobby/{user_id}/{meeting_id}`), `/healthz`, `/metrics`, the WebTransport certificate hash,
//! the meeting API (`/api/v1/`, [`api`]: login, meetings, waiting room, participants; stored by
//! `videocall-meetings`), and the built browser UI.
//!
//! Like the WebTransport server it is a thin adapter: each WebSocket is one session of a
//! [`NodeHandle`]; all meeting logic lives in `videocall-relay`.

pub mod api;
mod routes;
mod unfinished;
mod ws;
mod ws_out;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::watch;
use videocall_relay::node::NodeHandle;
use webtransport_server::admission::Gatekeeper;
use webtransport_server::limits::NodeLimits;

pub use routes::configure;

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The relay node sessions join.
    pub node: NodeHandle,
    /// Largest packet a client may send (the relay's `max_frame_bytes`).
    pub max_frame_bytes: usize,
    /// How often the server pings each WebSocket; a socket silent for three intervals is
    /// closed (dead TCP connections otherwise linger until the OS gives up).
    pub ping_interval: Duration,
    /// SHA-256 of the WebTransport certificate, when browsers should pin it.
    pub certificate_hash: Option<[u8; 32]>,
    /// UDP port where browsers reach WebTransport (same host as the page), if offered.
    pub webtransport_port: Option<u16>,
    /// The built browser app (index.html and assets), if served here.
    pub ui_dir: Option<PathBuf>,
    /// Turns true when the process is shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Transport counters.
    pub metrics: Arc<WsMetrics>,
    /// Extra Prometheus text to append (the in-process WebTransport server's counters).
    pub extra_metrics: Option<Arc<webtransport_server::WtMetrics>>,
    /// Which meetings are end-to-end encrypted.
    pub meetings: Arc<MeetingPolicy>,
    /// Connection and buffer limits, shared with the in-process WebTransport server.
    pub limits: Arc<NodeLimits>,
    /// The meeting API's counters, when it is served.
    pub api_metrics: Option<Arc<api::ApiMetrics>>,
    /// Who may join (room tokens, the meeting gate), shared with the in-process WebTransport
    /// server.
    pub gatekeeper: Arc<Gatekeeper>,
}

/// End-to-end encryption of meetings the store does not know (and of those created by an open
/// join): on for every meeting unless the node is configured otherwise.
#[derive(Debug, Clone)]
pub struct MeetingPolicy {
    /// E2EE for meetings not listed in `plaintext`.
    pub e2ee_default: bool,
    /// Meetings whose media travels in clear to the relay (e.g. for an original videocall-rs
    /// client, which cannot do E2EE v2).
    pub plaintext: HashSet<String>,
}

impl Default for MeetingPolicy {
    /// Every meeting encrypted.
    fn default() -> Self {
        Self {
            e2ee_default: true,
            plaintext: HashSet::new(),
        }
    }
}

impl MeetingPolicy {
    /// Whether `meeting`'s media is end-to-end encrypted.
    pub fn e2ee(&self, meeting: &str) -> bool {
        self.e2ee_default && !self.plaintext.contains(meeting)
    }
}

/// Counters of the WebSocket transport, beside the relay's own.
#[derive(Debug, Default)]
pub struct WsMetrics {
    /// Upgrades refused with HTTP 400 (bad ids).
    pub refused: AtomicU64,
    /// Connections closed for a WebSocket protocol error (e.g. a frame over the limit).
    pub protocol_errors: AtomicU64,
    /// Text messages received (the protocol is binary); discarded.
    pub text_messages: AtomicU64,
    /// Connections closed because the peer stopped answering pings.
    pub ping_timeouts: AtomicU64,
    /// Connections closed for a message (frame or fragments) over the message limit.
    pub oversize_messages: AtomicU64,
}
