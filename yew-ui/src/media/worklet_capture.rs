//! Microphone samples where `MediaStreamTrackProcessor` is missing (Firefox): an AudioWorklet
//! collects 20 ms blocks of mono samples and posts them to the page, which wraps each block in an
//! `AudioData` for the same encoder path as the processor.

use js_sys::{Array, Float32Array, Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{
    AudioContext, AudioContextOptions, AudioData, AudioDataInit, AudioSampleFormat,
    AudioWorkletNode, AudioWorkletNodeOptions, Blob, BlobPropertyBag, MediaStream,
    MediaStreamAudioSourceNode, MediaStreamTrack, MessageEvent, Url,
};

use crate::transport::{await_promise, js_error};

/// The worklet: fills a block of `frames` samples of the first input's first channel and
/// transfers it to the page when full.
const PROCESSOR: &str = r#"
class VideocallCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frames = options.processorOptions.frames;
    this.block = new Float32Array(this.frames);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.block[this.filled++] = channel[i];
      if (this.filled === this.frames) {
        this.port.postMessage(this.block, [this.block.buffer]);
        this.block = new Float32Array(this.frames);
        this.filled = 0;
      }
    }
    return true;
  }
}
registerProcessor('videocall-capture', VideocallCapture);
"#;

/// Blocks of this many milliseconds (what the Opus encoder frames).
const BLOCK_MS: f32 = 20.0;

/// A running capture; stops (and closes its audio context) when dropped.
pub(crate) struct WorkletCapture {
    context: AudioContext,
    node: AudioWorkletNode,
    _source: MediaStreamAudioSourceNode,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    /// Sample rate of the blocks (the context's).
    pub(crate) sample_rate: f32,
}

impl WorkletCapture {
    /// Starts capturing `track`; `on_data` gets each 20 ms block as `AudioData` (mono, f32,
    /// timestamps counted in samples from the start).
    pub(crate) async fn start(
        track: &MediaStreamTrack,
        mut on_data: impl FnMut(AudioData) + 'static,
    ) -> Result<Self, String> {
        let stream = MediaStream::new().map_err(|e| js_error(&e))?;
        stream.add_track(track);
        // 48 kHz is what Opus wants; a browser that cannot feed a track into a context at
        // another rate than the device's refuses the source, and then the device's rate it is.
        let (context, source) = match context_at(Some(48_000.0), &stream) {
            Ok(pair) => pair,
            Err(_) => context_at(None, &stream)?,
        };
        let sample_rate = context.sample_rate();
        let frames = (sample_rate * BLOCK_MS / 1000.0).round() as u32;

        let parts = Array::of1(&PROCESSOR.into());
        let bag = BlobPropertyBag::new();
        bag.set_type("text/javascript");
        let blob =
            Blob::new_with_str_sequence_and_options(&parts, &bag).map_err(|e| js_error(&e))?;
        let url = Url::create_object_url_with_blob(&blob).map_err(|e| js_error(&e))?;
        let worklet = context.audio_worklet().map_err(|e| js_error(&e))?;
        let added = await_promise(worklet.add_module(&url).map_err(|e| js_error(&e))?).await;
        let _ = Url::revoke_object_url(&url);
        added?;

        let processor_options = Object::new();
        let _ = Reflect::set(&processor_options, &"frames".into(), &frames.into());
        let options = AudioWorkletNodeOptions::new();
        options.set_number_of_inputs(1);
        options.set_number_of_outputs(0);
        options.set_channel_count(1);
        options.set_processor_options(Some(&processor_options));
        let node = AudioWorkletNode::new_with_options(&context, "videocall-capture", &options)
            .map_err(|e| js_error(&e))?;

        let mut captured: u64 = 0;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Ok(block) = event.data().dyn_into::<Float32Array>() else {
                return;
            };
            let init = AudioDataInit::new(
                &block,
                AudioSampleFormat::F32Planar,
                1,
                block.length(),
                sample_rate,
                0,
            );
            init.set_timestamp_f64(captured as f64 * 1_000_000.0 / f64::from(sample_rate));
            captured += u64::from(block.length());
            if let Ok(data) = AudioData::new(&init) {
                on_data(data);
            }
        });
        let port = node.port().map_err(|e| js_error(&e))?;
        port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        source
            .connect_with_audio_node(&node)
            .map_err(|e| js_error(&e))?;
        // A context made outside a user gesture starts suspended; a capturing page may resume.
        super::autoplay::resume_audio(&context);
        Ok(Self {
            context,
            node,
            _source: source,
            _on_message: on_message,
            sample_rate,
        })
    }
}

impl Drop for WorkletCapture {
    fn drop(&mut self) {
        if let Ok(port) = self.node.port() {
            port.set_onmessage(None);
        }
        let _ = self.node.disconnect();
        let _ = self.context.close();
    }
}

/// An audio context (at `rate`, or the device's) with `stream` as its source.
fn context_at(
    rate: Option<f32>,
    stream: &MediaStream,
) -> Result<(AudioContext, MediaStreamAudioSourceNode), String> {
    let options = AudioContextOptions::new();
    if let Some(rate) = rate {
        options.set_sample_rate(rate);
    }
    let context = AudioContext::new_with_context_options(&options).map_err(|e| js_error(&e))?;
    match context.create_media_stream_source(stream) {
        Ok(source) => Ok((context, source)),
        Err(e) => {
            let _ = context.close();
            Err(js_error(&e))
        }
    }
}
