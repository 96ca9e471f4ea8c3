//! The media pipeline: our encoders (camera, screen, microphone) and the peers' decoders, video
//! keyed by [`StreamKey`] and audio by session. Received video goes through the reorder buffers
//! the CLI and the bot use ([`ReorderBuffers`]) before its decoder: WebTransport delivers each
//! packet on its own stream, so a small delta can overtake the keyframe before it. It holds no page state: what should be on
//! ([`MediaIntent`]) comes from the reducer, and what the page shows comes back as [`Action`]s.
//! Decoders draw straight to their tile's canvas, so media never passes through page state.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use std::time::Duration;

use videocall_client::quality::{Fitted, QualityController};
use videocall_client::reorder::{REORDER_FRAMES, ReorderBuffers};
use videocall_types::{
    HeartbeatMetadata, MediaPacket, MediaType, SessionId, StreamKey, StreamKind,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{AudioContext, MediaStream, MediaStreamTrack};

use crate::media::audio_receiver::AudioReceiver;
use crate::media::audio_sender::AudioSender;
use crate::media::video_receiver::{Decoded, VideoReceiver};
use crate::media::video_sender::VideoSender;
use crate::media::{PacketSink, canvas_id, log, now_ms};
use crate::state::{Action, DeviceKind, MediaIntent, SendQuality};

/// Video bitrate of the camera, bits/s.
const CAMERA_BITRATE: u32 = 600_000;
/// Video bitrate of a screen share, bits/s.
const SCREEN_BITRATE: u32 = 1_200_000;
/// Most video decoders at once. The subscription keeps the grid's cameras to 9 and the relay
/// caps a meeting, so this is a guard against a relay that floods us with new streams: each
/// decoder is a WebCodecs `VideoDecoder`, a scarce resource.
const MAX_VIDEO_STREAMS: usize = 64;

/// How often the peers' audio levels go to the reducer (the active speaker), ms: often enough
/// for its switch window, far less often than audio packets.
const LEVEL_REPORT_MS: f64 = 200.0;

/// Called with the result of asking the browser for a screen to share.
pub(crate) type OnScreen = Rc<dyn Fn(Result<MediaStream, String>)>;

/// The screen share, which takes a browser prompt to open.
enum Screen {
    Off,
    /// `getDisplayMedia` asked; the answer comes to [`MediaPipeline::handle_screen_opened`].
    Opening,
    Live {
        sender: VideoSender,
        stream: MediaStream,
    },
}

/// What a video packet did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VideoOutcome {
    /// The first packet of a stream we had no decoder for.
    pub(crate) new_stream: bool,
    /// The decoder cannot go on without a keyframe from the sender.
    pub(crate) need_keyframe: bool,
}

/// Encoders and decoders of one meeting page.
pub(crate) struct MediaPipeline {
    local: Option<MediaStream>,
    audio_context: Option<AudioContext>,
    /// Where our encoders send their packets (into the session pump).
    sink: PacketSink,
    on_screen: OnScreen,
    want: MediaIntent,
    camera: Option<VideoSender>,
    /// The camera's adaptive-quality ladder, while the camera runs.
    quality: Option<QualityController>,
    screen: Screen,
    mic: Option<AudioSender>,
    videos: HashMap<StreamKey, VideoReceiver>,
    /// Received video in sender order, per stream (as many streams as decoders at most).
    reorder: ReorderBuffers<MediaPacket>,
    /// Frame numbers of our camera and screen, kept across encoder restarts.
    camera_sequence: Rc<Cell<u64>>,
    screen_sequence: Rc<Cell<u64>>,
    audios: HashMap<SessionId, AudioReceiver>,
    /// Last second's (decoded frames, bytes) per stream, for fps and kbit/s.
    last_stats: HashMap<StreamKey, (u64, u64)>,
    last_stats_at: f64,
    last_levels_at: f64,
    /// Packets of new streams refused past [`MAX_VIDEO_STREAMS`].
    refused_streams: u64,
}

impl MediaPipeline {
    /// A pipeline publishing `local` (camera and microphone, if any) as `want` says, once
    /// joined.
    pub(crate) fn new(
        local: Option<MediaStream>,
        want: MediaIntent,
        sink: PacketSink,
        on_screen: OnScreen,
    ) -> Self {
        let audio_context = AudioContext::new().ok();
        if let Some(ctx) = &audio_context {
            // Created on Connect, a user gesture: resuming now lets audio play (or, where the
            // browser still refuses, on the next click or key press).
            crate::media::autoplay::resume_audio(ctx);
        }
        Self {
            local,
            audio_context,
            sink,
            on_screen,
            want,
            camera: None,
            quality: None,
            screen: Screen::Off,
            mic: None,
            videos: HashMap::new(),
            reorder: ReorderBuffers::new(REORDER_FRAMES, MAX_VIDEO_STREAMS),
            camera_sequence: Rc::new(Cell::new(0)),
            screen_sequence: Rc::new(Cell::new(0)),
            audios: HashMap::new(),
            last_stats: HashMap::new(),
            last_stats_at: now_ms(),
            last_levels_at: now_ms(),
            refused_streams: 0,
        }
    }

