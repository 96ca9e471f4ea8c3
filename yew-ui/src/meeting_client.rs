//! Drives a `videocall_client::Session` in the browser: transports, timers, encoders and
//! per-peer decoders. It reports what the page shows as [`Action`]s; media never passes
//! through the page state (decoders draw straight to their canvases).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::Bytes;
use gloo_timers::callback::Interval;
use js_sys::Reflect;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity, OsRng};
use videocall_client::{Action as SessionAction, ClientConfig, Event, Session};
use videocall_types::{HeartbeatMetadata, MediaPacket, MediaType, MeetingId, UserId};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{AudioContext, MediaStream, MediaStreamTrack};
use yew::Callback;

use crate::media::audio_receiver::AudioReceiver;
use crate::media::audio_sender::AudioSender;
use crate::media::video_receiver::{Decoded, VideoReceiver};
use crate::media::video_sender::VideoSender;
use crate::media::{PacketSink, log, now_ms};
use crate::state::{Action, TransportKind};
use crate::transport::{self, Endpoints, Transport, await_promise};

/// Video bitrate of the camera, bits/s.
const CAMERA_BITRATE: u32 = 600_000;
/// Video bitrate of a screen share, bits/s.
const SCREEN_BITRATE: u32 = 1_200_000;
/// Most remote videos subscribed to at once (the visible grid).
const MAX_VISIBLE: usize = 9;

/// The id of the canvas of a peer's camera or screen tile.
pub(crate) fn canvas_id(session: u64, screen: bool) -> String {
    if screen {
        format!("screen-{session}")
    } else {
        format!("video-{session}")
    }
}

/// A handle to the running meeting; dropping it leaves.
pub(crate) struct MeetingClient {
    inner: Rc<RefCell<Inner>>,
    _timer: Interval,
}

struct Inner {
    session: Session,
    /// Our E2EE identity while the meeting is encrypted.
    identity: Option<Identity>,
    endpoints: Option<Endpoints>,
    transport: Option<Transport>,
    transport_kind: Option<TransportKind>,
    ever_joined: bool,
    dispatch: Callback<Action>,
    local: Option<MediaStream>,
    camera: Option<VideoSender>,
    screen: Option<VideoSender>,
    screen_stream: Option<MediaStream>,
    mic: Option<AudioSender>,
    camera_on: bool,
    mic_on: bool,
    audio_context: Option<AudioContext>,
    videos: HashMap<(u64, bool), VideoReceiver>,
    audios: HashMap<u64, AudioReceiver>,
    users: HashMap<u64, String>,
    pinned: Option<u64>,
    /// Last second's counters per stream, for fps/kbps.
    last_stats: HashMap<(u64, bool), (u64, u64)>,
    last_stats_at: f64,
    last_rtt_report: f64,
}

fn now() -> Duration {
    Duration::from_secs_f64(now_ms() / 1000.0)
}

