//! What every videocall server process shares, so that `actix-api` and `webtransport-server`
//! start, log and stop the same way (moq-native plays this part for moq's binaries):
//!
//! - [`init_logging`]: tracing to stderr with an `EnvFilter`;
//! - [`shutdown_signal`] and [`exit_after`]: how a node is told to stop, and the backstop that
//!   ends it if a graceful stop overruns its limit;
//! - [`cert`]: the TLS identity of WebTransport, from PEM files or a generated development
//!   certificate that browsers pin by hash; `videocall-dev-cert` writes one into a directory.
//!
//! A binary's run loop: parse its config, [`init_logging`], start its servers, await
//! [`shutdown_signal`], arm [`exit_after`] with the drain limit, drain.

pub mod cert;
mod log;
mod signal;

pub use log::init_logging;
pub use signal::{exit_after, shutdown_signal};
