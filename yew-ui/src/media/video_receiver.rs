//! One remote video stream → `VideoDecoder` (VP8, VP9, H.264 from the CLI) → its canvas.
//! Frame counts and sizes are exposed as `data-` attributes on the canvas for tests.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Uint8Array;
use videocall_types::MediaPacket;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    CanvasRenderingContext2d, EncodedVideoChunk, EncodedVideoChunkInit, EncodedVideoChunkType,
    HtmlCanvasElement, VideoDecoder, VideoDecoderConfig, VideoDecoderInit, VideoFrame,
};

use super::{codec_string, log};

/// Counters of one stream.
#[derive(Debug, Default)]
pub(crate) struct VideoStats {
    pub(crate) decoded: Cell<u64>,
    pub(crate) bytes: Cell<u64>,
    pub(crate) dropped: Cell<u64>,
    pub(crate) broken: Cell<bool>,
}

pub(crate) struct VideoReceiver {
    canvas_id: String,
    codec: Option<String>,
    decoder: Option<VideoDecoder>,
    waiting_for_key: bool,
    pub(crate) stats: Rc<VideoStats>,
    _on_output: Option<Closure<dyn FnMut(VideoFrame)>>,
    _on_error: Option<Closure<dyn FnMut(JsValue)>>,
}

/// What the caller should do after a packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    Ok,
    /// The decoder cannot go on without a keyframe: ask the sender.
    NeedKeyframe,
}

impl VideoReceiver {
    pub(crate) fn new(canvas_id: String) -> Self {
        Self {
            canvas_id,
            codec: None,
            decoder: None,
            waiting_for_key: true,
            stats: Rc::new(VideoStats::default()),
            _on_output: None,
            _on_error: None,
        }
    }

    /// Frames waiting in the decoder.
    pub(crate) fn queue(&self) -> u32 {
        self.decoder
            .as_ref()
            .map(|d| d.decode_queue_size())
            .unwrap_or(0)
    }

    pub(crate) fn handle(&mut self, packet: &MediaPacket) -> Decoded {
        let stats = self.stats.clone();
        stats
            .bytes
            .set(stats.bytes.get() + packet.data.len() as u64);
        let codec = codec_string(packet.video_metadata.map(|m| m.codec).unwrap_or_default());
        let key = packet.frame_type == "key";
        if self.codec.as_deref() != Some(codec) || self.stats.broken.replace(false) {
            self.reset(codec);
        }
        if self.waiting_for_key && !key {
            stats.dropped.set(stats.dropped.get() + 1);
            return Decoded::NeedKeyframe;
        }
        let Some(decoder) = &self.decoder else {
            return Decoded::NeedKeyframe;
        };
        let init = EncodedVideoChunkInit::new(
            &Uint8Array::from(&packet.data[..]),
            0,
            if key {
                EncodedVideoChunkType::Key
            } else {
                EncodedVideoChunkType::Delta
            },
        );
        init.set_timestamp_f64(packet.timestamp * 1000.0);
        match EncodedVideoChunk::new(&init).and_then(|chunk| decoder.decode(&chunk)) {
            Ok(()) => {
                self.waiting_for_key = false;
                Decoded::Ok
            }
            Err(e) => {
                log(&format!(
                    "decode failed: {}",
                    crate::transport::js_error(&e)
                ));
                stats.dropped.set(stats.dropped.get() + 1);
                self.stats.broken.set(true);
                Decoded::NeedKeyframe
            }
        }
    }

    fn reset(&mut self, codec: &str) {
        if let Some(old) = self.decoder.take() {
            let _ = old.close();
        }
        self.waiting_for_key = true;
        self.codec = Some(codec.to_owned());
        let canvas_id = self.canvas_id.clone();
        let stats = self.stats.clone();
        let on_output = Closure::<dyn FnMut(VideoFrame)>::new(move |frame: VideoFrame| {
            draw(&canvas_id, &frame, &stats);
            frame.close();
        });
        let stats = self.stats.clone();
        let on_error = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            log(&format!(
                "VideoDecoder error: {}",
                crate::transport::js_error(&e)
            ));
            stats.broken.set(true);
        });
        let Ok(decoder) = VideoDecoder::new(&VideoDecoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        )) else {
            return;
        };
        let config = VideoDecoderConfig::new(codec);
        config.set_optimize_for_latency(true);
        if decoder.configure(&config).is_ok() {
            self.decoder = Some(decoder);
        }
        self._on_output = Some(on_output);
        self._on_error = Some(on_error);
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        if let Some(decoder) = self.decoder.take() {
            let _ = decoder.close();
        }
    }
}

fn draw(canvas_id: &str, frame: &VideoFrame, stats: &VideoStats) {
    stats.decoded.set(stats.decoded.get() + 1);
    let Some(canvas) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(canvas_id))
        .and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok())
    else {
        return;
    };
    let (w, h) = (frame.display_width(), frame.display_height());
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    if let Some(ctx) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    {
        let _ = ctx.draw_image_with_video_frame(frame, 0.0, 0.0);
    }
    let _ = canvas.set_attribute("data-frames", &stats.decoded.get().to_string());
}