    /// Follows the reducer: microphone muted or not, camera encoder running or not (once
    /// `joined`), screen shared or not.
    pub(crate) fn apply(&mut self, want: MediaIntent, joined: bool) {
        self.want = want;
        if let Some(mic) = &self.mic {
            mic.enabled.set(want.mic);
        }
        if !want.camera {
            self.camera = None;
            self.quality = None;
        } else if joined && self.camera.is_none() {
            self.start_camera();
        }
        match (&self.screen, want.screen) {
            (Screen::Off, true) => {
                self.screen = Screen::Opening;
                let on_screen = self.on_screen.clone();
                spawn_local(async move {
                    on_screen(crate::media::devices::open_screen().await);
                });
            }
            // A share stopped while the browser asks: the answer is stopped when it comes.
            (Screen::Opening | Screen::Live { .. }, false) => self.stop_screen(),
            _ => {}
        }
    }

    /// We are in the meeting: start what should run, and let receivers start decoding us.
    pub(crate) fn handle_joined(&mut self) {
        log(&format!(
            "joined; camera on {}, encoder running {}, mic running {}",
            self.want.camera,
            self.camera.is_some(),
            self.mic.is_some()
        ));
        if self.want.camera && self.camera.is_none() {
            self.start_camera();
        }
        if self.mic.is_none() {
            self.start_mic();
        }
        self.request_camera_keyframe();
    }

    /// The browser answered the screen prompt. Actions for the page when sharing did not start.
    pub(crate) fn handle_screen_opened(
        &mut self,
        result: Result<MediaStream, String>,
    ) -> Vec<Action> {
        match result {
            Ok(stream) => {
                if !matches!(self.screen, Screen::Opening) || !self.want.screen {
                    stop_tracks(&stream);
                    return Vec::new();
                }
                let Some(track) = first_track(&stream.get_video_tracks()) else {
                    stop_tracks(&stream);
                    self.screen = Screen::Off;
                    return vec![Action::Sharing(false)];
                };
                let sender = VideoSender::start(
                    track,
                    MediaType::Screen,
                    SCREEN_BITRATE,
                    self.sink.clone(),
                    self.screen_sequence.clone(),
                );
                self.screen = Screen::Live { sender, stream };
                Vec::new()
            }
            Err(e) => {
                self.screen = Screen::Off;
                vec![
                    Action::Sharing(false),
                    Action::Notice(format!("Screen share failed: {e}")),
                ]
            }
        }
    }

    /// What we send in our heartbeat.
    pub(crate) fn heartbeat(&self) -> HeartbeatMetadata {
        HeartbeatMetadata {
            video_enabled: self.camera.is_some(),
            audio_enabled: self.mic.as_ref().is_some_and(|m| m.enabled.get()),
            screen_enabled: matches!(&self.screen, Screen::Live { sender, .. } if sender.is_live()),
            is_speaking: self.mic.as_ref().is_some_and(AudioSender::speaking),
        }
    }

    /// A newcomer (or a receiver that lost its decoder) needs our camera's next frame whole.
    pub(crate) fn request_camera_keyframe(&self) {
        if let Some(camera) = &self.camera {
            camera.request_keyframe();
        }
    }

    /// Keyframes of everything we send.
    pub(crate) fn request_keyframes(&self) {
        self.request_camera_keyframe();
        if let Screen::Live { sender, .. } = &self.screen {
            sender.request_keyframe();
        }
    }

