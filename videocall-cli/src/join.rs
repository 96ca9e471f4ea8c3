//! Joining: start the driver and wait for the first SESSION_ASSIGNED, turning a failure into one
//! clear error.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videocall_client::native::{Client, ServerVerification, TransportKind, Update};
use videocall_client::{ClientConfig, Event};
use videocall_types::{MeetingId, SessionId, UserId};

use crate::args::ConnectArgs;

/// Starts the client and waits until it is in the meeting. Before the first join a failed
/// attempt is fatal (a wrong address or certificate should not retry forever); afterwards the
/// session reconnects by itself.
pub async fn join(args: &ConnectArgs) -> anyhow::Result<(Client, SessionId, TransportKind)> {
    let user = UserId::new(args.user_id.clone())
        .map_err(|e| anyhow::anyhow!("bad --user-id {:?}: {e}", args.user_id))?;
    let meeting = MeetingId::new(args.meeting_id.clone())
        .map_err(|e| anyhow::anyhow!("bad --meeting-id {:?}: {e}", args.meeting_id))?;
    let mut native = args.native_config()?;
    if native.webtransport_url.is_some()
        && native.verification == ServerVerification::NativeRoots
        && let Some(hash) = served_certificate_hash(&args.websocket_url).await
    {
        native.verification = ServerVerification::CertHash(hash);
    }
    let mut config = ClientConfig::new(user, meeting);
    config.connect_timeout = Duration::from_secs(8);
    let mut client = Client::start(config, native);
    let mut failures: Vec<String> = Vec::new();
    let mut transport = None;
    while let Some(update) = client.next_update().await {
        match update {
            Update::Connected(kind) => transport = Some(kind),
            Update::TransportFailed {
                transport, error, ..
            } => failures.push(format!("{transport}: {error}")),
            Update::Session(Event::Joined { session }) => {
                let kind = transport.unwrap_or(TransportKind::WebSocket);
                if !failures.is_empty() {
                    eprintln!(
                        "videocall-cli: warning: {} (using {kind})",
                        failures.join("; ")
                    );
                }
                return Ok((client, session, kind));
            }
            Update::Session(Event::Disconnected { reason, .. }) => {
                client.handle().leave().await;
                if failures.is_empty() {
                    failures.push(reason);
                }
                anyhow::bail!(
                    "cannot join meeting {}: {}",
                    args.meeting_id,
                    failures.join("; ")
                );
            }
            _ => {}
        }
    }
    anyhow::bail!("the client stopped before joining")
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler works in a tokio runtime");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Milliseconds since the Unix epoch: the timestamp media carries, so that a receiver on the
/// same clock can measure latency.
pub fn unix_millis() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// The WebTransport certificate hash a node serves at `/api/v1/webtransport/certificate_hash`
/// on its plain-HTTP address, as the browser UI gets it. Trusting it is as safe as the plain
/// WebSocket fallback on the same address (no more); `--cert-hash` pins it instead.
async fn served_certificate_hash(http_base: &str) -> Option<[u8; 32]> {
    let authority = http_base.strip_prefix("http://")?.trim_end_matches('/');
    let host = authority.split(':').next().unwrap_or(authority);
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let request = format!(
            "GET /api/v1/webtransport/certificate_hash HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream
            .take(64 * 1024)
            .read_to_end(&mut response)
            .await
            .ok()?;
        let response = String::from_utf8_lossy(&response);
        if !response.starts_with("HTTP/1.1 200") {
            return None;
        }
        let hex = response.split("\"hex\":\"").nth(1)?.split('"').next()?;
        crate::args::parse_hash(hex).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .ok()
        .flatten()
}
