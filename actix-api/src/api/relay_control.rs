//! What the API tells the relays: someone was removed, asked to mute, or the meeting ended.

use videocall_types::{MeetingId, UserId};

/// The relays' side of a host's decision. The API holds an `Arc<dyn RelayControl>` and calls it
/// after the store has recorded the change; the relay node's implementation closes the removed
/// user's sessions, sends the mute request, and closes every session of an ended meeting (on
/// every node, over the bus).
pub trait RelayControl: Send + Sync + std::fmt::Debug {
    /// `user` was removed from `meeting`: close their sessions.
    fn remove(&self, meeting: &MeetingId, user: &UserId);
    /// A host asks `user` in `meeting` to mute their microphone.
    fn ask_to_mute(&self, meeting: &MeetingId, user: &UserId);
    /// `meeting` ended: close every session in it.
    fn end(&self, meeting: &MeetingId);
}

/// Logs each call and does nothing else. A stand-in until the relay node's implementation
/// (on the `NodeHandle`) is merged, which replaces it in `main.rs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingRelayControl;

impl RelayControl for LoggingRelayControl {
    fn remove(&self, meeting: &MeetingId, user: &UserId) {
        tracing::info!(%meeting, %user, "relay control: remove (logged only)");
    }

    fn ask_to_mute(&self, meeting: &MeetingId, user: &UserId) {
        tracing::info!(%meeting, %user, "relay control: ask to mute (logged only)");
    }

    fn end(&self, meeting: &MeetingId) {
        tracing::info!(%meeting, "relay control: end meeting (logged only)");
    }
}
