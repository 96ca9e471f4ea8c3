//! A session's handles: the transport's end of one session on its meeting's shard.

use bytes::Bytes;
use tokio::sync::mpsc;
use videocall_types::SessionId;

use super::{Command, NodeError, Outbound};

/// One session on a node. Dropping it leaves the meeting.
#[derive(Debug)]
pub struct SessionHandle {
    id: SessionId,
    /// The command queue of the shard serving its meeting.
    commands: mpsc::Sender<Command>,
    outbound: mpsc::UnboundedReceiver<Outbound>,
}

impl SessionHandle {
    pub(super) fn new(
        id: SessionId,
        commands: mpsc::Sender<Command>,
        outbound: mpsc::UnboundedReceiver<Outbound>,
    ) -> Self {
        Self {
            id,
            commands,
            outbound,
        }
    }

    /// Its id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// A cloneable sender for the task that reads the socket.
    pub fn sender(&self) -> SessionSender {
        SessionSender {
            id: self.id,
            commands: self.commands.clone(),
        }
    }

    /// Hands one packet read from the socket to the relay. Waits only when the node is
    /// saturated with commands.
    pub async fn send(&self, data: Bytes) -> Result<(), NodeError> {
        self.sender().send(data).await
    }

    /// The next thing to write, or `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.outbound.recv().await
    }

    /// Waits for the next thing to write, then takes everything else already waiting (up to
    /// `max` in all) into `batch`, so the transport can write them together. Returns false once
    /// the node has stopped.
    pub async fn recv_batch(&mut self, batch: &mut Vec<Outbound>, max: usize) -> bool {
        if self.outbound.recv_many(batch, max.max(1)).await == 0 {
            return false;
        }
        true
    }

    /// Reports `bytes` written to the socket, freeing that much of the session's queue.
    pub async fn transmitted(&self, bytes: usize) -> Result<(), NodeError> {
        self.commands
            .send(Command::Transmitted {
                session: self.id,
                bytes,
            })
            .await
            .map_err(|_| NodeError::Stopped)
    }
}

/// The inbound half of a session: hands packets read from its socket to the node.
#[derive(Debug, Clone)]
pub struct SessionSender {
    id: SessionId,
    commands: mpsc::Sender<Command>,
}

impl SessionSender {
    /// Hands one packet read from the socket to the relay. Waits only when the node is
    /// saturated with commands.
    pub async fn send(&self, data: Bytes) -> Result<(), NodeError> {
        self.commands
            .send(Command::Inbound {
                session: self.id,
                data,
            })
            .await
            .map_err(|_| NodeError::Stopped)
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        let leave = Command::Leave { session: self.id };
        if let Err(mpsc::error::TrySendError::Full(leave)) = self.commands.try_send(leave) {
            // Never lose a leave: the meeting would keep a ghost until the idle timeout.
            let commands = self.commands.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = commands.send(leave).await;
                });
            }
        }
    }
}