impl MeetingClient {
    /// Joins `meeting` as `user`, publishing `local` (camera and microphone, if any).
    pub(crate) fn start(
        user: &str,
        meeting: &str,
        local: Option<MediaStream>,
        camera_on: bool,
        mic_on: bool,
        dispatch: Callback<Action>,
    ) -> Result<Self, String> {
        let user_id = UserId::new(user).map_err(|e| e.to_string())?;
        let meeting_id = MeetingId::new(meeting).map_err(|e| e.to_string())?;
        let session = Session::new(ClientConfig::new(user_id, meeting_id));
        let audio_context = AudioContext::new().ok();
        if let Some(ctx) = &audio_context {
            // Connect is a user gesture: resuming now lets audio play.
            let _ = ctx.resume();
        }
        let inner = Rc::new(RefCell::new(Inner {
            session,
            identity: None,
            endpoints: None,
            transport: None,
            transport_kind: None,
            ever_joined: false,
            dispatch,
            local,
            camera: None,
            screen: None,
            screen_stream: None,
            mic: None,
            camera_on,
            mic_on,
            audio_context,
            videos: HashMap::new(),
            audios: HashMap::new(),
            users: HashMap::new(),
            pinned: None,
            last_stats: HashMap::new(),
            last_stats_at: now_ms(),
            last_rtt_report: 0.0,
        }));
        let weak = Rc::downgrade(&inner);
        let timer = Interval::new(100, move || {
            if let Some(inner) = weak.upgrade() {
                tick(&inner);
            }
        });
        {
            let inner = inner.clone();
            spawn_local(async move {
                let config = inner.borrow().session.config().clone();
                let dispatch = inner.borrow().dispatch.clone();
                let endpoints = fetch_endpoints(&config).await;
                inner.borrow_mut().endpoints = Some(endpoints);
                if meeting_is_encrypted(&config.meeting_id).await {
                    let started = now_ms();
                    match crate::e2ee::identity().await {
                        Ok(identity) => {
                            // Usually generated while the user was choosing devices.
                            let waited = now_ms() - started;
                            crate::e2ee::set_body_attribute(
                                "data-e2ee-join-wait-ms",
                                &format!("{waited:.1}"),
                            );
                            let mut i = inner.borrow_mut();
                            i.session = new_session(config, Some(&identity));
                            i.identity = Some(identity);
                        }
                        Err(why) => {
                            dispatch.emit(Action::ConnectFailed(format!(
                                "This meeting is end-to-end encrypted, and this browser cannot \
                                 encrypt here: {why}."
                            )));
                            return;
                        }
                    }
                }
                let encrypted = inner.borrow().identity.is_some();
                dispatch.emit(Action::Encryption(encrypted));
                inner.borrow_mut().session.handle_start(now());
                pump(&inner);
            });
        }
        Ok(Self {
            inner,
            _timer: timer,
        })
    }

    pub(crate) fn set_mic(&self, on: bool) {
        let mut inner = self.inner.borrow_mut();
        inner.mic_on = on;
        if let Some(mic) = &inner.mic {
            mic.enabled.set(on);
        }
    }

    pub(crate) fn set_camera(&self, on: bool) {
        let mut inner = self.inner.borrow_mut();
        inner.camera_on = on;
        if !on {
            inner.camera = None;
        }
        drop(inner);
        if on {
            start_camera(&self.inner);
        }
    }

    pub(crate) fn set_pinned(&self, pinned: Option<u64>) {
        self.inner.borrow_mut().pinned = pinned;
        update_subscription(&mut self.inner.borrow_mut());
    }

    /// Starts (true) or stops sharing the screen.
    pub(crate) fn share_screen(&self, on: bool) {
        if !on {
            let mut inner = self.inner.borrow_mut();
            inner.screen = None;
            if let Some(stream) = inner.screen_stream.take() {
                for track in stream.get_tracks().iter() {
                    track.unchecked_into::<MediaStreamTrack>().stop();
                }
            }
            return;
        }
        let inner = self.inner.clone();
        spawn_local(async move {
            match crate::media::devices::open_screen().await {
                Ok(stream) => {
                    let Some(track) = stream
                        .get_video_tracks()
                        .get(0)
                        .dyn_into::<MediaStreamTrack>()
                        .ok()
                    else {
                        return;
                    };
                    let sink = sink(&inner);
                    let mut i = inner.borrow_mut();
                    i.screen = Some(VideoSender::start(
                        track,
                        MediaType::Screen,
                        SCREEN_BITRATE,
                        sink,
                    ));
                    i.screen_stream = Some(stream);
                }
                Err(e) => {
                    let dispatch = inner.borrow().dispatch.clone();
                    dispatch.emit(Action::Sharing(false));
                    dispatch.emit(Action::Notice(format!("Screen share failed: {e}")));
                }
            }
        });
    }

    /// Tries to connect again after a failure.
    pub(crate) fn retry(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.session = new_session(inner.session.config().clone(), inner.identity.as_ref());
        inner.session.handle_start(now());
        drop(inner);
        pump(&self.inner);
    }
}

