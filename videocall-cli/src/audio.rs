//! Audio as the browser sends it: Opus, 48 kHz mono, 20 ms frames (960 samples), one
//! `MediaPacket` per frame. The sources `stream` reads (a test tone, a WAV file or an ALSA
//! device through `arecord`) and the Opus
//! encoder and decoder (libopus through the `opus` crate, built from source and linked
//! statically).

use std::f32::consts::TAU;
use std::path::Path;

use bytes::Bytes;
use videocall_types::{AudioMetadata, MediaPacket, MediaType};

/// Samples per second of every audio stream.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 960;
/// One frame's duration in milliseconds.
pub const FRAME_MS: f64 = 20.0;
/// Opus bitrate, the browser's (`AudioEncoderConfig.bitrate`).
pub const BITRATE: i32 = 32_000;
/// Longest `--audio-file` read (it is held in memory, and looped).
pub const MAX_FILE_SECONDS: u32 = 600;
/// Largest Opus packet we produce (libopus' recommended maximum).
const MAX_PACKET: usize = 4000;
/// Most samples one Opus packet may decode to (120 ms at 48 kHz).
pub const MAX_DECODED: usize = 5760;

/// What went wrong with audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The WAV file could not be read.
    #[error("cannot read {path}: {error}")]
    Wav {
        /// The file.
        path: String,
        /// Why.
        error: hound::Error,
    },
    /// The ALSA device cannot be captured.
    #[error("--audio-device {device}: {why}")]
    Device {
        /// The device.
        device: String,
        /// Why.
        why: String,
    },
    /// The WAV file is not usable.
    #[error("{path}: {why}")]
    BadFile {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Where `stream` takes its audio from.
#[derive(Debug)]
pub enum AudioSource {
    /// A sine at `hz`, amplitude 0.3.
    Tone {
        /// Frequency.
        hz: f32,
        /// Samples produced so far.
        position: u64,
    },
    /// A WAV file, as 48 kHz mono, looped.
    File {
        /// The samples.
        samples: Vec<f32>,
        /// Next sample.
        position: usize,
    },
    /// An ALSA capture device, read through `arecord`.
    Device {
        /// The ALSA device name.
        device: String,
        /// The running `arecord`, started by the first frame asked for.
        capture: Option<Capture>,
    },
}

/// `arecord -D <device>` writing 48 kHz mono 16-bit samples to us. A process rather than a
/// libasound binding: nothing to link (the Raspberry Pi cross build stays free of arm64
/// libraries), and Raspberry Pi OS ships alsa-utils. Killed when dropped.
#[derive(Debug)]
pub struct Capture {
    device: String,
    child: std::process::Child,
    stdout: std::process::ChildStdout,
}

impl Capture {
    fn start(device: &str) -> Result<Self, AudioError> {
        use std::process::{Command, Stdio};
        let fail = |why: String| AudioError::Device {
            device: device.to_owned(),
            why,
        };
        let mut child = Command::new("arecord")
            .args([
                "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-c", "1", "-r", "48000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run arecord (Debian: apt-get install alsa-utils): {e}"
                ))
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("arecord has no stdout".into()))?;
        Ok(Self {
            device: device.to_owned(),
            child,
            stdout,
        })
    }

    fn read_frame(&mut self) -> Result<[f32; FRAME_SAMPLES], AudioError> {
        use std::io::Read;
        let mut bytes = [0u8; FRAME_SAMPLES * 2];
        if let Err(e) = self.stdout.read_exact(&mut bytes) {
            // arecord stopped: its stderr says why (no such device, busy, ...).
            let _ = self.child.kill();
            let mut why = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = stderr.read_to_string(&mut why);
            }
            let why = why.lines().last().unwrap_or_default().trim().to_owned();
            return Err(AudioError::Device {
                device: self.device.clone(),
                why: if why.is_empty() {
                    format!("arecord stopped: {e}")
                } else {
                    why
                },
            });
        }
        let mut frame = [0.0f32; FRAME_SAMPLES];
        for (sample, pair) in frame.iter_mut().zip(bytes.chunks_exact(2)) {
            *sample = f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0;
        }
        Ok(frame)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AudioSource {
    /// A sine tone at `hz`.
    pub fn tone(hz: f32) -> Self {
        Self::Tone { hz, position: 0 }
    }

    /// A WAV file (any rate, any channel count, integer or float samples), mixed down to mono
    /// and resampled to 48 kHz; at most [`MAX_FILE_SECONDS`].
    pub fn file(path: &Path) -> Result<Self, AudioError> {
        let name = path.display().to_string();
        let wav_error = |error| AudioError::Wav {
            path: name.clone(),
            error,
        };
        let bad = |why: String| AudioError::BadFile {
            path: name.clone(),
            why,
        };
        let reader = hound::WavReader::open(path).map_err(wav_error)?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(bad("no channels or no sample rate".into()));
        }
        let seconds = reader.duration() / spec.sample_rate;
        if seconds > MAX_FILE_SECONDS {
            return Err(bad(format!(
                "{seconds} s long; at most {MAX_FILE_SECONDS} s is read"
            )));
        }
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .into_samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(wav_error)?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|s| s as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(wav_error)?
            }
        };
        let channels = usize::from(spec.channels);
        let mono: Vec<f32> = interleaved
            .chunks_exact(channels)
            .map(|c| c.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(bad("no samples".into()));
        }
        Ok(Self::File {
            samples: resample(&mono, spec.sample_rate, SAMPLE_RATE),
            position: 0,
        })
    }

    /// Captures from ALSA `device` (e.g. `default`, `hw:1,0`, `plughw:1`) through `arecord`
    /// (Debian/Raspberry Pi OS: alsa-utils). One frame is captured here, so a missing `arecord`
    /// or device is an error now, naming the device and arecord's reason; capture proper starts
    /// with the first frame asked for (nothing queues up in the pipe while joining).
    pub fn device(device: &str) -> Result<Self, AudioError> {
        Capture::start(device)?.read_frame()?;
        Ok(Self::Device {
            device: device.to_owned(),
            capture: None,
        })
    }

    /// The next 20 ms (from a device: blocks until it has them).
    pub fn next_frame(&mut self) -> Result<[f32; FRAME_SAMPLES], AudioError> {
        let mut frame = [0.0f32; FRAME_SAMPLES];
        match self {
            Self::Tone { hz, position } => {
                for sample in &mut frame {
                    // The phase from the position modulo one period keeps f32 precise.
                    let period = SAMPLE_RATE as f32 / *hz;
                    let t = (*position as f32) % period / period;
                    *sample = 0.3 * (TAU * t).sin();
                    *position += 1;
                }
            }
            Self::File { samples, position } => {
                for sample in &mut frame {
                    *sample = samples[*position];
                    *position = (*position + 1) % samples.len();
                }
            }
            Self::Device { device, capture } => {
                let capture = match capture {
                    Some(capture) => capture,
                    None => capture.insert(Capture::start(device)?),
                };
                return capture.read_frame();
            }
        }
        Ok(frame)
    }
}

