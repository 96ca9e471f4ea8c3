//! Test support shared by the crates' integration tests. Everything here is real: a real
//! `nats-server` process, the real service binaries, real sockets.

pub mod client;
pub mod nats;
pub mod packets;
pub mod postgres;
pub mod process;

use std::time::Duration;

/// How long any single expected event may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free TCP port")
        .port()
}

/// A UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("[::]:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}
