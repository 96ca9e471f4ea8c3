//! `webtransport-server`: the WebTransport relay as its own process (scale-out deployments:
//! run several with `NATS_URL`). For a single node, `actix-api --webtransport` serves both.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use tracing::{info, warn};
use videocall_auth::MeetingGate;
use videocall_meetings::{Store, StoreConfig};
use videocall_relay::cli::RelayArgs;
use videocall_relay::node::NodeHandle;
use videocall_service::cert;
use webtransport_server::admission::Gatekeeper;
use webtransport_server::limits::{LimitArgs, NodeLimits};
use webtransport_server::{StreamLimits, WtArgs, WtMetrics, health};

/// videocall WebTransport relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    #[command(flatten)]
    webtransport: WtArgs,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// TCP address for /healthz, /metrics and the certificate hash.
    #[arg(long, env = "HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    health_listen: SocketAddr,
    /// The meeting database actix-api keeps (`postgres://…`): with it, a plain
    /// `/lobby/{user}/{meeting}` join is allowed only to meetings that are open, as on actix-api.
    /// Unset: every plain join is allowed (no meeting is protected here without --require-tokens).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With DATABASE_URL: a plain join to an unknown meeting creates it as an open meeting, as
    /// actix-api's flag of the same name (set both alike).
    #[arg(long, env = "OPEN_MEETINGS", default_value_t = true, action = clap::ArgAction::Set)]
    open_meetings: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `webtransport_server=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    videocall_service::init_logging(&config.log);
    let relay_config = config.relay.relay_config();
    let bus = config.relay.connect_bus().await?;
    info!(
        node_id = relay_config.node_id,
        bus = bus.kind(),
        "relay node starting"
    );
    let stream_limits = StreamLimits {
        max_frame_bytes: relay_config.max_frame_bytes,
        max_uni_streams: config.webtransport.wt_max_uni_streams,
    };
    let node_limits = NodeLimits::new(&config.limits);
    let gatekeeper = Arc::new(Gatekeeper::new(
        config.relay.token_key()?,
        meeting_gate(&config).await?,
    ));
    let shards = config.relay.relay_shards();
    let node = NodeHandle::spawn_sharded(relay_config, bus, shards)?;
    info!(shards, "relay shards started");
    let identity = cert::identity(&config.webtransport.tls).await?;
    let hash = cert::certificate_hash(&identity);
    info!("certificate SHA-256 {}", cert::hex(&hash));
    let metrics = Arc::new(WtMetrics::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);

    let health = tokio::spawn(health::serve(
        config.health_listen,
        node.clone(),
        metrics.clone(),
        node_limits.clone(),
        gatekeeper.clone(),
        hash,
        shutdown.clone(),
    ));
    let endpoint = webtransport_server::bind(
        identity,
        config.webtransport.webtransport_listen,
        stream_limits,
    )?;
    let server = tokio::spawn(webtransport_server::serve(
        endpoint,
        node.clone(),
        gatekeeper,
        stream_limits,
        node_limits,
        metrics,
        shutdown,
    ));
    println!(
        "webtransport-server: WebTransport on https://{}/lobby/{{user}}/{{meeting}}, health on http://{}/healthz",
        config.webtransport.webtransport_listen, config.health_listen
    );
    videocall_service::shutdown_signal().await;
    // Clients first move to other nodes (a rolling update); a second signal skips that.
    node.drain_before_stop(
        config.relay.drain_seconds(),
        videocall_service::shutdown_signal(),
    )
    .await;
    let drain = config.relay.drain_timeout();
    videocall_service::exit_after(drain);
    let deadline = tokio::time::Instant::now() + drain;
    info!("shutting down: closing sessions and publishing their leaves");
    if !node.shutdown(drain).await {
        tracing::warn!("the relay node did not finish its shutdown within {drain:?}");
    }
    let _ = stop.send(true);
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let _ = tokio::time::timeout(left.max(std::time::Duration::from_millis(500)), async {
        let _ = server.await;
        let _ = health.await;
    })
    .await;
    Ok(())
}

/// Who may join without a room token: nobody (--require-tokens), the meeting store's answer
/// (DATABASE_URL: open meetings only), else everyone. A wrong database stops the start with one
/// clear error.
async fn meeting_gate(config: &Config) -> anyhow::Result<Arc<dyn MeetingGate>> {
    if config.relay.require_tokens {
        return Ok(config.relay.meeting_gate());
    }
    match &config.database_url {
        Some(url) => {
            let store = Store::open(
                url,
                StoreConfig {
                    allow_open: config.open_meetings,
                    ..StoreConfig::default()
                },
            )
            .await?;
            Ok(Arc::new(store))
        }
        None => {
            warn!(
                "neither DATABASE_URL nor --require-tokens is set: plain /lobby/{{user}}/{{meeting}} \
                 joins are allowed to every meeting, also to meetings protected through the API"
            );
            Ok(config.relay.meeting_gate())
        }
    }
}
