//! Camera or screen → `VideoEncoder` (VP9, VP8 when VP9 is unsupported; realtime) →
//! `MediaPacket`s. Frames come from `MediaStreamTrackProcessor`, or where it is missing from a
//! `<video>` element sampled 30 times a second, so other browsers are not locked out.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use videocall_client::quality::Rung;
use videocall_types::{MediaPacket, MediaType, VideoCodec, VideoMetadata};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    EncodedVideoChunk, EncodedVideoChunkType, HtmlVideoElement, LatencyMode, MediaStream,
    MediaStreamTrack, MediaStreamTrackProcessor, MediaStreamTrackProcessorInit,
    ReadableStreamDefaultReader, VideoEncoder, VideoEncoderConfig, VideoEncoderEncodeOptions,
    VideoEncoderInit, VideoFrame,
};

use super::{PacketSink, chunk_bytes, log, now_ms};
use crate::transport::{await_promise, read_chunk};

/// A keyframe at least this often (ms), and whenever a peer asks.
const KEYFRAME_INTERVAL_MS: f64 = 2_000.0;

/// A running encoder for one track; stops when dropped.
pub(crate) struct VideoSender {
    stopped: Rc<Cell<bool>>,
    force_key: Rc<Cell<bool>>,
    track: MediaStreamTrack,
    encoder: Rc<RefCell<Option<VideoEncoder>>>,
    /// A quality rung to apply at the next frame (adaptive quality, camera only).
    quality: Rc<Cell<Option<Rung>>>,
}

impl VideoSender {
    /// Starts encoding `track` as `media_type` (VIDEO or SCREEN) at `bitrate` bits/s,
    /// numbering frames from `sequence` on. The counter outlives the sender: receivers
    /// reorder by it, so a camera turned off and on again goes on where it stopped rather
    /// than restarting at 0 (which they would take for frames long late).
    pub(crate) fn start(
        track: MediaStreamTrack,
        media_type: MediaType,
        bitrate: u32,
        sink: PacketSink,
        sequence: Rc<Cell<u64>>,
    ) -> Self {
        let stopped = Rc::new(Cell::new(false));
        let force_key = Rc::new(Cell::new(true));
        let encoder = Rc::new(RefCell::new(None));
        let quality = Rc::new(Cell::new(None));
        let sender = Self {
            stopped: stopped.clone(),
            force_key: force_key.clone(),
            track: track.clone(),
            encoder: encoder.clone(),
            quality: quality.clone(),
        };
        let cells = Cells {
            stopped,
            force_key,
            encoder,
            quality,
        };
        spawn_local(async move {
            if let Err(e) = run(track, media_type, bitrate, sink, sequence, cells).await {
                log(&format!("video encoder stopped: {e}"));
            }
        });
        sender
    }

    /// The next frame is encoded as a keyframe.
    pub(crate) fn request_keyframe(&self) {
        self.force_key.set(true);
    }

    /// Encodes from the next frame on at `rung` (size, frame rate and bitrate fitted to the
    /// track), starting with a keyframe.
    pub(crate) fn set_quality(&self, rung: Rung) {
        self.quality.set(Some(rung));
    }

    /// The track's size (even), what a quality rung is fitted to.
    pub(crate) fn source_size(&self) -> (u32, u32) {
        track_size(&self.track)
    }

    /// Whether the track still produces frames (a screen share ends when the user stops it).
    pub(crate) fn is_live(&self) -> bool {
        !self.stopped.get() && self.track.ready_state() == web_sys::MediaStreamTrackState::Live
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.stopped.set(true);
        if let Some(encoder) = self.encoder.borrow_mut().take() {
            let _ = encoder.close();
        }
    }
}

