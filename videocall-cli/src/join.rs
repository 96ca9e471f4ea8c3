//! Joining: start the driver and wait for the first SESSION_ASSIGNED, turning a failure into one
//! clear error.

use std::time::Duration;

use videocall_auth::RoomClaims;
use videocall_client::e2ee::{Identity, KeyHolder, OsRng};
use videocall_client::http::{meeting_settings, served_certificate_hash};
use videocall_client::native::{Client, ServerVerification, Status, TransportKind, Update};
use videocall_client::{ClientConfig, Event};
use videocall_types::{MeetingId, SessionId};

use crate::args::{ConnectArgs, E2eeMode};

/// RSA modulus of the identity generated at start.
const RSA_BITS: usize = 2048;

/// Starts the client and waits until it is in the meeting. Before the first join a failed
/// attempt is fatal (a wrong address or certificate should not retry forever); afterwards the
/// session reconnects by itself.
pub async fn join(args: &ConnectArgs) -> anyhow::Result<(Client, SessionId, TransportKind)> {
    let (user, meeting) = args.identity()?;
    let mut native = args.native_config()?;
    let (encrypted, unknown_setting) = encrypt(args, &meeting).await?;
    if encrypted {
        let started = std::time::Instant::now();
        let identity =
            tokio::task::spawn_blocking(|| Identity::generate(&mut OsRng, RSA_BITS)).await??;
        println!(
            "E2EE on: RSA-{RSA_BITS} identity generated in {} ms",
            started.elapsed().as_millis()
        );
        native.e2ee = Some(identity);
    } else {
        println!("E2EE off: media of meeting {meeting} travels in clear to the relay");
    }
    if native.uses_webtransport()
        && native.verification == ServerVerification::NativeRoots
        && let Some(hash) = served_certificate_hash(args.http_url()).await
    {
        native.verification = ServerVerification::CertHash(hash);
    }
    let mut config = ClientConfig::new(user, meeting.clone());
    config.token = args.token.clone();
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
                if let Some(why) = unknown_setting {
                    eprintln!(
                        "videocall-cli: warning: the node did not state the meeting's E2EE \
                         setting ({why}); encrypting"
                    );
                }
                return Ok((client, session, kind));
            }
            Update::Session(Event::Ended(why)) => {
                anyhow::bail!("cannot join meeting {meeting}: {why}");
            }
            Update::Session(Event::Disconnected { reason, .. }) => {
                client.handle().leave().await;
                if failures.is_empty() {
                    failures.push(reason);
                }
                anyhow::bail!("cannot join meeting {}: {}", meeting, failures.join("; "));
            }
            _ => {}
        }
    }
    anyhow::bail!("the client stopped before joining")
}

/// Whether to encrypt, from `--e2ee` and the meeting's setting; a mode that contradicts the
/// meeting is one clear error. With `--token` the setting is the token's signed `e2ee` claim
/// (issue #16: the relay verifies that very token, so a token altered in transit to say "clear"
/// is refused); only a token-less join asks the node's unauthenticated
/// `GET /api/v1/meetings/{id}` (see docs/SECURITY.md, "Downgrade").
/// Also returns why the setting is unknown when `auto` had to guess.
async fn encrypt(
    args: &ConnectArgs,
    meeting: &MeetingId,
) -> anyhow::Result<(bool, Option<String>)> {
    // A token of the original backend carries no setting: asked like a token-less join.
    let signed = match &args.token {
        Some(token) => RoomClaims::peek(token)
            .map(|claims| claims.e2ee)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let setting = match signed {
        Ok(Some(e2ee)) => Ok(e2ee),
        Err(why) => Err(why),
        Ok(None) => meeting_settings(args.http_url(), meeting)
            .await
            .map(|s| s.e2ee),
    };
    let encrypt = match (args.e2ee, setting) {
        (E2eeMode::Auto, Ok(e2ee)) => e2ee,
        // Said once joined: an unreachable node is reported by the join itself.
        (E2eeMode::Auto, Err(why)) => return Ok((true, Some(why))),
        (E2eeMode::On, Ok(e2ee)) if !e2ee => anyhow::bail!(
            "meeting {meeting} is set to travel in clear (not end-to-end encrypted); join it \
             with --e2ee auto or off"
        ),
        (E2eeMode::Off, Ok(e2ee)) if e2ee => anyhow::bail!(
            "meeting {meeting} is end-to-end encrypted: --e2ee off cannot join it (use --e2ee \
             auto or on)"
        ),
        (mode, _) => mode == E2eeMode::On,
    };
    Ok((encrypt, None))
}

/// The E2EE part of a status line.
pub fn e2ee_status(status: &Status) -> String {
    match status.safety_code {
        Some(code) => format!(
            "E2EE code {code}, {} undecryptable, {} in clear refused",
            status.e2ee_dropped, status.mismatch_drops
        ),
        None if status.mismatch_drops > 0 => {
            format!(
                "E2EE off, {} dropped (encrypted peers)",
                status.mismatch_drops
            )
        }
        None => "E2EE off".to_owned(),
    }
}

/// Says what an E2EE event means for the user, on stdout.
pub fn report_e2ee(event: &Event) {
    match event {
        Event::SafetyCode(code) => println!("safety code {code}"),
        Event::E2eeMismatch {
            user,
            peer_encrypts: true,
            ..
        } => println!("cannot decrypt {user}: it encrypts and we do not (--e2ee)"),
        Event::E2eeMismatch { user, .. } => {
            println!("refusing media of {user}: it is not end-to-end encrypted")
        }
        _ => {}
    }
}

/// Prints, under each `safety code` line, every key holder the code commits to (ourselves
/// first): `key holder <user> <fingerprint>`, the fingerprint being the first 16 bytes of
/// SHA-256 over the holder's (user id, RSA key, Ed25519 key), as the browser lists them.
pub fn report_key_holders(holders: &[KeyHolder]) {
    for holder in holders {
        println!("key holder {} {}", holder.user, holder.fingerprint);
    }
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
