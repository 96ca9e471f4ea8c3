//! `actix-api`: HTTP + WebSocket relay; with `--webtransport`, the all-in-one single node that
//! also serves WebTransport on the same relay node (what `make run` starts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_api::{AppState, MeetingPolicy, WsMetrics, api, configure};
use actix_web::{App, HttpServer};
use anyhow::Context;
use clap::Parser;
use tracing::{info, warn};
use videocall_auth::TokenKey;
use videocall_meetings::{Store, StoreConfig};
use videocall_relay::cli::RelayArgs;
use videocall_relay::node::NodeHandle;
use videocall_service::cert;
use webtransport_server::admission::Gatekeeper;
use webtransport_server::limits::{LimitArgs, NodeLimits};
use webtransport_server::{StreamLimits, WtArgs, WtMetrics};

/// videocall HTTP API and WebSocket relay.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    /// TCP address for HTTP and WebSocket.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Also serve WebTransport from this process, on the same relay node (single node).
    #[arg(long, env = "WEBTRANSPORT")]
    webtransport: bool,
    #[command(flatten)]
    wt: WtArgs,
    #[command(flatten)]
    relay: RelayArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// UDP port of a separate WebTransport server that pages on this host should use (with
    /// `--webtransport` the in-process server's port is used).
    #[arg(long, env = "PUBLIC_WEBTRANSPORT_PORT")]
    public_webtransport_port: Option<u16>,
    /// Directory of the built browser UI (index.html and assets); not served when absent.
    #[arg(long, env = "UI_DIR")]
    ui_dir: Option<PathBuf>,
    /// Seconds between WebSocket pings; a socket silent for three intervals is closed.
    #[arg(long, env = "PING_INTERVAL_SECS", default_value_t = 10)]
    ping_interval_secs: u64,
    /// Kernel send buffer of each TCP connection, in KiB (0: the kernel's autotuning, which on
    /// Linux grows to megabytes). Small keeps a slow receiver's backlog in the relay's queue,
    /// which skips to keyframes and tells the sender (CONGESTION), instead of seconds of stale
    /// video in the kernel.
    #[arg(long, env = "TCP_SEND_BUFFER_KIB", default_value_t = 256)]
    tcp_send_buffer_kib: usize,
    /// HTTP worker threads.
    #[arg(long, env = "HTTP_WORKERS", default_value_t = 2)]
    workers: usize,
    /// End-to-end encryption of meetings: `on` (every meeting but those of
    /// --plaintext-meeting) or `off` (none; media travels in clear to the relay).
    #[arg(long, env = "E2EE", value_enum, default_value_t = Toggle::On)]
    e2ee: Toggle,
    /// A meeting whose media travels in clear (repeatable; env: comma-separated).
    #[arg(
        long = "plaintext-meeting",
        env = "PLAINTEXT_MEETINGS",
        value_delimiter = ','
    )]
    plaintext_meetings: Vec<String>,
    #[command(flatten)]
    meetings: MeetingArgs,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `actix_api=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

/// The meeting store and API (`/api/v1/`).
#[derive(Debug, clap::Args)]
struct MeetingArgs {
    /// Directory of the embedded meeting database (SQLite), used when DATABASE_URL is unset;
    /// created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Meeting database: `postgres://user:password@host/db` (several nodes), or
    /// `sqlite://path?mode=rwc`. Unset: an SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A plain join to an unknown meeting creates it as an open meeting (anyone with the URL
    /// joins). `false`: meetings are created through the API and joined with room tokens.
    #[arg(long, env = "OPEN_MEETINGS", default_value_t = true, action = clap::ArgAction::Set)]
    open_meetings: bool,
    /// How long a room token from a join is valid, in seconds.
    #[arg(long, env = "ROOM_TOKEN_TTL_SECS", default_value_t = 3600)]
    room_token_ttl_secs: u64,
    /// OAuth2/OIDC issuer URL (its /.well-known/openid-configuration is read at start-up);
    /// with the three below, enables /api/v1/login/oauth. Unset: guest login only.
    #[arg(long, env = "OAUTH_ISSUER")]
    oauth_issuer: Option<String>,
    /// Client id at the identity provider.
    #[arg(long, env = "OAUTH_CLIENT_ID")]
    oauth_client_id: Option<String>,
    /// Client secret at the identity provider.
    #[arg(long, env = "OAUTH_CLIENT_SECRET", hide_env_values = true)]
    oauth_client_secret: Option<String>,
    /// Where the provider sends the browser back: https://<host>/api/v1/login/callback.
    #[arg(long, env = "OAUTH_REDIRECT_URL")]
    oauth_redirect_url: Option<String>,
}