/// Linear interpolation from `from` Hz to `to` Hz (speech and test signals; no filter).
fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * u64::from(to) / u64::from(from)).max(1) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let at = i as f64 * step;
            let i0 = at.floor() as usize;
            let frac = (at - i0 as f64) as f32;
            let a = samples[i0.min(samples.len() - 1)];
            let b = samples[(i0 + 1).min(samples.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// Opus encoder at the browser's settings.
#[allow(missing_debug_implementations)] // libopus state
pub struct OpusEncoder {
    encoder: opus::Encoder,
    sequence: u64,
}

impl OpusEncoder {
    /// 48 kHz mono, VoIP, 32 kbit/s.
    pub fn new() -> Result<Self, AudioError> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(BITRATE))?;
        Ok(Self {
            encoder,
            sequence: 0,
        })
    }

    /// One 20 ms frame as the browser's `AudioSender` packs it (`timestamp` in ms).
    pub fn encode(
        &mut self,
        frame: &[f32; FRAME_SAMPLES],
        timestamp: f64,
    ) -> Result<MediaPacket, AudioError> {
        let mut out = [0u8; MAX_PACKET];
        let len = self.encoder.encode_float(frame, &mut out)?;
        let sequence = self.sequence;
        self.sequence += 1;
        Ok(audio_packet(
            Bytes::copy_from_slice(&out[..len]),
            timestamp,
            sequence,
        ))
    }
}

