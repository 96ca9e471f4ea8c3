//! A minimal HTTP/1.1 endpoint for the standalone WebTransport server: `GET /healthz`
//! (200 only while the bus is connected), `GET /metrics` (Prometheus text) and
//! `GET /api/v1/webtransport/certificate_hash`. One request per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::info;
use videocall_relay::bus::BusState;
use videocall_relay::node::NodeHandle;

use crate::WtMetrics;
use crate::admission::Gatekeeper;
use crate::limits::NodeLimits;

/// Serves until `shutdown` turns true.
pub async fn serve(
    listen: SocketAddr,
    node: NodeHandle,
    metrics: Arc<WtMetrics>,
    limits: Arc<NodeLimits>,
    gatekeeper: Arc<Gatekeeper>,
    certificate_hash: [u8; 32],
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    info!("health and metrics on http://{listen}");
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        let (node, metrics, limits) = (node.clone(), metrics.clone(), limits.clone());
        let gatekeeper = gatekeeper.clone();
        tokio::spawn(async move {
            // A client that never finishes its request is dropped after the handshake timeout.
            let deadline = limits.handshake_timeout;
            let answered = answer(
                stream,
                &node,
                (&metrics, &limits, &gatekeeper),
                certificate_hash,
            );
            let _ = tokio::time::timeout(deadline, answered).await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    node: &NodeHandle,
    (metrics, limits, gatekeeper): (&WtMetrics, &NodeLimits, &Gatekeeper),
    certificate_hash: [u8; 32],
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read the request head (bounded); only the request line matters.
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/healthz" => {
            if !node.responsive() {
                let waited = node.since_last_answer().as_millis();
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("relay core not responding (last answer {waited} ms ago)\n"),
                )
            } else if *node.bus_state().borrow() == BusState::Connected {
                ("200 OK", "text/plain", "ok\n".to_owned())
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "bus disconnected\n".to_owned(),
                )
            }
        }
        "/metrics" => match node.render_metrics().await {
            Ok(mut text) => {
                metrics.render(&mut text);
                limits.render(&mut text);
                gatekeeper.render(&mut text);
                ("200 OK", "text/plain; version=0.0.4", text)
            }
            Err(e) => ("503 Service Unavailable", "text/plain", format!("{e}\n")),
        },
        "/api/v1/webtransport/certificate_hash" => (
            "200 OK",
            "application/json",
            certificate_hash_json(&certificate_hash),
        ),
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// `{"algorithm":"sha-256","value":[..32 bytes..],"hex":"…"}`: `value` goes straight into
/// `serverCertificateHashes` as a `Uint8Array`.
pub fn certificate_hash_json(hash: &[u8; 32]) -> String {
    let bytes: Vec<String> = hash.iter().map(u8::to_string).collect();
    format!(
        "{{\"algorithm\":\"sha-256\",\"value\":[{}],\"hex\":\"{}\"}}",
        bytes.join(","),
        videocall_service::cert::hex(hash)
    )
}