/// How long a login lasts.
const LOGIN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Toggle {
    /// On.
    On,
    /// Off.
    Off,
}

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    videocall_service::init_logging(&config.log);
    if let Some(dir) = &config.ui_dir
        && !dir.join("index.html").is_file()
    {
        anyhow::bail!("UI directory {} has no index.html", dir.display());
    }

    // WebTransport and the bus run on their own tokio runtime; actix's workers only move
    // WebSocket bytes. One worker thread: a second mostly added cross-thread wake-ups (64
    // meetings of 4×4: relay 57 → 50 % of a core; 60×60 over WebTransport 67 → 60 %). The relay
    // core runs there too with `--relay-shards 1`; with more, each shard on a thread of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay")
        .enable_all()
        .build()?;
    let relay_config = config.relay.relay_config();
    let max_frame_bytes = relay_config.max_frame_bytes;
    let node_id = relay_config.node_id;
    let shards = config.relay.relay_shards();
    // One set of limits for both transports: an address is counted once across them.
    let limits = NodeLimits::new(&config.limits);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let policy = Arc::new(MeetingPolicy {
        e2ee_default: config.e2ee == Toggle::On,
        plaintext: config.plaintext_meetings.iter().cloned().collect(),
    });
    // Before anything listens: a wrong database stops the start with one clear error.
    let mut api = runtime.block_on(meeting_api(
        &config.meetings,
        config.relay.jwt_secret.as_deref(),
        policy.clone(),
    ))?;
    // One gatekeeper for both transports: one set of refusal counters. It verifies room tokens
    // with the key the API signs them with, and asks the meeting store about token-less joins
    // (unless --require-tokens refuses them all).
    let gate: Arc<dyn videocall_auth::MeetingGate> = if config.relay.require_tokens {
        config.relay.meeting_gate()
    } else {
        Arc::new(api.store.clone())
    };
    let gatekeeper = Arc::new(Gatekeeper::new(Some(api.tokens.clone()), gate));
    let (node, bus_kind) = runtime.block_on(async {
        let bus = config.relay.connect_bus().await?;
        let kind = bus.kind();
        let node = NodeHandle::spawn_sharded(relay_config, bus, shards)
            .context("cannot start the relay shards")?;
        anyhow::Ok((node, kind))
    })?;
    // The API's remove / ask-to-mute / end reach the sessions through this node (and the bus).
    api.relay = Arc::new(api::NodeRelayControl::new(node.clone()));
    info!(node_id, bus = bus_kind, shards, "relay node started");

    let mut certificate_hash = None;
    let mut wt_metrics = None;
    let mut wt_task = None;
    if config.webtransport {
        let identity = runtime.block_on(cert::identity(&config.wt.tls))?;
        let hash = cert::certificate_hash(&identity);
        info!("WebTransport certificate SHA-256 {}", cert::hex(&hash));
        certificate_hash = Some(hash);
        let metrics = Arc::new(WtMetrics::default());
        wt_metrics = Some(metrics.clone());
        let stream_limits = StreamLimits {
            max_frame_bytes,
            max_uni_streams: config.wt.wt_max_uni_streams,
        };
        let endpoint = runtime.block_on(async {
            webtransport_server::bind(identity, config.wt.webtransport_listen, stream_limits)
        })?;
        wt_task = Some(runtime.spawn(webtransport_server::serve(
            endpoint,
            node.clone(),
            gatekeeper.clone(),
            stream_limits,
            limits.clone(),
            metrics,
            shutdown.clone(),
        )));
    } else if let Some(cert_path) = &config.wt.tls.cert {
        // A separate webtransport-server uses this certificate: let pages pin it.
        certificate_hash = Some(runtime.block_on(cert::certificate_file_hash(cert_path))?);
    }

    let drain = config.relay.drain_timeout();
    let drain_seconds = config.relay.drain_seconds();
    let stopping_node = node.clone();
    let state = AppState {
        node,
        max_frame_bytes,
        ping_interval: Duration::from_secs(config.ping_interval_secs.max(1)),
        certificate_hash,
        webtransport_port: if config.webtransport {
            Some(config.wt.webtransport_listen.port())
        } else {
            config.public_webtransport_port
        },
        ui_dir: config.ui_dir.clone(),
        shutdown,
        metrics: Arc::new(WsMetrics::default()),
        extra_metrics: wt_metrics,
        meetings: policy,
        limits: limits.clone(),
        api_metrics: Some(api.metrics.clone()),
        gatekeeper,
    };
    let listen = config.listen;
    let send_buffer = config.tcp_send_buffer_kib * 1024;
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .configure(api::configure(api.clone()))
                .configure(configure(state.clone()))
        })
        .workers(config.workers.max(1))
        .disable_signals()
        .shutdown_timeout(2)
        // A client has this long to send its request head (the WebSocket handshake).
        .client_request_timeout(limits.handshake_timeout)
        .on_connect(move |connection, _| {
            // Real-time media: never let Nagle hold a small packet back, nor the kernel queue
            // seconds of video for a slow receiver.
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
                if send_buffer > 0 {
                    let _ = socket2::SockRef::from(tcp).set_send_buffer_size(send_buffer);
                }
            }
        })
        .bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?
        .run();
        let handle = server.handle();
        let server = actix_web::rt::spawn(server);
        let host = match listen.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            ip => ip.to_string(),
        };
        println!("videocall is running:");
        if config.ui_dir.is_some() {
            println!(
                "  open      http://{host}:{}/meeting/<your-name>/<meeting-id>",
                listen.port()
            );
        }
        println!(
            "  websocket ws://{host}:{}/lobby/<user>/<meeting>",
            listen.port()
        );
        if config.webtransport {
            println!(
                "  webtransport https://{host}:{}/lobby/<user>/<meeting>",
                config.wt.webtransport_listen.port()
            );
        }
        println!(
            "  health    http://{host}:{}/healthz   metrics http://{host}:{}/metrics",
            listen.port(),
            listen.port()
        );
        println!("Ctrl-C stops.");

        videocall_service::shutdown_signal().await;
        // Clients first move to other nodes (a rolling update); a second signal skips that.
        stopping_node
            .drain_before_stop(drain_seconds, videocall_service::shutdown_signal())
            .await;
        // Everything below is bounded by `drain`; the backstop ends the process regardless.
        videocall_service::exit_after(drain);
        let deadline = tokio::time::Instant::now() + drain;
        info!("shutting down: closing sessions and publishing their leaves");
        if !stopping_node.shutdown(drain).await {
            warn!("the relay node did not finish its shutdown within {drain:?}");
        }
        let _ = stop.send(true);
        let stopping = async {
            handle.stop(true).await;
            let _ = server.await;
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if tokio::time::timeout(left.max(Duration::from_millis(500)), stopping)
            .await
            .is_err()
        {
            info!("connections still open at the drain limit; exiting anyway");
        }
        anyhow::Ok(())
    })?;
    if let Some(task) = wt_task {
        let _ =
            runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), task).await });
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    info!("stopped");
    Ok(())
}