async fn choose_codec(width: u32, height: u32) -> (&'static str, VideoCodec) {
    for (codec, wire) in [
        ("vp09.00.10.08", VideoCodec::Vp9Profile0Level108bit),
        ("vp8", VideoCodec::Vp8),
    ] {
        let config = VideoEncoderConfig::new(codec, height, width);
        if let Ok(result) =
            await_promise(VideoEncoder::is_config_supported(&config).unchecked_into()).await
            && Reflect::get(&result, &"supported".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        {
            return (codec, wire);
        }
    }
    ("vp8", VideoCodec::Vp8)
}

fn track_size(track: &MediaStreamTrack) -> (u32, u32) {
    let settings = track.get_settings();
    let width = settings.get_width().unwrap_or(640) as u32;
    let height = settings.get_height().unwrap_or(480) as u32;
    // Encoders want even dimensions.
    (width & !1, height & !1)
}

/// What the encoder task shares with its `VideoSender`.
struct Cells {
    stopped: Rc<Cell<bool>>,
    force_key: Rc<Cell<bool>>,
    encoder: Rc<RefCell<Option<VideoEncoder>>>,
    quality: Rc<Cell<Option<Rung>>>,
}

/// The encoder configuration for `codec` at `width` × `height`, `bitrate` and `fps`.
fn encoder_config(
    codec: &str,
    width: u32,
    height: u32,
    bitrate: u32,
    fps: u32,
) -> VideoEncoderConfig {
    let config = VideoEncoderConfig::new(codec, height, width);
    config.set_bitrate(bitrate);
    config.set_latency_mode(LatencyMode::Realtime);
    config.set_framerate(f64::from(fps));
    config
}

// The encoder task: the track, what to send it as, where packets go, and the cells it shares
// with its `VideoSender`.
async fn run(
    track: MediaStreamTrack,
    media_type: MediaType,
    bitrate: u32,
    sink: PacketSink,
    sequence: Rc<Cell<u64>>,
    cells: Cells,
) -> Result<(), String> {
    let Cells {
        stopped,
        force_key,
        encoder: encoder_slot,
        quality,
    } = cells;
    let (width, height) = track_size(&track);
    let (codec, wire_codec) = choose_codec(width, height).await;
    let on_output = {
        let sequence = sequence.clone();
        Closure::<dyn FnMut(EncodedVideoChunk, JsValue)>::new(
            move |chunk: EncodedVideoChunk, _meta: JsValue| {
                let seq = sequence.get();
                sequence.set(seq + 1);
                let key = chunk.type_() == EncodedVideoChunkType::Key;
                sink(MediaPacket {
                    media_type: media_type as i32,
                    data: chunk_bytes(&chunk).into(),
                    frame_type: if key { "key" } else { "delta" }.into(),
                    timestamp: now_ms(),
                    duration: chunk.duration().unwrap_or_default() / 1000.0,
                    video_metadata: Some(VideoMetadata {
                        sequence: seq,
                        codec: wire_codec as i32,
                    }),
                    ..Default::default()
                });
            },
        )
    };
    let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        log(&format!(
            "VideoEncoder error: {}",
            crate::transport::js_error(&e)
        ));
    });
    let encoder = VideoEncoder::new(&VideoEncoderInit::new(
        on_error.as_ref().unchecked_ref(),
        on_output.as_ref().unchecked_ref(),
    ))
    .map_err(|e| crate::transport::js_error(&e))?;
    encoder
        .configure(&encoder_config(codec, width, height, bitrate, 30))
        .map_err(|e| crate::transport::js_error(&e))?;
    *encoder_slot.borrow_mut() = Some(encoder.clone());

    let mut last_key = f64::MIN;
    // Frame-rate cap below 30 fps: a budget of frames that fills at `fps` per second (at most 2
    // banked).
    let mut fps = 30u32;
    let mut budget = 1.0f64;
    let mut last_frame = now_ms();
    let mut encode = |frame: VideoFrame| {
        let now = now_ms();
        // A new rung applies once the encoder has encoded (Chromium's VP9 encoder fails with
        // "Encoding error" when reconfigured before its first frame).
        let pending = if last_key > f64::MIN {
            quality.take()
        } else {
            None
        };
        if let Some(rung) = pending {
            // The source may have changed size since the start (a camera renegotiating).
            let (source_width, source_height) = track_size(&track);
            let fitted = rung.fit(source_width, source_height);
            let config = encoder_config(
                codec,
                fitted.width,
                fitted.height,
                fitted.bitrate,
                fitted.fps,
            );
            // WebCodecs scales each frame to the configured size.
            match encoder.configure(&config) {
                Ok(()) => {
                    fps = fitted.fps;
                    force_key.set(true);
                    log(&format!(
                        "sending {}x{} at {} fps, {} kbit/s",
                        fitted.width,
                        fitted.height,
                        fitted.fps,
                        fitted.bitrate / 1000
                    ));
                }
                Err(e) => log(&format!(
                    "cannot change the video quality: {}",
                    crate::transport::js_error(&e)
                )),
            }
        }
        // At 30 fps and above the camera's own rate is the cap (a budget would drop frames
        // arriving a little early).
        budget = (budget + (now - last_frame) / 1000.0 * f64::from(fps)).min(2.0);
        last_frame = now;
        if fps < 30 {
            if budget < 1.0 {
                frame.close();
                return;
            }
            budget -= 1.0;
        }
        // Realtime: never queue; a busy encoder skips the frame.
        if encoder.encode_queue_size() < 2 && encoder.state() == web_sys::CodecState::Configured {
            let key = force_key.replace(false) || now - last_key >= KEYFRAME_INTERVAL_MS;
            if key {
                last_key = now;
            }
            let options = VideoEncoderEncodeOptions::new();
            options.set_key_frame(key);
            let _ = encoder.encode_with_options(&frame, &options);
        }
        frame.close();
    };

    let has_processor =
        Reflect::has(&js_sys::global(), &"MediaStreamTrackProcessor".into()).unwrap_or(false);
    if has_processor {
        let processor = MediaStreamTrackProcessor::new(&MediaStreamTrackProcessorInit::new(&track))
            .map_err(|e| crate::transport::js_error(&e))?;
        let reader: ReadableStreamDefaultReader =
            processor.readable().get_reader().unchecked_into();
        while !stopped.get() {
            let Some(frame) = read_chunk(&reader).await else {
                break;
            };
            encode(frame.unchecked_into());
        }
        let _ = reader.cancel();
    } else {
        // Fallback: sample a <video> element playing the track.
        let video: HtmlVideoElement = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.create_element("video").ok())
            .ok_or("cannot create a video element")?
            .unchecked_into();
        let stream = MediaStream::new().map_err(|e| crate::transport::js_error(&e))?;
        stream.add_track(&track);
        video.set_src_object(Some(&stream));
        super::autoplay::play_muted(&video);
        while !stopped.get() && track.ready_state() == web_sys::MediaStreamTrackState::Live {
            gloo_timers::future::TimeoutFuture::new(33).await;
            if video.ready_state() >= 2
                && let Ok(frame) = VideoFrame::new_with_html_video_element(&video)
            {
                encode(frame);
            }
        }
    }
    stopped.set(true);
    drop(on_output);
    drop(on_error);
    Ok(())
}
