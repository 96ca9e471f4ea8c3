//! The sans-IO relay core of videocall: meetings, sessions, fan-out, subscriptions, limits and
//! the congestion policy, with no sockets, no async runtime and no clock of its own.
//!
//! A [`Relay`] is one relay node. Its driver (the WebSocket or WebTransport service, or the
//! [`node`] runtime behind the `runtime` feature) feeds it input and carries out its output:
//!
//! ```text
//! loop {
//!     match next_event {
//!         session connects    => relay.handle_admit(now, join)?,
//!         host action         => relay.handle_remove / handle_ask_to_mute / handle_end_meeting,
//!         bytes from session  => relay.handle_inbound(now, session, bytes)?,
//!         socket wrote n      => relay.handle_transmitted(session, n),
//!         session disconnects => relay.handle_leave(now, session),
//!         bus message         => relay.handle_bus(now, &subject, payload),
//!         timer fires         => relay.handle_timeout(now),
//!         node stops (SIGTERM) => relay.handle_drain(now) (then wait for relay.drained()),
//!                                relay.handle_shutdown(now),
//!     }
//!     while let Some(output) = relay.poll_output() {
//!         // Transmit -> session socket, Publish -> bus, Subscribe/Unsubscribe -> bus,
//!         // Close -> close that socket
//!     }
//!     timer = relay.poll_timeout();
//! }
//! ```
//!
//! Every inbound packet is stamped with its sender's identity, offered to every other local
//! session of its meeting (each with a bounded queue: under pressure video skips to the next
//! keyframe, audio and control stay) and published on the bus subject
//! `room.<meeting>.<session>` for the other nodes, which hold one subscription per meeting.

pub mod bus_batch;
mod classify;
mod config;
mod error;
pub mod exposition;
mod limit;
mod metrics;
mod queue;
mod relay;
mod subject;
mod subscription;

#[cfg(feature = "runtime")]
pub mod bus;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod node;

pub use config::{
    CONGESTION_PER_SEC, KEYFRAME_FORWARD_INTERVAL, KEYFRAME_REQUESTS_PER_SEC, NOTICES_PER_SEC,
    RelayConfig, max_subscription_bytes,
};
pub use error::{InboundError, JoinError};
pub use metrics::{DropReason, Metrics};
pub use relay::{
    CloseReason, DRAINING_MESSAGE, Grants, Join, MAX_DISPLAY_NAME_BYTES, MAX_REMOVED_PER_MEETING,
    Output, PRESENCE_DIGEST_CHUNK, PRESENCE_TIMEOUT, Proof, Relay, SessionInfo,
};
pub use subject::meeting_subject;
