//! WebCodecs glue: camera/microphone/screen capture, encoders that turn frames into
//! `MediaPacket`s, and per-peer decoders that draw to canvases and play audio.

pub(crate) mod audio_receiver;
pub(crate) mod audio_sender;
pub(crate) mod autoplay;
pub(crate) mod devices;
pub(crate) mod video_receiver;
pub(crate) mod video_sender;
mod worklet_capture;

use std::rc::Rc;

use videocall_types::{MediaPacket, StreamKey, StreamKind, VideoCodec};

/// Where encoded packets go (the meeting client sends them).
pub(crate) type PacketSink = Rc<dyn Fn(MediaPacket)>;

/// The id of the canvas a stream's decoder draws into (its tile holds it).
pub(crate) fn canvas_id(stream: StreamKey) -> String {
    match stream.kind {
        StreamKind::Camera => format!("video-{}", stream.session),
        StreamKind::Screen => format!("screen-{}", stream.session),
    }
}

/// Milliseconds since the page loaded.
pub(crate) fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or_default()
}

/// The WebCodecs codec string for a wire codec.
pub(crate) fn codec_string(codec: i32) -> &'static str {
    match VideoCodec::try_from(codec) {
        Ok(VideoCodec::Vp8) => "vp8",
        Ok(VideoCodec::H264Baseline) => "avc1.42001f",
        Ok(VideoCodec::Av1) => "av01.0.04M.08",
        // Unspecified means the original project's default, VP9 profile 0.
        _ => "vp09.00.10.08",
    }
}

/// Reads a whole chunk of video into bytes.
pub(crate) fn chunk_bytes(chunk: &web_sys::EncodedVideoChunk) -> Vec<u8> {
    let mut data = vec![0u8; chunk.byte_length() as usize];
    let _ = chunk.copy_to_with_u8_slice(&mut data);
    data
}

/// Logs to the browser console.
pub(crate) fn log(text: &str) {
    web_sys::console::log_1(&text.into());
}
