//! Joining: start the driver and wait for the first SESSION_ASSIGNED, turning a failure into one
//! clear error.

use std::time::Duration;

use videocall_client::native::{Client, TransportKind, Update};
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
    let native = args.native_config()?;
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
