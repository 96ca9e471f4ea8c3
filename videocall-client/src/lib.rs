//! The client core of videocall, shared by the CLI, the load bot and the browser.
//!
//! [`Session`] is a sans-IO state machine: it owns the protocol (join, heartbeats every second,
//! RTT probes, keyframe requests, reconnect with backoff, leave) and never touches a socket or a
//! clock. Time is a [`Duration`](std::time::Duration) since any fixed origin the driver picks
//! (`Instant::now() - start` natively, `performance.now()` in the browser), so it builds for
//! `wasm32-unknown-unknown`. The driver's loop:
//!
//! ```text
//! session.handle_start(now);
//! loop {
//!     while let Some(action) = session.poll_action() { /* Connect: open a transport; Close */ }
//!     while let Some(bytes) = session.poll_transmit() { /* write to the transport */ }
//!     while let Some(event) = session.poll_event() { /* media, peers, keyframe requests … */ }
//!     wait for: transport opened  -> session.handle_connected(now)
//!               bytes received    -> session.handle_packet(now, bytes)
//!               transport lost    -> session.handle_disconnected(now, reason)
//!               poll_timeout()    -> session.handle_timeout(now)
//! }
//! ```
//!
//! [`e2ee`] is the end-to-end encryption core (its own sans-IO state machine: keys in, key
//! packets out, frames sealed and opened). A session made with [`Session::with_e2ee`] runs it
//! itself: it exchanges the key packets, seals what it sends and opens what it receives, so
//! every driver (native, browser) gets the same encryption.
//!
//! [`chat`] holds chat history, dedupe and text rules; the session sends and receives chat,
//! raised hands and reactions ([`Command`], [`Event::Chat`]), sealing chat like media.
//!
//! [`quality`] is the sender's adaptive quality ladder (down fast on CONGESTION or a rising
//! round trip, up slowly), applied by each driver to its encoder.
//!
//! With the `native` feature, [`native::Client`] is that loop on tokio over WebTransport or
//! WebSocket.

pub mod chat;
pub mod e2ee;
#[cfg(feature = "native")]
pub mod http;
#[cfg(feature = "native")]
pub mod native;
pub mod quality;
pub mod reorder;
mod session;

mod transport_error;

pub use session::{
    Action, ClientConfig, Command, ConnectionState, Event, MAX_DIGEST_ENTRIES, MediaFrom,
    RECONNECT_BACKOFF, Session, SessionError, Subscription,
};
pub use transport_error::TransportError;
