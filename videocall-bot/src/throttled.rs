//! A throttled subscriber: a WebSocket participant that reads its socket at a fixed byte rate
//! through a small receive buffer, like a viewer on a slow link. It sends nothing; the relay's
//! queue for it fills and the relay must drop its video without slowing anyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use videocall_types::lobby::LobbyPath;
use videocall_types::{MeetingId, UserId};

/// What the throttled subscribers received.
#[derive(Debug, Default)]
pub(crate) struct ThrottledTotals {
    pub(crate) joined: AtomicU64,
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// Kernel receive buffer of the throttled socket: small, so that back-pressure reaches the relay
/// within a second instead of after megabytes of loopback buffering.
const RECEIVE_BUFFER: u32 = 16 * 1024;

/// Joins `meeting` as `user` over WebSocket at `base` (`http://host:port`) and reads at most
/// `bytes_per_sec` until `until`.
pub(crate) async fn run(
    base: String,
    user: String,
    meeting: String,
    bytes_per_sec: u64,
    until: tokio::time::Instant,
    totals: Arc<ThrottledTotals>,
) -> anyhow::Result<()> {
    let authority = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned();
    let address = tokio::net::lookup_host(&authority)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{authority} resolves to nothing"))?;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    let stream = socket.connect(address).await?;
    let path = LobbyPath::open(UserId::new(user)?, MeetingId::new(meeting)?);
    let url = format!("ws://{authority}{path}");
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream).await?;
    totals.joined.fetch_add(1, Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let mut read = 0u64;
    loop {
        let next = tokio::select! {
            next = socket.next() => next,
            () = tokio::time::sleep_until(until) => break,
        };
        match next {
            Some(Ok(Message::Binary(bytes))) => {
                read += bytes.len() as u64;
                totals.packets.fetch_add(1, Ordering::Relaxed);
                totals
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
        // Pace reads: wait until the bytes read so far fit the rate.
        let due = start + Duration::from_secs_f64(read as f64 / bytes_per_sec.max(1) as f64);
        if due > tokio::time::Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = tokio::time::sleep_until(until) => break,
            }
        }
    }
    let _ = socket.close(None).await;
    Ok(())
}