/// Opens the meeting store (running its migrations) and sets up the API's keys.
async fn meeting_api(
    args: &MeetingArgs,
    jwt_secret: Option<&str>,
    policy: Arc<MeetingPolicy>,
) -> anyhow::Result<api::Api> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => Store::sqlite_url(&args.data_dir),
    };
    let store = Store::open(
        &url,
        StoreConfig {
            allow_open: args.open_meetings,
            ..StoreConfig::default()
        },
    )
    .await?;
    let secret = match jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            warn!(
                "JWT_SECRET is not set: using a random secret for this process; room tokens and \
                 logins will not survive a restart, and other nodes cannot verify them"
            );
            let mut secret = vec![0u8; 32];
            getrandom::getrandom(&mut secret).context("no OS random source for JWT_SECRET")?;
            secret
        }
    };
    let tokens = TokenKey::new(&secret).context("JWT_SECRET")?;
    let oauth = match (
        &args.oauth_issuer,
        &args.oauth_client_id,
        &args.oauth_client_secret,
        &args.oauth_redirect_url,
    ) {
        (None, None, None, None) => None,
        (Some(issuer), Some(client_id), Some(client_secret), Some(redirect_url)) => {
            let config = api::OAuthConfig {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                redirect_url: redirect_url.clone(),
            };
            let oauth = api::OAuth::discover(config, &secret)?;
            info!(issuer = %issuer, "identity provider login enabled");
            Some(Arc::new(oauth))
        }
        _ => anyhow::bail!(
            "OAUTH_ISSUER, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET and OAUTH_REDIRECT_URL go together: \
             set all four or none"
        ),
    };
    Ok(api::Api {
        store,
        tokens,
        sessions: api::SessionKey::derive(&secret),
        relay: Arc::new(api::LoggingRelayControl),
        token_ttl: Duration::from_secs(args.room_token_ttl_secs.max(1)),
        session_ttl: LOGIN_TTL,
        policy,
        oauth,
        metrics: Arc::default(),
    })
}