impl Drop for MeetingClient {
    fn drop(&mut self) {
        let mut inner = self.inner.borrow_mut();
        inner.session.leave();
        if let Some(t) = inner.transport.take() {
            t.close();
        }
        inner.camera = None;
        inner.screen = None;
        inner.mic = None;
        if let Some(stream) = inner.screen_stream.take() {
            for track in stream.get_tracks().iter() {
                track.unchecked_into::<MediaStreamTrack>().stop();
            }
        }
        if let Some(ctx) = inner.audio_context.take() {
            let _ = ctx.close();
        }
    }
}

/// A session that encrypts under `identity`, or not.
fn new_session(config: ClientConfig, identity: Option<&Identity>) -> Session {
    match identity {
        Some(identity) => {
            let user = config.user_id.as_str().to_owned();
            let e2ee = E2ee::with_identity(E2eeConfig::default(), user, identity.clone(), OsRng);
            Session::with_e2ee(config, e2ee)
        }
        None => Session::new(config),
    }
}

/// The JSON a GET of `path` on this page's server answers with 200, if it does.
async fn fetch_json(path: &str) -> Option<wasm_bindgen::JsValue> {
    let window = web_sys::window()?;
    let response = await_promise(window.fetch_with_str(path)).await.ok()?;
    let response: web_sys::Response = response.unchecked_into();
    if !response.ok() {
        return None;
    }
    await_promise(response.json().ok()?).await.ok()
}

