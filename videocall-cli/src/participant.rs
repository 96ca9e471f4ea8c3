//! One participant's recording: `<user>.y4m` (decoded pictures), `<user>.wav` (decoded audio,
//! gaps filled with silence) and `<user>.webm` (VP8/VP9 video as received, or H.264 re-encoded
//! to VP8; Opus as received), timestamps from the sender's clock.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use videocall_client::reorder::Reorder;
use videocall_types::{MediaPacket, SessionId, VideoCodec};

use crate::audio::{FRAME_MS, OpusDecoder, SAMPLE_RATE};
use crate::codec::H264Decoder;
use crate::pattern::I420;
use crate::timeline::AudioTimeline;
use crate::webm::{Track, WebmWriter};
use crate::y4m::Y4mWriter;

/// Audio frames held while a gap may still fill (100 ms): WebTransport delivers each frame on
/// its own stream, so one may overtake another.
pub const AUDIO_REORDER_FRAMES: usize = 5;

/// A video decoder for the codecs this build handles.
#[allow(missing_debug_implementations)] // openh264's decoder is not Debug
enum VideoDecoder {
    H264(H264Decoder),
    #[cfg(feature = "vpx")]
    Vpx(crate::vpx::VpxDecoder, crate::vpx::VpxCodec),
}

/// Whether this build decodes `codec` (the wire enum value).
pub fn decodable(codec: i32) -> bool {
    codec == VideoCodec::H264Baseline as i32
        || (cfg!(feature = "vpx") && vpx_codec(codec).is_some())
}

#[cfg(feature = "vpx")]
fn vpx_codec(codec: i32) -> Option<crate::vpx::VpxCodec> {
    use crate::vpx::VpxCodec;
    match VideoCodec::try_from(codec) {
        Ok(VideoCodec::Vp8) => Some(VpxCodec::Vp8),
        Ok(VideoCodec::Vp9Profile0Level108bit) => Some(VpxCodec::Vp9),
        _ => None,
    }
}

#[cfg(not(feature = "vpx"))]
fn vpx_codec(_codec: i32) -> Option<()> {
    None
}

impl VideoDecoder {
    fn new(codec: i32) -> anyhow::Result<Self> {
        #[cfg(feature = "vpx")]
        if let Some(vpx) = vpx_codec(codec) {
            return Ok(Self::Vpx(crate::vpx::VpxDecoder::new(vpx)?, vpx));
        }
        let _ = codec;
        Ok(Self::H264(H264Decoder::new()?))
    }

    fn decode(&mut self, data: &[u8]) -> anyhow::Result<Option<I420>> {
        match self {
            Self::H264(decoder) => Ok(decoder.decode(data)?),
            #[cfg(feature = "vpx")]
            Self::Vpx(decoder, _) => Ok(decoder.decode(data)?),
        }
    }
}

/// One participant's files and decoders.
#[allow(missing_debug_implementations)] // holds codec state
pub struct Participant {
    /// Their current session (a reconnection starts a new one).
    pub session: SessionId,
    base: PathBuf,
    /// Sender timestamp (ms) that is time 0 of the WebM file.
    epoch_ms: Option<f64>,
    codec: i32,
    decoder: Option<VideoDecoder>,
    write_y4m: bool,
    y4m: Option<Y4mWriter>,
    /// Size of the first picture (the `.y4m`'s).
    first_size: Option<(usize, usize)>,
    webm: Option<WebmWriter>,
    #[cfg(feature = "vpx")]
    reencoder: Option<crate::vpx::Vp8Encoder>,
    opus: Option<OpusDecoder>,
    audio_order: Reorder<MediaPacket>,
    wav: Option<hound::WavWriter<BufWriter<File>>>,
    /// Audio placement.
    pub timeline: AudioTimeline,
    audio_buf: Vec<f32>,
    /// Pictures decoded (of the first size: those in the `.y4m`).
    pub frames: u64,
    /// Pictures of another size than the first (not in the `.y4m`).
    pub resized: u64,
    /// Video frames that failed to decode.
    pub errors: u64,
    /// Video frames of another codec than the first (not in the `.webm`).
    pub codec_changes: u64,
    /// Audio frames decoded.
    pub audio_frames: u64,
    /// Audio frames that failed to decode.
    pub audio_errors: u64,
}

/// What one decoded video frame produced, for the caller's report and the mix.
#[derive(Debug)]
pub struct Decoded {
    /// The picture.
    pub picture: I420,
    /// Of the first picture's size (false: not in the `.y4m`).
    pub recorded: bool,
    /// The participant's first picture.
    pub created: bool,
}

impl Participant {
    /// A participant recorded under `dir/<file_name>.*` (the `.y4m` only if `write_y4m`).
    pub fn new(dir: &Path, file_name: &str, session: SessionId, write_y4m: bool) -> Self {
        Self {
            session,
            base: dir.join(file_name),
            epoch_ms: None,
            codec: -1,
            decoder: None,
            write_y4m,
            y4m: None,
            first_size: None,
            webm: None,
            #[cfg(feature = "vpx")]
            reencoder: None,
            opus: None,
            audio_order: Reorder::new(AUDIO_REORDER_FRAMES),
            wav: None,
            timeline: AudioTimeline::default(),
            audio_buf: Vec::new(),
            frames: 0,
            resized: 0,
            errors: 0,
            codec_changes: 0,
            audio_frames: 0,
            audio_errors: 0,
        }
    }

