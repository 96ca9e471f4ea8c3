//! The command line: one clap struct per subcommand; every flag also reads an env var.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use videocall_auth::RoomClaims;
use videocall_client::native::{NativeConfig, RelayUrls, ServerVerification};
use videocall_types::{MeetingId, UserId};

/// videocall from the command line.
#[derive(Debug, Parser)]
#[command(name = "videocall-cli", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join a meeting and publish H.264 video from a camera or the test pattern, and Opus audio
    /// from a WAV file or a test tone.
    Stream(StreamArgs),
    /// Join a meeting and record it: per participant `<user>.y4m` (decoded video), `<user>.wav`
    /// (audio) and `<user>.webm` (video and audio); with --mix, `meeting.webm` of everyone.
    Receive(ReceiveArgs),
    /// Join a meeting and chat: each line of stdin is sent (`/hand`, `/lower`, `/react 👍`,
    /// `/lower-hand USER` as host), messages received are printed as `<user>: <text>`.
    Chat(ChatArgs),
    /// What this machine offers (cameras, formats, resolutions).
    Info(InfoArgs),
    /// Meetings through the meeting API: log in, create, join (a room token), the waiting
    /// room, admit, end. Prints `key=value` lines a shell can `eval`.
    Meeting(MeetingArgs),
}

/// `meeting`: where the API is and who we are there.
#[derive(Debug, Clone, Args)]
pub struct MeetingArgs {
    /// The node's HTTP address, where `/api/v1/` is.
    #[arg(
        long,
        env = "VIDEOCALL_API_URL",
        default_value = "http://localhost:8080",
        global = true
    )]
    pub api_url: String,
    /// The login (`session=` printed by `meeting login` or `meeting create`); without it each
    /// command logs in as a new guest named --name.
    #[arg(long, env = "VIDEOCALL_SESSION", global = true)]
    pub session: Option<String>,
    /// Display name of the guest login (and in the meeting).
    #[arg(
        long,
        env = "VIDEOCALL_NAME",
        default_value = "videocall-cli",
        global = true
    )]
    pub name: String,
    /// What to do.
    #[command(subcommand)]
    pub action: MeetingAction,
}

/// The `meeting` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum MeetingAction {
    /// Log in as a guest: prints `session=` and `user_id=`.
    Login,
    /// Create a protected meeting we host and join it: prints `session=`, `user_id=`,
    /// `meeting_id=` and the host's room `token=`.
    Create {
        /// Meeting id (random when absent).
        #[arg(long)]
        id: Option<String>,
        /// Joiners wait until a host admits them.
        #[arg(long)]
        waiting_room: bool,
    },
    /// Ask to join: prints `session=`, `user_id=`, then `status=admitted` and `token=`, or
    /// `status=waiting` (ask again with the same --session once admitted).
    Join {
        /// The meeting.
        #[arg(long, env = "VIDEOCALL_MEETING_ID")]
        meeting_id: String,
    },
    /// Those waiting (hosts): one `waiting=<user id>` line each.
    Waiting {
        /// The meeting.
        #[arg(long, env = "VIDEOCALL_MEETING_ID")]
        meeting_id: String,
    },
    /// Admit a waiting user, or everyone (hosts): one `admitted=<user id>` line each.
    Admit {
        /// The meeting.
        #[arg(long, env = "VIDEOCALL_MEETING_ID")]
        meeting_id: String,
        /// The user to admit.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        user: Option<String>,
        /// Admit everyone waiting while there is room.
        #[arg(long)]
        all: bool,
    },
    /// End the meeting for everyone (hosts): prints `ended=<meeting id>`.
    End {
        /// The meeting.
        #[arg(long, env = "VIDEOCALL_MEETING_ID")]
        meeting_id: String,
    },
}

/// Transport to try first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// WebTransport, falling back to WebSocket at --websocket-url.
    Webtransport,
    /// WebSocket only.
    Websocket,
}

/// Pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum FrameFormat {
    /// 4:2:0, luma plane then interleaved chroma.
    Nv12,
    /// 4:2:2 packed.
    Yuyv,
    /// Motion JPEG.
    Mjpeg,
}

/// Where and as whom to join.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Our user id in the meeting (with --token: the token's, which this may only repeat).
    #[arg(long, env = "VIDEOCALL_USER_ID", required_unless_present = "token")]
    pub user_id: Option<String>,
    /// The meeting to join (with --token: the token's).
    #[arg(long, env = "VIDEOCALL_MEETING_ID", required_unless_present = "token")]
    pub meeting_id: Option<String>,
    /// A room token (JWT) from the meeting API (`meeting join`/`create` print it): joins a
    /// protected meeting by `/lobby?token=…`, as the user and meeting the token names.
    #[arg(long, env = "VIDEOCALL_TOKEN", hide_env_values = true, value_parser = parse_token)]
    pub token: Option<String>,
    /// Server URL for --transport (default: the local single node, https://localhost:4433 for
    /// WebTransport, http://localhost:8080 for WebSocket). Repeatable (env: comma-separated):
    /// nodes of one deployment, tried in turn on joining and when the node in use goes away.
    #[arg(long, env = "VIDEOCALL_URL", value_delimiter = ',')]
    pub url: Vec<String>,
    /// WebSocket URL WebTransport falls back to. Repeatable (env: comma-separated): the n-th is
    /// the fallback of the n-th --url. The first is where the certificate hash and the
    /// meeting's E2EE setting are asked.
    #[arg(
        long,
        env = "VIDEOCALL_WEBSOCKET_URL",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    pub websocket_url: Vec<String>,
    /// Transport to use.
    #[arg(long, env = "VIDEOCALL_TRANSPORT", value_enum, default_value_t = Transport::Webtransport)]
    pub transport: Transport,
    /// Trust the WebTransport server whose certificate has this SHA-256 (64 hex digits, as
    /// served at /api/v1/webtransport/certificate_hash). Without it (and without --insecure)
    /// the hash is fetched from that endpoint on --websocket-url when it is plain http (as the
    /// browser UI does), else the system's certificate authorities verify the server.
    #[arg(long, env = "VIDEOCALL_CERT_HASH")]
    pub cert_hash: Option<String>,
    /// Do not verify the WebTransport server at all (development only).
    #[arg(long, env = "VIDEOCALL_INSECURE")]
    pub insecure: bool,
    /// End-to-end encryption: `auto` follows the meeting's setting (asked on --websocket-url;
    /// on when the node does not say), `on` refuses a meeting in clear, `off` refuses an
    /// encrypted one.
    #[arg(long, env = "VIDEOCALL_E2EE", value_enum, default_value_t = E2eeMode::Auto)]
    pub e2ee: E2eeMode,
}

/// A room token: a JWT, base64url parts separated by dots (so it goes into a URL as it is).
fn parse_token(text: &str) -> Result<String, String> {
    let valid = text.split('.').count() == 3
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("a room token is a JWT: three base64url parts separated by dots".into())
    }
}

/// `--e2ee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum E2eeMode {
    /// As the meeting is set (encrypted unless the node says otherwise).
    Auto,
    /// Always encrypt.
    On,
    /// Never encrypt.
    Off,
}

