//! Microphone → `AudioEncoder` (Opus, 48 kHz mono, 20 ms) → `MediaPacket`s, with a level meter
//! (for the pre-join meter and the speaking indicator).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use videocall_types::{AudioMetadata, MediaPacket, MediaType};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    AudioData, AudioDataCopyToOptions, AudioEncoder, AudioEncoderConfig, AudioEncoderInit,
    EncodedAudioChunk, MediaStreamTrack, MediaStreamTrackProcessor, MediaStreamTrackProcessorInit,
    ReadableStreamDefaultReader,
};

use super::worklet_capture::WorkletCapture;
use super::{PacketSink, log, now_ms};
use crate::transport::{js_error, read_chunk};

/// Level (RMS, 0..1) above which we count as speaking.
const SPEAKING_LEVEL: f32 = 0.02;

/// A running microphone encoder; stops when dropped.
pub(crate) struct AudioSender {
    stopped: Rc<Cell<bool>>,
    /// Last measured level (RMS of the last buffer).
    pub(crate) level: Rc<Cell<f32>>,
    /// Sending (false while muted: the meter keeps working).
    pub(crate) enabled: Rc<Cell<bool>>,
}

impl AudioSender {
    pub(crate) fn start(track: MediaStreamTrack, sink: Option<PacketSink>) -> Self {
        let sender = Self {
            stopped: Rc::new(Cell::new(false)),
            level: Rc::new(Cell::new(0.0)),
            enabled: Rc::new(Cell::new(sink.is_some())),
        };
        let (stopped, level, enabled) = (
            sender.stopped.clone(),
            sender.level.clone(),
            sender.enabled.clone(),
        );
        spawn_local(async move {
            if let Err(e) = run(track, sink, stopped, level, enabled).await {
                log(&format!("audio encoder stopped: {e}"));
            }
        });
        sender
    }

    pub(crate) fn speaking(&self) -> bool {
        self.enabled.get() && self.level.get() > SPEAKING_LEVEL
    }
}

impl Drop for AudioSender {
    fn drop(&mut self) {
        self.stopped.set(true);
    }
}

async fn run(
    track: MediaStreamTrack,
    sink: Option<PacketSink>,
    stopped: Rc<Cell<bool>>,
    level: Rc<Cell<f32>>,
    enabled: Rc<Cell<bool>>,
) -> Result<(), String> {
    let has_processor =
        Reflect::has(&js_sys::global(), &"MediaStreamTrackProcessor".into()).unwrap_or(false);
    if !has_processor {
        // Firefox: an AudioWorklet hands us the samples instead.
        let encoder: Rc<RefCell<Option<AudioEncoder>>> = Rc::new(RefCell::new(None));
        let handle = {
            let encoder = encoder.clone();
            let mut samples = Vec::new();
            move |data: AudioData| {
                take_block(&data, &mut samples, &level, &encoder.borrow(), &enabled);
            }
        };
        let capture = WorkletCapture::start(&track, handle).await?;
        if let Some(sink) = &sink {
            *encoder.borrow_mut() = Some(opus_encoder(sink.clone(), capture.sample_rate)?);
        }
        log(&format!(
            "microphone captured through an AudioWorklet at {} Hz",
            capture.sample_rate
        ));
        while !stopped.get() && track.ready_state() == web_sys::MediaStreamTrackState::Live {
            gloo_timers::future::TimeoutFuture::new(200).await;
        }
        drop(capture);
        if let Some(encoder) = encoder.borrow_mut().take() {
            let _ = encoder.close();
        }
        return Ok(());
    }
    let encoder = match &sink {
        Some(sink) => Some(opus_encoder(sink.clone(), 48_000.0)?),
        None => None,
    };
    let processor = MediaStreamTrackProcessor::new(&MediaStreamTrackProcessorInit::new(&track))
        .map_err(|e| js_error(&e))?;
    let reader: ReadableStreamDefaultReader = processor.readable().get_reader().unchecked_into();
    let mut samples = Vec::new();
    while !stopped.get() {
        let Some(data) = read_chunk(&reader).await else {
            break;
        };
        take_block(
            &data.unchecked_into(),
            &mut samples,
            &level,
            &encoder,
            &enabled,
        );
    }
    let _ = reader.cancel();
    if let Some(encoder) = encoder {
        let _ = encoder.close();
    }
    Ok(())
}

/// One block of microphone samples: measures its level, encodes it unless muted, closes it.
fn take_block(
    data: &AudioData,
    samples: &mut Vec<f32>,
    level: &Cell<f32>,
    encoder: &Option<AudioEncoder>,
    enabled: &Cell<bool>,
) {
    let frames = data.number_of_frames() as usize;
    samples.resize(frames, 0.0f32);
    let options = AudioDataCopyToOptions::new(0);
    options.set_format(web_sys::AudioSampleFormat::F32Planar);
    let mut bytes = vec![0u8; frames * 4];
    if data.copy_to_with_u8_slice(&mut bytes, &options).is_ok() {
        for (i, chunk) in bytes.chunks_exact(4).enumerate() {
            samples[i] = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let rms = (samples.iter().map(|s| s * s).sum::<f32>() / frames.max(1) as f32).sqrt();
        level.set(rms);
    }
    if let Some(encoder) = encoder
        && enabled.get()
        && encoder.state() == web_sys::CodecState::Configured
    {
        let _ = encoder.encode(data);
    }
    data.close();
}

/// An Opus encoder (mono, 32 kbit/s) for samples at `sample_rate`, handing each packet to
/// `sink` as a `MediaPacket`.
fn opus_encoder(sink: PacketSink, sample_rate: f32) -> Result<AudioEncoder, String> {
    let sequence = Cell::new(0u64);
    let on_output = Closure::<dyn FnMut(EncodedAudioChunk, JsValue)>::new(
        move |chunk: EncodedAudioChunk, _m: JsValue| {
            let mut data = vec![0u8; chunk.byte_length() as usize];
            let _ = chunk.copy_to_with_u8_slice(&mut data);
            let seq = sequence.get();
            sequence.set(seq + 1);
            sink(MediaPacket {
                media_type: MediaType::Audio as i32,
                data: data.into(),
                frame_type: "key".into(),
                timestamp: now_ms(),
                duration: chunk.duration().unwrap_or(20_000.0) / 1000.0,
                audio_metadata: Some(AudioMetadata {
                    audio_format: "opus".into(),
                    audio_number_of_channels: 1,
                    audio_number_of_frames: 960,
                    audio_sample_rate: 48_000.0,
                    sequence: seq,
                }),
                ..Default::default()
            });
        },
    );
    let on_error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
        log(&format!("AudioEncoder error: {}", js_error(&e)))
    });
    let encoder = AudioEncoder::new(&AudioEncoderInit::new(
        on_error.as_ref().unchecked_ref(),
        on_output.as_ref().unchecked_ref(),
    ))
    .map_err(|e| js_error(&e))?;
    // Opus decodes at 48 kHz whatever rate it was fed, so receivers need not know this one.
    let config = AudioEncoderConfig::new("opus", 1, sample_rate as u32);
    config.set_bitrate(32_000);
    encoder.configure(&config).map_err(|e| js_error(&e))?;
    on_output.forget();
    on_error.forget();
    Ok(encoder)
}
