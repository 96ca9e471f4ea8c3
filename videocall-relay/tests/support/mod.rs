//! Helpers for tests that run real nodes: awaiting packets, and a real `nats-server`.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_relay::node::{Outbound, SessionHandle};
use videocall_types::{MediaPacket, MediaType, MeetingPacket, PacketType, PacketWrapper};

/// How long any single expected event may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

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

pub fn audio(tag: &str) -> Bytes {
    let media = MediaPacket {
        media_type: MediaType::Audio as i32,
        data: Bytes::copy_from_slice(tag.as_bytes()),
        frame_type: "key".into(),
        ..Default::default()
    };
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: Bytes::from_static(b"forged"),
        data: media.encode_to_vec().into(),
        session_id: 1,
    }
    .encode_to_vec()
    .into()
}

/// True for an audio packet carrying `tag`.
pub fn is_audio(wrapper: &PacketWrapper, tag: &str) -> bool {
    wrapper.packet_type == PacketType::Media as i32
        && MediaPacket::decode(wrapper.data.clone())
            .is_ok_and(|m| m.media_type == MediaType::Audio as i32 && m.data == tag.as_bytes())
}

/// True for a PARTICIPANT_JOINED naming `user`.
pub fn is_joined(wrapper: &PacketWrapper, user: &str) -> bool {
    wrapper.packet_type == PacketType::Meeting as i32
        && MeetingPacket::decode(wrapper.data.clone()).is_ok_and(|e| {
            e.event_type == videocall_types::MeetingEventType::ParticipantJoined as i32
                && e.target_user_id == user.as_bytes()
        })
}

/// A `nats-server` of the test's own on a free port, stopped on drop.
pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (`make test` installs it: apt-get install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