    /// `<base>.<ext>`.
    pub fn path(&self, ext: &str) -> PathBuf {
        self.base.with_extension(ext)
    }

    /// The participant reconnected: decoders start again (a new stream starts at a keyframe;
    /// audio sequence numbers start again), the files go on.
    pub fn new_session(&mut self, session: SessionId) {
        self.session = session;
        self.decoder = None;
        self.opus = None;
        self.audio_order = Reorder::new(AUDIO_REORDER_FRAMES);
        self.timeline.restart_sequence();
    }

    /// Milliseconds since the first packet (of either kind) for the WebM file.
    fn webm_ms(&mut self, timestamp: f64) -> i64 {
        let timestamp = if timestamp.is_finite() {
            timestamp
        } else {
            0.0
        };
        let epoch = *self.epoch_ms.get_or_insert(timestamp);
        (timestamp - epoch).clamp(-1e12, 1e12) as i64
    }

    fn webm(&mut self) -> anyhow::Result<&mut WebmWriter> {
        if self.webm.is_none() {
            let path = self.path("webm");
            self.webm = Some(
                WebmWriter::create(&path)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
            );
        }
        Ok(self.webm.as_mut().expect("created just above"))
    }

    /// Decodes one video frame (in stream order) and records it. `Err` for a frame that does
    /// not decode (the caller waits for the next keyframe); `Ok(None)` when no picture came out.
    pub fn video(&mut self, media: &MediaPacket, codec: i32) -> anyhow::Result<Option<Decoded>> {
        if self.decoder.is_none() || codec != self.codec {
            if self.codec >= 0 && codec != self.codec {
                self.codec_changes += 1;
            }
            self.decoder = Some(VideoDecoder::new(codec)?);
            self.codec = codec;
        }
        let decoder = self.decoder.as_mut().expect("created just above");
        let picture = match decoder.decode(&media.data) {
            Ok(Some(picture)) => picture,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.errors += 1;
                return Err(e);
            }
        };
        // Without libvpx (the `vpx` feature) the WebM file holds the audio only.
        #[cfg(feature = "vpx")]
        {
            let key = media.frame_type == "key";
            let ms = self.webm_ms(media.timestamp);
            let duration = media.duration.clamp(1.0, 1000.0) as i64;
            match &self.decoder {
                Some(VideoDecoder::Vpx(_, vpx)) => {
                    let id = vpx.matroska_id();
                    let (w, h) = (picture.width, picture.height);
                    let webm = self.webm()?;
                    webm.set_video(id, w, h);
                    webm.write(Track::Video, ms, duration, key, &media.data)?;
                }
                _ => self.reencode(&picture, ms, duration)?,
            }
        }
        let size = (picture.width, picture.height);
        let created = self.first_size.is_none();
        let first = *self.first_size.get_or_insert(size);
        if created && self.write_y4m {
            let path = self.path("y4m");
            self.y4m = Some(
                Y4mWriter::create(&path, size.0, size.1, 30)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
            );
        }
        let recorded = first == size;
        if recorded {
            if let Some(y4m) = &mut self.y4m {
                y4m.write(&picture)?;
            }
            self.frames += 1;
        } else {
            // One .y4m holds one size; the WebM file keeps every frame.
            self.resized += 1;
        }
        Ok(Some(Decoded {
            picture,
            recorded,
            created,
        }))
    }

    /// H.264 has no place in WebM: the decoded picture is encoded again as VP8 (one realtime
    /// encode per H.264 participant; a new encoder, from a keyframe, when the size changes).
    #[cfg(feature = "vpx")]
    fn reencode(&mut self, picture: &I420, ms: i64, duration: i64) -> anyhow::Result<()> {
        use crate::vpx::Vp8Encoder;
        let size = (picture.width, picture.height);
        let fresh = self.reencoder.as_ref().is_none_or(|e| e.size != size);
        if fresh {
            self.reencoder = Some(Vp8Encoder::new(size.0, size.1, 1000, 300)?);
        }
        let encoder = self.reencoder.as_mut().expect("created just above");
        let frames = encoder.encode(picture, ms, duration as u32, fresh)?;
        let webm = self.webm()?;
        webm.set_video("V_VP8", size.0, size.1);
        for frame in frames {
            webm.write(Track::Video, ms, duration, frame.key, &frame.data)?;
        }
        Ok(())
    }

    /// Takes one Opus frame; those now in order (a frame may wait for one that overtook it,
    /// [`AUDIO_REORDER_FRAMES`] at most) are decoded and recorded: the `.wav` (with silence for
    /// gaps) and the `.webm`. `mix` gets each decoded frame after the silence before it.
    /// Returns (sequence, silence) of each frame recorded; malformed, late or repeated frames
    /// are counted and left out.
    pub fn audio(
        &mut self,
        media: &MediaPacket,
        mut mix: impl FnMut(u64, &[f32]),
    ) -> anyhow::Result<Vec<(u64, u64)>> {
        let sequence = media
            .audio_metadata
            .as_ref()
            .map_or(self.audio_frames, |m| m.sequence);
        let late = self.audio_order.late;
        let ready = self.audio_order.handle_frame(sequence, true, media.clone());
        self.timeline.late += self.audio_order.late - late;
        let mut recorded = Vec::new();
        for media in ready {
            if let Some(silence) = self.record_audio(&media)? {
                mix(silence, &self.audio_buf);
                let sequence = media.audio_metadata.as_ref().map_or(0, |m| m.sequence);
                recorded.push((sequence, silence));
            }
        }
        Ok(recorded)
    }

    fn record_audio(&mut self, media: &MediaPacket) -> anyhow::Result<Option<u64>> {
        if self.opus.is_none() {
            self.opus = Some(OpusDecoder::new()?);
        }
        let opus = self.opus.as_mut().expect("created just above");
        if opus.decode(&media.data, &mut self.audio_buf).is_err() || self.audio_buf.is_empty() {
            self.audio_errors += 1;
            return Ok(None);
        }
        let sequence = media
            .audio_metadata
            .as_ref()
            .map_or(self.audio_frames, |m| m.sequence);
        let Some(silence) = self
            .timeline
            .place(media.timestamp, sequence, self.audio_buf.len())
        else {
            return Ok(None);
        };
        self.audio_frames += 1;
        if self.wav.is_none() {
            let path = self.path("wav");
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: SAMPLE_RATE,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            self.wav = Some(
                hound::WavWriter::create(&path, spec)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
            );
        }
        let wav = self.wav.as_mut().expect("created just above");
        for _ in 0..silence {
            wav.write_sample(0i16)?;
        }
        for &s in &self.audio_buf {
            wav.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)?;
        }
        let ms = self.webm_ms(media.timestamp);
        self.webm()?
            .write(Track::Audio, ms, FRAME_MS as i64, true, &media.data)?;
        Ok(Some(silence))
    }

    /// Closes the files; returns the WebM duration in ms.
    pub fn finish(&mut self) -> anyhow::Result<Option<i64>> {
        if let Some(y4m) = &mut self.y4m {
            y4m.finish()?;
        }
        if let Some(wav) = self.wav.take() {
            wav.finalize()?;
        }
        Ok(match self.webm.take() {
            Some(webm) => {
                let duration = webm.duration_ms();
                webm.finish()?;
                Some(duration)
            }
            None => None,
        })
    }
}