/// Whether the node says `meeting` is end-to-end encrypted; encrypted when it does not say.
async fn meeting_is_encrypted(meeting: &MeetingId) -> bool {
    fetch_json(&format!("/api/v1/meetings/{meeting}"))
        .await
        .and_then(|settings| Reflect::get(&settings, &"e2ee".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Asks the server where the relays are; falls back to WebSocket on this host.
async fn fetch_endpoints(config: &ClientConfig) -> Endpoints {
    let location = web_sys::window().expect("a window").location();
    let host = location.host().unwrap_or_default();
    let hostname = location.hostname().unwrap_or_default();
    let secure = location.protocol().unwrap_or_default() == "https:";
    let path = format!(
        "/lobby/{}/{}",
        js_sys::encode_uri_component(config.user_id.as_str()),
        config.meeting_id
    );
    let mut endpoints = Endpoints {
        websocket_url: format!("{}://{host}{path}", if secure { "wss" } else { "ws" }),
        webtransport_url: None,
        certificate_hash: None,
    };
    let Some(config) = fetch_json("/api/v1/config").await else {
        return endpoints;
    };
    let disabled = web_sys::UrlSearchParams::new_with_str(&location.search().unwrap_or_default())
        .map(|p| p.get("transport").as_deref() == Some("websocket"))
        .unwrap_or(false);
    if let Some(port) = Reflect::get(&config, &"webtransport_port".into())
        .ok()
        .and_then(|p| p.as_f64())
        && !disabled
    {
        endpoints.webtransport_url = Some(format!("https://{hostname}:{port}{path}"));
    }
    if let Ok(hash) = Reflect::get(&config, &"certificate_hash".into())
        && hash.is_object()
    {
        endpoints.certificate_hash = Some(js_sys::Uint8Array::new(&hash).to_vec());
    }
    endpoints
}

fn sink(inner: &Rc<RefCell<Inner>>) -> PacketSink {
    let weak: Weak<RefCell<Inner>> = Rc::downgrade(inner);
    Rc::new(move |packet: MediaPacket| {
        if let Some(inner) = weak.upgrade()
            && inner.borrow_mut().session.send_media(packet).is_ok()
        {
            flush(&inner);
        }
    })
}

fn start_camera(inner: &Rc<RefCell<Inner>>) {
    let track = inner.borrow().local.as_ref().and_then(|s| {
        s.get_video_tracks()
            .get(0)
            .dyn_into::<MediaStreamTrack>()
            .ok()
    });
    match track {
        Some(track) => {
            let sink = sink(inner);
            inner.borrow_mut().camera = Some(VideoSender::start(
                track,
                MediaType::Video,
                CAMERA_BITRATE,
                sink,
            ));
        }
        None => log("no camera track to send"),
    }
}

fn start_mic(inner: &Rc<RefCell<Inner>>) {
    let track = inner.borrow().local.as_ref().and_then(|s| {
        s.get_audio_tracks()
            .get(0)
            .dyn_into::<MediaStreamTrack>()
            .ok()
    });
    if let Some(track) = track {
        let sink = sink(inner);
        let sender = AudioSender::start(track, Some(sink));
        sender.enabled.set(inner.borrow().mic_on);
        inner.borrow_mut().mic = Some(sender);
    }
}

/// Writes queued packets to the transport.
fn flush(inner: &Rc<RefCell<Inner>>) {
    let mut i = inner.borrow_mut();
    while let Some(packet) = i.session.poll_transmit() {
        if let Some(t) = &i.transport {
            t.send(&packet);
        }
    }
}

fn tick(inner: &Rc<RefCell<Inner>>) {
    {
        let mut i = inner.borrow_mut();
        let heartbeat = HeartbeatMetadata {
            video_enabled: i.camera.is_some(),
            audio_enabled: i.mic.as_ref().is_some_and(|m| m.enabled.get()),
            screen_enabled: i.screen.as_ref().is_some_and(VideoSender::is_live),
            is_speaking: i.mic.as_ref().is_some_and(AudioSender::speaking),
        };
        i.session.set_heartbeat(heartbeat);
        i.session.handle_timeout(now());
        if i.screen.as_ref().is_some_and(|s| !s.is_live()) {
            i.screen = None;
            i.dispatch.emit(Action::Sharing(false));
        }
    }
    report_stats(inner);
    pump(inner);
}

fn report_stats(inner: &Rc<RefCell<Inner>>) {
    let mut i = inner.borrow_mut();
    let t = now_ms();
    let elapsed = (t - i.last_stats_at) / 1000.0;
    if elapsed < 1.0 {
        return;
    }
    i.last_stats_at = t;
    let mut actions = Vec::new();
    let keys: Vec<(u64, bool)> = i.videos.keys().copied().collect();
    for key in keys {
        let receiver = &i.videos[&key];
        let (decoded, bytes) = (receiver.stats.decoded.get(), receiver.stats.bytes.get());
        let dropped = receiver.stats.dropped.get();
        let queue = receiver.queue();
        let (last_decoded, last_bytes) = i.last_stats.get(&key).copied().unwrap_or((0, 0));
        i.last_stats.insert(key, (decoded, bytes));
        if !key.1 {
            actions.push(Action::PeerStats {
                session: key.0,
                fps: (decoded - last_decoded) as f64 / elapsed,
                kbps: (bytes - last_bytes) as f64 * 8.0 / 1000.0 / elapsed,
                decode_queue: queue,
                dropped,
            });
        }
    }
    let dispatch = i.dispatch.clone();
    drop(i);
    for action in actions {
        dispatch.emit(action);
    }
}

/// Carries out the session's actions, writes its packets and handles its events.
fn pump(inner: &Rc<RefCell<Inner>>) {
    loop {
        let action = inner.borrow_mut().session.poll_action();
        let Some(action) = action else { break };
        match action {
            SessionAction::Connect { attempt } => connect(inner, attempt),
            SessionAction::Close => {
                if let Some(t) = inner.borrow_mut().transport.take() {
                    t.close();
                }
            }
        }
    }
    flush(inner);
    loop {
        let event = inner.borrow_mut().session.poll_event();
        let Some(event) = event else { break };
        handle_event(inner, event);
    }
    // Sender keys wrapped for us: our private key is in WebCrypto, which unwraps them.
    loop {
        let request = inner.borrow_mut().session.poll_unwrap();
        let Some(request) = request else { break };
        let inner = inner.clone();
        spawn_local(async move {
            let secret = crate::e2ee::unwrap(&request.wrapped).await;
            let result =
                inner
                    .borrow_mut()
                    .session
                    .handle_unwrapped(now(), &request, secret.as_deref());
            if let Err(e) = result {
                log(&format!(
                    "sender key of session {} refused: {e}",
                    request.from
                ));
            }
            pump(&inner);
        });
    }
    flush(inner);
}

fn connect(inner: &Rc<RefCell<Inner>>, attempt: u32) {
    let weak = Rc::downgrade(inner);
    let on_packet: transport::OnPacket = Rc::new(move |packet: Vec<u8>| {
        if let Some(inner) = weak.upgrade() {
            let result = inner
                .borrow_mut()
                .session
                .handle_packet(now(), Bytes::from(packet));
            if let Err(e) = result {
                log(&format!("bad packet from the relay: {e}"));
            }
            pump(&inner);
        }
    });
    let weak = Rc::downgrade(inner);
    let on_close: transport::OnClose = Rc::new(move |reason: String| {
        if let Some(inner) = weak.upgrade() {
            inner.borrow_mut().transport = None;
            inner
                .borrow_mut()
                .session
                .handle_disconnected(now(), reason);
            pump(&inner);
        }
    });
    let inner = inner.clone();
    spawn_local(async move {
        log(&format!("connecting (attempt {attempt})"));
        // Ask again where the relay is on every attempt: a restarted node has a new
        // development certificate (and may have moved WebTransport).
        let first = attempt == 1 && !inner.borrow().ever_joined;
        let endpoints = if first {
            inner.borrow().endpoints.clone()
        } else {
            None
        };
        let endpoints = match endpoints {
            Some(e) => e,
            None => {
                let config = inner.borrow().session.config().clone();
                let fresh = fetch_endpoints(&config).await;
                inner.borrow_mut().endpoints = Some(fresh.clone());
                fresh
            }
        };
        // Present the relay's reconnect secret, if we hold one: it lets us replace our own
        // earlier session (the relay refuses a second connection for a present user).
        let endpoints = endpoints.with_lobby_path(&inner.borrow().session.lobby_path());
        match transport::connect(&endpoints, on_packet, on_close).await {
            Ok(t) => {
                let mut i = inner.borrow_mut();
                i.transport_kind = Some(t.kind());
                i.transport = Some(t);
                i.session.handle_connected(now());
            }
            Err(reason) => {
                let first = !inner.borrow().ever_joined;
                inner
                    .borrow_mut()
                    .session
                    .handle_disconnected(now(), reason.clone());
                if first {
                    // Never a silent "joined": say it, and let the user retry.
                    inner.borrow_mut().session.leave();
                    inner.borrow().dispatch.emit(Action::ConnectFailed(reason));
                }
            }
        }
        pump(&inner);
    });
}

fn handle_event(inner: &Rc<RefCell<Inner>>, event: Event) {
    let dispatch = inner.borrow().dispatch.clone();
    match event {
        Event::Joined { .. } => {
            let kind = inner
                .borrow()
                .transport_kind
                .unwrap_or(TransportKind::WebSocket);
            inner.borrow_mut().ever_joined = true;
            dispatch.emit(Action::Joined(kind));
            let (has_camera, has_mic, camera_on) = {
                let i = inner.borrow();
                (i.camera.is_some(), i.mic.is_some(), i.camera_on)
            };
            log(&format!(
                "joined over {kind:?}; camera on {camera_on}, encoder running {has_camera}, mic running {has_mic}"
            ));
            if camera_on && !has_camera {
                start_camera(inner);
            }
            if !has_mic {
                start_mic(inner);
            }
            if let Some(camera) = &inner.borrow().camera {
                camera.request_keyframe();
            }
        }
        Event::PeerJoined { session, user } => {
            inner.borrow_mut().users.insert(session, user.clone());
            dispatch.emit(Action::PeerJoined { session, user });
            // A newcomer needs a keyframe to start decoding us.
            if let Some(camera) = &inner.borrow().camera {
                camera.request_keyframe();
            }
            update_subscription(&mut inner.borrow_mut());
        }
        Event::PeerLeft { session, .. } => {
            let mut i = inner.borrow_mut();
            i.users.remove(&session);
            i.videos.remove(&(session, false));
            i.videos.remove(&(session, true));
            i.audios.remove(&session);
            update_subscription(&mut i);
            drop(i);
            dispatch.emit(Action::PeerLeft { session });
        }
        Event::Media(media) => handle_media(inner, media.session, &media.user, media.packet),
        Event::KeyframeRequested => {
            let i = inner.borrow();
            if let Some(camera) = &i.camera {
                camera.request_keyframe();
            }
            if let Some(screen) = &i.screen {
                screen.request_keyframe();
            }
        }
        Event::Congestion { .. } => dispatch.emit(Action::Congestion),
        Event::SafetyCode(code) => {
            log(&format!("e2ee: safety code {code}"));
            dispatch.emit(Action::SafetyCode(code.to_string()));
        }
        Event::E2eeMismatch {
            session,
            user,
            peer_encrypts,
        } => {
            log(&format!(
                "e2ee: not showing {user}: {}",
                if peer_encrypts {
                    "it encrypts and this meeting does not"
                } else {
                    "it does not encrypt"
                }
            ));
            dispatch.emit(Action::PeerUnencrypted { session });
        }
        Event::Rtt(rtt) => {
            let t = now_ms();
            let due = t - inner.borrow().last_rtt_report >= 1000.0;
            if due {
                inner.borrow_mut().last_rtt_report = t;
                dispatch.emit(Action::Rtt(rtt.as_secs_f64() * 1000.0));
            }
        }
        Event::Disconnected { reason, retry_in } => {
            let mut i = inner.borrow_mut();
            i.videos.clear();
            i.audios.clear();
            if i.ever_joined {
                drop(i);
                let text = match retry_in {
                    Some(wait) => format!("{reason}; reconnecting in {:.1} s", wait.as_secs_f64()),
                    None => reason,
                };
                dispatch.emit(Action::ConnectionLost(text));
            }
        }
        _ => {}
    }
}

fn handle_media(inner: &Rc<RefCell<Inner>>, session: u64, user: &str, packet: MediaPacket) {
    let media_type = MediaType::try_from(packet.media_type).unwrap_or(MediaType::Unknown);
    let dispatch = inner.borrow().dispatch.clone();
    match media_type {
        MediaType::Video | MediaType::Screen => {
            let screen = media_type == MediaType::Screen;
            let mut i = inner.borrow_mut();
            let is_new = !i.videos.contains_key(&(session, screen));
            let receiver = i
                .videos
                .entry((session, screen))
                .or_insert_with(|| VideoReceiver::new(canvas_id(session, screen)));
            let outcome = receiver.handle(&packet);
            if outcome == Decoded::NeedKeyframe {
                let _ = i.session.request_keyframe(now(), user);
            }
            drop(i);
            if is_new && screen {
                dispatch.emit(Action::ScreenStream { session });
            }
            flush(inner);
        }
        MediaType::Audio => {
            let mut i = inner.borrow_mut();
            let context = i.audio_context.clone();
            let receiver = i
                .audios
                .entry(session)
                .or_insert_with(|| AudioReceiver::new(context));
            receiver.handle(&packet);
            let count = receiver.packets.get();
            drop(i);
            if let Some(tile) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.get_element_by_id(&format!("tile-{session}")))
            {
                let _ = tile.set_attribute("data-audio-packets", &count.to_string());
            }
        }
        MediaType::Heartbeat => {
            if let Some(h) = packet.heartbeat_metadata {
                dispatch.emit(Action::Heartbeat {
                    session,
                    video: h.video_enabled,
                    audio: h.audio_enabled,
                    screen: h.screen_enabled,
                    speaking: h.is_speaking,
                });
            }
        }
        _ => {}
    }
}

/// Subscribe on demand: video from the pinned peer and the first peers up to the grid size;
/// screens always (a shared screen is what everyone looks at).
fn update_subscription(inner: &mut Inner) {
    if inner.users.len() <= MAX_VISIBLE {
        inner.session.set_subscription(None);
        return;
    }
    let mut visible: Vec<u64> = inner.pinned.into_iter().collect();
    visible.extend(
        inner
            .users
            .keys()
            .copied()
            .filter(|s| Some(*s) != inner.pinned),
    );
    visible.truncate(MAX_VISIBLE);
    let screens = inner.users.keys().copied().collect();
    inner.session.set_subscription(Some((visible, screens)));
}
