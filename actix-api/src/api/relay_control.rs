//! What the API tells the relays: someone was removed, asked to mute, or the meeting ended.

use videocall_relay::node::NodeHandle;
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

/// Logs each call and does nothing else: for an API served without a relay node (tests of the
/// API alone).
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

/// The relay node's side: each call becomes a host command of the node, which acts on its own
/// sessions and publishes it on the bus for every other node serving the meeting. The API's
/// handlers do not wait for it (the store already holds the decision); a stopped node is logged.
#[derive(Debug, Clone)]
pub struct NodeRelayControl {
    node: NodeHandle,
}

impl NodeRelayControl {
    /// Host commands go to `node`.
    pub fn new(node: NodeHandle) -> Self {
        Self { node }
    }

    fn run<F>(&self, what: &'static str, command: impl FnOnce(NodeHandle) -> F)
    where
        F: std::future::Future<Output = Result<(), videocall_relay::node::NodeError>> + 'static,
    {
        let future = command(self.node.clone());
        actix_web::rt::spawn(async move {
            if let Err(error) = future.await {
                tracing::warn!(%error, what, "relay control: the relay node did not take the command");
            }
        });
    }
}

impl RelayControl for NodeRelayControl {
    fn remove(&self, meeting: &MeetingId, user: &UserId) {
        let (meeting, user) = (meeting.clone(), user.clone());
        self.run("remove", move |node| async move {
            node.remove_participant(meeting, user).await
        });
    }

    fn ask_to_mute(&self, meeting: &MeetingId, user: &UserId) {
        let (meeting, user) = (meeting.clone(), user.clone());
        self.run("ask to mute", move |node| async move {
            node.ask_to_mute(meeting, user).await
        });
    }

    fn end(&self, meeting: &MeetingId) {
        let meeting = meeting.clone();
        self.run(
            "end",
            move |node| async move { node.end_meeting(meeting).await },
        );
    }
}