    /// One video packet of `stream`: put back in `VideoMetadata.sequence` order, then what is
    /// ready is decoded. A decoder that fails restarts its stream at a keyframe.
    pub(crate) fn handle_video(&mut self, stream: StreamKey, packet: MediaPacket) -> VideoOutcome {
        let new_stream = !self.videos.contains_key(&stream);
        if new_stream && self.videos.len() >= MAX_VIDEO_STREAMS {
            self.refused_streams += 1;
            if self.refused_streams.is_power_of_two() {
                log(&format!(
                    "{} packets of new video streams refused: {MAX_VIDEO_STREAMS} decoders run",
                    self.refused_streams
                ));
            }
            return VideoOutcome::default();
        }
        let receiver = self
            .videos
            .entry(stream)
            .or_insert_with(|| VideoReceiver::new(canvas_id(stream)));
        let sequence = packet
            .video_metadata
            .map(|m| m.sequence)
            .unwrap_or_default();
        let key = packet.frame_type == "key";
        for frame in self.reorder.handle_frame(stream, sequence, key, packet) {
            if receiver.handle(&frame) == Decoded::NeedKeyframe {
                self.reorder.handle_decode_error(stream);
                break;
            }
        }
        // Only this stream's requests can be pending: each packet is handled to the end.
        let mut need_keyframe = false;
        while self.reorder.poll_keyframe_request().is_some() {
            need_keyframe = true;
        }
        VideoOutcome {
            new_stream,
            need_keyframe,
        }
    }