#[cfg(all(test, feature = "vpx"))]
mod tests {
    use super::*;
    use crate::codec::{EncoderSettings, H264Encoder};
    use crate::pattern;

    fn h264_frames(width: usize, height: usize, count: u64, from_ms: f64) -> Vec<MediaPacket> {
        let settings = EncoderSettings {
            bitrate_kbps: 500,
            fps: 30,
            keyframe_interval: 0,
        };
        let mut encoder = H264Encoder::new(settings).expect("encoder");
        (0..count)
            .map(|n| {
                let picture = pattern::frame(width, height, n).expect("valid size");
                let frame = encoder
                    .encode(&picture, n == 0)
                    .expect("encodes")
                    .expect("a frame");
                MediaPacket {
                    data: frame.data.into(),
                    frame_type: if frame.key { "key" } else { "delta" }.into(),
                    timestamp: from_ms + n as f64 * 33.0,
                    duration: 33.0,
                    ..Default::default()
                }
            })
            .collect()
    }

    #[test]
    fn a_participant_changing_resolution_keeps_recording_and_garbage_is_counted() {
        let dir = std::env::temp_dir().join(format!("participant-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut participant = Participant::new(&dir, "pi", SessionId::new(1, 1), true);
        let h264 = VideoCodec::H264Baseline as i32;
        let (small, large) = (
            h264_frames(320, 240, 5, 0.0),
            h264_frames(640, 480, 5, 165.0),
        );
        for frame in small.iter().chain(&large) {
            participant.video(frame, h264).expect("decodes");
        }
        assert_eq!((participant.frames, participant.resized), (5, 5));
        // Garbage VP8 after H.264: a codec change, a decode error, no panic.
        let garbage = MediaPacket {
            data: vec![0xff; 40].into(),
            frame_type: "key".into(),
            ..Default::default()
        };
        assert!(participant.video(&garbage, VideoCodec::Vp8 as i32).is_err());
        assert_eq!((participant.codec_changes, participant.errors), (1, 1));
        let webm = participant.finish().expect("closed");
        assert_eq!(webm, Some(10 * 33), "the WebM spans the ten frames");
        let y4m = crate::y4m::read_all(&participant.path("y4m")).expect("readable");
        assert_eq!(y4m.len(), 5);
        let _ = std::fs::remove_dir_all(dir);
    }
}
