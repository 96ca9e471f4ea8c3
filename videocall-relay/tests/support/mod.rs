//! Awaiting what a real node's session receives.

#![allow(dead_code, unused_imports, unreachable_pub)]

use std::time::Duration;

use prost::Message;
use videocall_relay::node::{Outbound, SessionHandle};
pub use videocall_testkit::PATIENCE;
pub use videocall_testkit::nats::NatsServer;
pub use videocall_testkit::packets::{audio, is_audio, is_joined};
use videocall_types::PacketWrapper;

/// Reads `session` until the relay closes it; returns why.
pub async fn closed(session: &mut SessionHandle) -> videocall_relay::CloseReason {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, session.recv()).await {
            Ok(Some(Outbound::Close(reason))) => return reason,
            Ok(Some(Outbound::Packet(_))) => {}
            Ok(None) => panic!("node stopped"),
            Err(_) => panic!("never closed"),
        }
    }
}

/// Awaits the first wrapper `session` receives that satisfies `want`, skipping others.
pub async fn recv_until(
    session: &mut SessionHandle,
    mut want: impl FnMut(&PacketWrapper) -> bool,
) -> PacketWrapper {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let next = tokio::time::timeout_at(deadline, session.recv())
            .await
            .expect("timed out waiting for a packet");
        match next {
            Some(Outbound::Packet(bytes)) => {
                session.transmitted(bytes.len()).await.unwrap();
                let wrapper = PacketWrapper::decode(bytes).expect("relay sends wrappers");
                if want(&wrapper) {
                    return wrapper;
                }
            }
            Some(Outbound::Close(reason)) => panic!("session closed: {reason:?}"),
            None => panic!("node stopped"),
        }
    }
}

/// Like [`recv_until`] but gives up (returning `None`) after `wait`.
pub async fn try_recv_until(
    session: &mut SessionHandle,
    wait: Duration,
    mut want: impl FnMut(&PacketWrapper) -> bool,
) -> Option<PacketWrapper> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, session.recv()).await {
            Err(_) => return None,
            Ok(Some(Outbound::Packet(bytes))) => {
                session.transmitted(bytes.len()).await.unwrap();
                let wrapper = PacketWrapper::decode(bytes).expect("relay sends wrappers");
                if want(&wrapper) {
                    return Some(wrapper);
                }
            }
            Ok(other) => panic!("session ended: {other:?}"),
        }
    }
}