impl ConnectArgs {
    /// Who joins which meeting: the token's user and meeting (which --user-id and
    /// --meeting-id, when given, must agree with), else those two flags.
    pub fn identity(&self) -> anyhow::Result<(UserId, MeetingId)> {
        let (user, meeting) = match &self.token {
            Some(token) => {
                let claims =
                    RoomClaims::peek(token).map_err(|e| anyhow::anyhow!("bad --token: {e}"))?;
                for (flag, given, named) in [
                    ("--user-id", &self.user_id, &claims.sub),
                    ("--meeting-id", &self.meeting_id, &claims.room),
                ] {
                    if given.as_ref().is_some_and(|g| g != named) {
                        anyhow::bail!("{flag} {given:?} is not the token's {named:?}");
                    }
                }
                (claims.sub, claims.room)
            }
            None => (
                self.user_id.clone().unwrap_or_default(),
                self.meeting_id.clone().unwrap_or_default(),
            ),
        };
        let user =
            UserId::new(user.clone()).map_err(|e| anyhow::anyhow!("bad user id {user:?}: {e}"))?;
        let meeting = MeetingId::new(meeting.clone())
            .map_err(|e| anyhow::anyhow!("bad meeting id {meeting:?}: {e}"))?;
        Ok((user, meeting))
    }

    /// The driver configuration these flags describe.
    pub fn native_config(&self) -> anyhow::Result<NativeConfig> {
        let verification = match (&self.cert_hash, self.insecure) {
            (Some(_), true) => anyhow::bail!("--cert-hash and --insecure exclude each other"),
            (Some(hex), false) => ServerVerification::CertHash(parse_hash(hex)?),
            (None, true) => ServerVerification::Insecure,
            (None, false) => ServerVerification::NativeRoots,
        };
        let relays = match self.transport {
            Transport::Webtransport => {
                let urls = if self.url.is_empty() {
                    vec!["https://localhost:4433".to_owned()]
                } else {
                    self.url.clone()
                };
                let count = urls.len().max(self.websocket_url.len());
                (0..count)
                    .map(|i| RelayUrls {
                        webtransport_url: urls.get(i).cloned(),
                        websocket_url: self.websocket_url.get(i).cloned(),
                    })
                    .collect()
            }
            Transport::Websocket => self
                .websocket_urls()
                .iter()
                .map(|url| RelayUrls {
                    webtransport_url: None,
                    websocket_url: Some(url.clone()),
                })
                .collect(),
        };
        let mut config = NativeConfig::with_relays(relays);
        config.verification = verification;
        Ok(config)
    }

    /// The WebSocket (HTTP) URLs of the nodes: --url with --transport websocket, else
    /// --websocket-url.
    fn websocket_urls(&self) -> &[String] {
        match self.transport {
            Transport::Websocket if !self.url.is_empty() => &self.url,
            _ => &self.websocket_url,
        }
    }

    /// The first node's HTTP URL: where the meeting's E2EE setting and the WebTransport
    /// certificate hash are asked.
    pub fn http_url(&self) -> &str {
        self.websocket_urls()
            .first()
            .map_or("http://localhost:8080", String::as_str)
    }
}

/// 64 hex digits (colons and spaces allowed between) as a SHA-256.
pub fn parse_hash(hex: &str) -> anyhow::Result<[u8; 32]> {
    videocall_client::http::parse_hash(hex).ok_or_else(|| {
        anyhow::anyhow!("--cert-hash must be 64 hex digits (a SHA-256), got {hex:?}")
    })
}

fn parse_resolution(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let w = w.parse().map_err(|_| format!("bad width in {s:?}"))?;
    let h = h.parse().map_err(|_| format!("bad height in {s:?}"))?;
    crate::pattern::check_size(w, h).map_err(|e| e.to_string())?;
    Ok((w, h))
}