    /// One audio packet of `session`; the packets received and frames decoded show on the tile
    /// (`data-audio-packets`, `data-audio-decoded`).
    pub(crate) fn handle_audio(&mut self, session: SessionId, packet: &MediaPacket) {
        let context = &self.audio_context;
        let receiver = self
            .audios
            .entry(session)
            .or_insert_with(|| AudioReceiver::new(context.clone()));
        receiver.handle(packet);
        let count = receiver.packets.get();
        if let Some(tile) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&format!("tile-{session}")))
        {
            let _ = tile.set_attribute("data-audio-packets", &count.to_string());
            let decoded = receiver.decoded.get();
            let _ = tile.set_attribute("data-audio-decoded", &decoded.to_string());
        }
    }

    /// `session` left: its decoders go.
    pub(crate) fn remove_peer(&mut self, session: SessionId) {
        for stream in [StreamKey::camera(session), StreamKey::screen(session)] {
            self.videos.remove(&stream);
            self.last_stats.remove(&stream);
        }
        self.reorder.remove_session(session);
        self.audios.remove(&session);
    }

    /// The connection dropped: every peer is gone until the rejoin.
    pub(crate) fn clear_receivers(&mut self) {
        self.videos.clear();
        self.reorder = ReorderBuffers::new(REORDER_FRAMES, MAX_VIDEO_STREAMS);
        self.audios.clear();
        self.last_stats.clear();
    }

    /// The relay says a receiver drops our video: adaptive quality steps down.
    pub(crate) fn handle_congestion(&mut self) {
        if let Some(quality) = &mut self.quality {
            quality.handle_congestion(clock());
        }
    }

    /// A round trip to the relay took `rtt`: adaptive quality watches it rise.
    pub(crate) fn handle_rtt(&mut self, rtt: Duration) {
        if let Some(quality) = &mut self.quality {
            quality.handle_rtt(clock(), rtt);
        }
    }

    /// Switches the camera or microphone to the first track of `opened` (a mid-call device
    /// switch): the old track stops, the new one joins the page's stream (the self-view follows)
    /// and a running encoder restarts on it, its frame numbering going on. False when `opened`
    /// has no track of that kind.
    pub(crate) fn replace_device(&mut self, kind: DeviceKind, opened: MediaStream) -> bool {
        let video = kind == DeviceKind::Camera;
        let tracks = |s: &MediaStream| {
            if video {
                s.get_video_tracks()
            } else {
                s.get_audio_tracks()
            }
        };
        let Some(track) = first_track(&tracks(&opened)) else {
            stop_tracks(&opened);
            return false;
        };
        if self.local.is_none() {
            self.local = MediaStream::new().ok();
        }
        let Some(local) = &self.local else {
            return false;
        };
        for old in tracks(local).iter() {
            let old: MediaStreamTrack = old.unchecked_into();
            local.remove_track(&old);
            old.stop();
        }
        local.add_track(&track);
        match kind {
            DeviceKind::Camera => {
                if self.camera.take().is_some() {
                    self.quality = None;
                    self.start_camera();
                }
            }
            DeviceKind::Microphone => {
                if self.mic.take().is_some() {
                    self.start_mic();
                }
            }
            DeviceKind::Speaker => {}
        }
        true
    }

    /// Plays everyone's audio on output `id`: the promise of `AudioContext.setSinkId`, or `None`
    /// where the browser has no such method.
    pub(crate) fn set_speaker(&self, id: &str) -> Option<js_sys::Promise> {
        let context = self.audio_context.as_ref()?;
        let set_sink_id: js_sys::Function = js_sys::Reflect::get(context, &"setSinkId".into())
            .ok()?
            .dyn_into()
            .ok()?;
        set_sink_id.call1(context, &id.into()).ok()?.dyn_into().ok()
    }

    /// Applies the ladder's pending changes to the camera encoder; one action per change.
    fn apply_quality(&mut self, actions: &mut Vec<Action>) {
        let (Some(quality), Some(camera)) = (&mut self.quality, &self.camera) else {
            return;
        };
        quality.handle_timeout(clock());
        while let Some(change) = quality.poll_change() {
            camera.set_quality(change.rung);
            let (width, height) = camera.source_size();
            actions.push(send_quality(
                change.index,
                change.rung.fit(width, height),
                change.reason.as_str(),
                quality.steps(),
            ));
        }
    }

    /// Every 100 ms: a share the browser ended and quality changes, every [`LEVEL_REPORT_MS`]
    /// the peers' audio levels, and once a second the peers' video statistics.
    pub(crate) fn tick(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        self.apply_quality(&mut actions);
        if matches!(&self.screen, Screen::Live { sender, .. } if !sender.is_live()) {
            self.stop_screen();
            actions.push(Action::Sharing(false));
        }
        let t = now_ms();
        if t - self.last_levels_at >= LEVEL_REPORT_MS && !self.audios.is_empty() {
            self.last_levels_at = t;
            let levels = self
                .audios
                .iter()
                .map(|(session, receiver)| (*session, receiver.take_level()))
                .collect();
            actions.push(Action::AudioLevels { at_ms: t, levels });
        }
        let elapsed = (t - self.last_stats_at) / 1000.0;
        if elapsed < 1.0 {
            return actions;
        }
        self.last_stats_at = t;
        for (stream, receiver) in &self.videos {
            let (decoded, bytes) = (receiver.stats.decoded.get(), receiver.stats.bytes.get());
            let (last_decoded, last_bytes) = self
                .last_stats
                .insert(*stream, (decoded, bytes))
                .unwrap_or((0, 0));
            if stream.kind == StreamKind::Camera {
                actions.push(Action::PeerStats {
                    session: stream.session,
                    fps: decoded.saturating_sub(last_decoded) as f64 / elapsed,
                    kbps: bytes.saturating_sub(last_bytes) as f64 * 8.0 / 1000.0 / elapsed,
                    decode_queue: receiver.queue(),
                    // Frames the reorder buffer gave up on are dropped frames too.
                    dropped: receiver.stats.dropped.get()
                        + self
                            .reorder
                            .stream(stream)
                            .map_or(0, |r| r.late + r.skipped),
                });
            }
        }
        actions
    }

    fn start_camera(&mut self) {
        match self
            .local
            .as_ref()
            .and_then(|s| first_track(&s.get_video_tracks()))
        {
            Some(track) => {
                let camera = VideoSender::start(
                    track,
                    MediaType::Video,
                    CAMERA_BITRATE,
                    self.sink.clone(),
                    self.camera_sequence.clone(),
                );
                // The ladder starts at the best rung for the camera (applied at the next tick)
                // and moves as the relay and the round trip say (videocall_client::quality).
                let (_, height) = camera.source_size();
                self.quality = Some(QualityController::new(clock(), height));
                self.camera = Some(camera);
            }
            None => log("no camera track to send"),
        }
    }

    fn start_mic(&mut self) {
        if let Some(track) = self
            .local
            .as_ref()
            .and_then(|s| first_track(&s.get_audio_tracks()))
        {
            let sender = AudioSender::start(track, Some(self.sink.clone()));
            sender.enabled.set(self.want.mic);
            self.mic = Some(sender);
        }
    }

    fn stop_screen(&mut self) {
        if let Screen::Live { stream, .. } = std::mem::replace(&mut self.screen, Screen::Off) {
            stop_tracks(&stream);
        }
    }
}

impl Drop for MediaPipeline {
    fn drop(&mut self) {
        self.camera = None;
        self.mic = None;
        self.stop_screen();
        if let Some(ctx) = self.audio_context.take() {
            let _ = ctx.close();
        }
    }
}

fn first_track(tracks: &js_sys::Array) -> Option<MediaStreamTrack> {
    tracks.get(0).dyn_into::<MediaStreamTrack>().ok()
}

fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().stop();
    }
}

/// The pipeline's clock for the quality ladder: time since the page loaded.
fn clock() -> Duration {
    Duration::from_secs_f64(now_ms().max(0.0) / 1000.0)
}

/// The reducer's view of a rung change.
fn send_quality(index: usize, fitted: Fitted, reason: &'static str, steps: (u64, u64)) -> Action {
    Action::SendQuality(SendQuality {
        rung: index,
        width: fitted.width,
        height: fitted.height,
        fps: fitted.fps,
        kbps: fitted.bitrate / 1000,
        reason,
        steps_down: steps.0,
        steps_up: steps.1,
    })
}