/// An Opus frame as a `MediaPacket`, with the fields the browser sets.
pub fn audio_packet(data: Bytes, timestamp: f64, sequence: u64) -> MediaPacket {
    MediaPacket {
        media_type: MediaType::Audio as i32,
        data,
        frame_type: "key".into(),
        timestamp,
        duration: FRAME_MS,
        audio_metadata: Some(AudioMetadata {
            audio_format: "opus".into(),
            audio_number_of_channels: 1,
            audio_number_of_frames: FRAME_SAMPLES as u32,
            audio_sample_rate: SAMPLE_RATE as f32,
            sequence,
        }),
        ..Default::default()
    }
}

/// Opus decoder for one stream (48 kHz mono).
#[allow(missing_debug_implementations)] // libopus state
pub struct OpusDecoder {
    decoder: opus::Decoder,
}

impl OpusDecoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, AudioError> {
        Ok(Self {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet into `out` (cleared first); a malformed packet is an error.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<(), AudioError> {
        out.clear();
        out.resize(MAX_DECODED, 0.0);
        match self.decoder.decode_float(packet, out, false) {
            Ok(n) => {
                out.truncate(n);
                Ok(())
            }
            Err(e) => {
                out.clear();
                Err(e.into())
            }
        }
    }
}

/// The strength of `hz` in `samples` (Goertzel), normalised by the length: for a sine of
/// amplitude `a` at `hz`, about `a / 2`.
pub fn goertzel(samples: &[f32], hz: f32) -> f32 {
    let w = TAU * hz / SAMPLE_RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power.max(0.0).sqrt() / samples.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tone_decodes_to_the_same_frequency() {
        let mut source = AudioSource::tone(440.0);
        let mut encoder = OpusEncoder::new().expect("encoder");
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut decoded = Vec::new();
        let mut frame = Vec::new();
        for n in 0..50u64 {
            let packet = encoder
                .encode(&source.next_frame().expect("a tone"), n as f64 * FRAME_MS)
                .expect("encodes");
            let meta = packet.audio_metadata.clone().expect("audio metadata");
            assert_eq!((meta.sequence, meta.audio_format.as_str()), (n, "opus"));
            assert!(packet.data.len() < 200, "32 kbit/s is 80 bytes a frame");
            decoder.decode(&packet.data, &mut frame).expect("decodes");
            assert_eq!(frame.len(), FRAME_SAMPLES);
            decoded.extend_from_slice(&frame);
        }
        let tail = &decoded[decoded.len() / 2..];
        let at_tone = goertzel(tail, 440.0);
        let elsewhere = goertzel(tail, 1000.0);
        assert!(
            at_tone > 0.1 && at_tone > 20.0 * elsewhere,
            "{at_tone} {elsewhere}"
        );
    }

    #[test]
    fn a_malformed_packet_is_an_error_not_a_panic() {
        let mut decoder = OpusDecoder::new().expect("decoder");
        let mut out = Vec::new();
        // TOC code 3 (arbitrary frame count) with a count byte asking for 0 frames.
        assert!(decoder.decode(&[0x03 | 0xf8, 0x00], &mut out).is_err());
        assert!(out.is_empty());
        // Still usable afterwards.
        let mut encoder = OpusEncoder::new().expect("encoder");
        let packet = encoder.encode(&[0.0; FRAME_SAMPLES], 0.0).expect("encodes");
        decoder.decode(&packet.data, &mut out).expect("decodes");
        assert_eq!(out.len(), FRAME_SAMPLES);
    }

    #[test]
    fn a_stereo_44k_wav_becomes_48k_mono() {
        let dir = std::env::temp_dir().join(format!("audio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tone.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("created");
        for i in 0..44_100 {
            let v = (0.5 * (TAU * 600.0 * i as f32 / 44_100.0).sin() * 32767.0) as i16;
            writer.write_sample(v).expect("written");
            writer.write_sample(v).expect("written");
        }
        writer.finalize().expect("finalized");
        let mut source = AudioSource::file(&path).expect("readable");
        let AudioSource::File { samples, .. } = &source else {
            panic!("a file source");
        };
        assert!(
            (samples.len() as i64 - 48_000).abs() <= 1,
            "{}",
            samples.len()
        );
        let frame = source.next_frame().expect("a file");
        assert!(goertzel(&frame, 600.0) > 0.2, "{}", goertzel(&frame, 600.0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