/// `stream`.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Publish the synthetic test pattern instead of a camera.
    #[arg(long, env = "VIDEOCALL_TEST_PATTERN")]
    pub test_pattern: bool,
    /// Picture size, WIDTHxHEIGHT.
    #[arg(long, env = "VIDEOCALL_RESOLUTION", default_value = "1280x720", value_parser = parse_resolution)]
    pub resolution: (usize, usize),
    /// Frames per second.
    #[arg(long, env = "VIDEOCALL_FPS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Target bitrate.
    #[arg(long, env = "VIDEOCALL_BITRATE_KBPS", default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=50_000))]
    pub bitrate_kbps: u32,
    /// Frames between keyframes (0: only the first and those receivers ask for).
    #[arg(long, env = "VIDEOCALL_KEYFRAME_INTERVAL", default_value_t = 150)]
    pub keyframe_interval: u32,
    /// Pixel format asked of the camera.
    #[arg(long, env = "VIDEOCALL_FRAME_FORMAT", value_enum, default_value_t = FrameFormat::Nv12)]
    pub frame_format: FrameFormat,
    /// Which camera (see `info --list-cameras`).
    #[arg(long, env = "VIDEOCALL_VIDEO_DEVICE_INDEX", default_value_t = 0)]
    pub video_device_index: usize,
    /// Stop after this many frames (default: until Ctrl-C).
    #[arg(long, env = "VIDEOCALL_FRAMES")]
    pub frames: Option<u64>,
    /// Capture audio from this ALSA device (`default`, `hw:1,0`, ...; `arecord -L` lists
    /// them) through `arecord` (alsa-utils). A missing device or arecord is an error at start.
    #[arg(long, env = "VIDEOCALL_AUDIO_DEVICE", conflicts_with_all = ["no_audio", "audio_file"])]
    pub audio_device: Option<String>,
    /// Send this WAV file as the audio (any rate and channel count; mixed to mono, resampled
    /// to 48 kHz, looped; at most 600 s). Without it, a test tone at --tone-hz.
    #[arg(long, env = "VIDEOCALL_AUDIO_FILE", conflicts_with = "no_audio")]
    pub audio_file: Option<PathBuf>,
    /// Frequency of the test tone sent when there is no --audio-file.
    #[arg(long, env = "VIDEOCALL_TONE_HZ", default_value_t = 440, value_parser = clap::value_parser!(u32).range(20..=20_000))]
    pub tone_hz: u32,
    /// Send no audio.
    #[arg(long, env = "VIDEOCALL_NO_AUDIO")]
    pub no_audio: bool,
}

/// `receive`.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Directory for the recordings (`<user>.y4m`).
    #[arg(long, env = "VIDEOCALL_OUT")]
    pub out: PathBuf,
    /// Print `frame <user> <sequence> <latency ms>` on stdout for every decoded frame (and
    /// `audio <user> <sequence> silence <samples>` for every audio frame).
    #[arg(long, env = "VIDEOCALL_PRINT_FRAMES")]
    pub print_frames: bool,
    /// Do not write the decoded pictures (`<user>.y4m`, about 460 KB a 640x480 frame); the
    /// `.webm` files hold the video.
    #[arg(long, env = "VIDEOCALL_NO_Y4M")]
    pub no_y4m: bool,
    /// Also record the whole meeting into `<out>/meeting.webm`: a grid of everyone's video
    /// (VP8) and everyone's audio mixed (Opus), on this recorder's clock.
    #[arg(long, env = "VIDEOCALL_MIX")]
    pub mix: bool,
    /// Picture size of the --mix grid, WIDTHxHEIGHT.
    #[arg(long, env = "VIDEOCALL_MIX_SIZE", default_value = "640x360", value_parser = parse_resolution)]
    pub mix_size: (usize, usize),
    /// Frames per second of the --mix grid.
    #[arg(long, env = "VIDEOCALL_MIX_FPS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub mix_fps: u32,
}

/// `chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Where and as whom.
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `info`.
#[derive(Debug, Clone, Args)]
pub struct InfoArgs {
    /// List the cameras.
    #[arg(long)]
    pub list_cameras: bool,
    /// List the pixel formats of --video-device-index.
    #[arg(long)]
    pub list_formats: bool,
    /// List the resolutions of --video-device-index.
    #[arg(long)]
    pub list_resolutions: bool,
    /// Which camera.
    #[arg(long, env = "VIDEOCALL_VIDEO_DEVICE_INDEX", default_value_t = 0)]
    pub video_device_index: usize,
}
