//! One remote audio stream → `AudioDecoder` (Opus) → a small jitter buffer of scheduled
//! `AudioBufferSourceNode`s (target 40 ms, never more than 120 ms behind).
//!
//! The level of what is decoded (RMS of each buffer, after decryption) is kept as the loudest
//! since the driver last took it ([`AudioReceiver::take_level`]): the active speaker follows it.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Uint8Array;
use videocall_types::MediaPacket;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    AudioContext, AudioData, AudioDataCopyToOptions, AudioDecoder, AudioDecoderConfig,
    AudioDecoderInit, EncodedAudioChunk, EncodedAudioChunkInit, EncodedAudioChunkType,
};

use super::log;
use crate::transport::js_error;

const TARGET_DELAY_S: f64 = 0.04;
const MAX_DELAY_S: f64 = 0.12;

pub(crate) struct AudioReceiver {
    decoder: Option<AudioDecoder>,
    pub(crate) packets: Rc<Cell<u64>>,
    /// Audio frames the decoder has produced (and we scheduled for playback).
    pub(crate) decoded: Rc<Cell<u64>>,
    /// The loudest buffer (RMS, 0..1) decoded since the last [`take_level`](Self::take_level).
    level: Rc<Cell<f32>>,
    _on_output: Option<Closure<dyn FnMut(AudioData)>>,
    _on_error: Option<Closure<dyn FnMut(JsValue)>>,
}

impl AudioReceiver {
    pub(crate) fn new(context: Option<AudioContext>) -> Self {
        let next_time = Rc::new(Cell::new(0.0f64));
        let mut receiver = Self {
            decoder: None,
            packets: Rc::new(Cell::new(0)),
            decoded: Rc::new(Cell::new(0)),
            level: Rc::new(Cell::new(0.0)),
            _on_output: None,
            _on_error: None,
        };
        let Some(context) = context else {
            return receiver;
        };
        let decoded = receiver.decoded.clone();
        let level = receiver.level.clone();
        let on_output = Closure::<dyn FnMut(AudioData)>::new(move |data: AudioData| {
            decoded.set(decoded.get() + 1);
            if let Some(rms) = play(&context, &data, &next_time) {
                level.set(level.get().max(rms));
            }
            data.close();
        });
        let on_error = Closure::<dyn FnMut(JsValue)>::new(|e: JsValue| {
            log(&format!("AudioDecoder error: {}", js_error(&e)))
        });
        if let Ok(decoder) = AudioDecoder::new(&AudioDecoderInit::new(
            on_error.as_ref().unchecked_ref(),
            on_output.as_ref().unchecked_ref(),
        )) && decoder
            .configure(&AudioDecoderConfig::new("opus", 1, 48_000))
            .is_ok()
        {
            receiver.decoder = Some(decoder);
        }
        receiver._on_output = Some(on_output);
        receiver._on_error = Some(on_error);
        receiver
    }

    pub(crate) fn handle(&mut self, packet: &MediaPacket) {
        self.packets.set(self.packets.get() + 1);
        let Some(decoder) = &self.decoder else { return };
        if decoder.state() != web_sys::CodecState::Configured {
            return;
        }
        let init = EncodedAudioChunkInit::new(
            &Uint8Array::from(&packet.data[..]),
            0,
            EncodedAudioChunkType::Key,
        );
        init.set_timestamp_f64(packet.timestamp * 1000.0);
        if let Ok(chunk) = EncodedAudioChunk::new(&init) {
            let _ = decoder.decode(&chunk);
        }
    }
}

impl AudioReceiver {
    /// The loudest level decoded since the last call (0 when nothing was: muted, or silent).
    pub(crate) fn take_level(&self) -> f32 {
        self.level.replace(0.0)
    }
}

impl Drop for AudioReceiver {
    fn drop(&mut self) {
        if let Some(decoder) = self.decoder.take() {
            let _ = decoder.close();
        }
    }
}

/// Schedules `data`; its RMS level, when it could be read.
fn play(context: &AudioContext, data: &AudioData, next_time: &Cell<f64>) -> Option<f32> {
    let frames = data.number_of_frames();
    let options = AudioDataCopyToOptions::new(0);
    options.set_format(web_sys::AudioSampleFormat::F32Planar);
    let mut bytes = vec![0u8; frames as usize * 4];
    if data.copy_to_with_u8_slice(&mut bytes, &options).is_err() {
        return None;
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let rms = (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt();
    let Ok(buffer) = context.create_buffer(1, frames, data.sample_rate()) else {
        return Some(rms);
    };
    let _ = buffer.copy_to_channel(&samples, 0);
    let Ok(source) = context.create_buffer_source() else {
        return Some(rms);
    };
    source.set_buffer(Some(&buffer));
    let _ = source.connect_with_audio_node(&context.destination());
    let now = context.current_time();
    let mut at = next_time.get();
    if at < now || at > now + MAX_DELAY_S {
        // Underrun or drift: restart the buffer at the target delay.
        at = now + TARGET_DELAY_S;
    }
    let _ = source.start_with_when(at);
    next_time.set(at + buffer.duration());
    Some(rms)
}
