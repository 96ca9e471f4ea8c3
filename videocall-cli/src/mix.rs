//! `receive --mix`: one WebM file of the whole meeting on the recorder's clock. Video: a grid of
//! the participants' latest pictures (first come, first placed; at most [`MAX_TILES`]), encoded
//! as VP8 at a fixed size and rate. Audio: every participant's decoded audio summed, encoded as
//! Opus, 20 ms at a time. Each participant's audio waits in a queue of at most one second
//! (older samples are dropped) that starts playing once it holds 40 ms, which absorbs jitter.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use videocall_types::UserId;

use crate::audio::{FRAME_MS, FRAME_SAMPLES, OpusEncoder, SAMPLE_RATE};
use crate::pattern::I420;
use crate::vpx::Vp8Encoder;
use crate::webm::{Track, WebmWriter};

/// Most participants shown in the grid (a 4×4 grid); later ones are heard, not seen.
pub const MAX_TILES: usize = 16;
/// Most participants mixed into the audio.
pub const MAX_VOICES: usize = 64;
/// A participant's audio queue holds at most this many samples (1 s).
const MAX_QUEUE: usize = SAMPLE_RATE as usize;
/// A queue starts playing once it holds this many samples (40 ms).
const PRIME: usize = 2 * FRAME_SAMPLES;
/// Output frames produced in one `poll` at most (a stalled machine catches up gradually).
const MAX_CATCH_UP: u64 = 25;

#[derive(Debug, Default)]
struct Voice {
    queue: VecDeque<f32>,
    playing: bool,
    dropped: u64,
}

/// The meeting's mixed recording.
#[allow(missing_debug_implementations)] // codec state
pub struct Mixer {
    webm: WebmWriter,
    video: Vp8Encoder,
    opus: OpusEncoder,
    size: (usize, usize),
    fps: u32,
    started: Instant,
    video_frames: u64,
    audio_frames: u64,
    tiles: Vec<(UserId, Option<I420>)>,
    voices: HashMap<UserId, Voice>,
    canvas: I420,
}

impl Mixer {
    /// Starts `path` now: a `width`×`height` grid at `fps`.
    pub fn create(path: &Path, (width, height): (usize, usize), fps: u32) -> anyhow::Result<Self> {
        let mut webm = WebmWriter::create(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        webm.set_video("V_VP8", width, height);
        let bitrate = ((width * height) as u64 * u64::from(fps) / 12_000).clamp(200, 4000) as u32;
        let mut canvas = I420 {
            width,
            height,
            data: vec![16; width * height * 3 / 2],
        };
        canvas.data[width * height..].fill(128);
        Ok(Self {
            webm,
            video: Vp8Encoder::new(width, height, bitrate, fps * 5)?,
            opus: OpusEncoder::new()?,
            size: (width, height),
            fps,
            started: Instant::now(),
            video_frames: 0,
            audio_frames: 0,
            tiles: Vec::new(),
            voices: HashMap::new(),
            canvas,
        })
    }

    /// A participant's latest picture.
    pub fn picture(&mut self, user: &UserId, picture: &I420) {
        if let Some(tile) = self.tiles.iter_mut().find(|(u, _)| u == user) {
            tile.1 = Some(picture.clone());
        } else if self.tiles.len() < MAX_TILES {
            self.tiles.push((user.clone(), Some(picture.clone())));
        }
    }

    /// A participant left: their tile and voice go (the others move up).
    pub fn remove(&mut self, user: &UserId) {
        self.tiles.retain(|(u, _)| u != user);
        self.voices.remove(user);
        // What the gone tile covered is painted over by the new layout or stays black.
        self.canvas.data[self.size.0 * self.size.1..].fill(128);
        self.canvas.data[..self.size.0 * self.size.1].fill(16);
    }

    /// A participant's decoded audio, after `silence` samples of a gap.
    pub fn audio(&mut self, user: &UserId, silence: u64, samples: &[f32]) {
        if !self.voices.contains_key(user) && self.voices.len() >= MAX_VOICES {
            return;
        }
        let voice = self.voices.entry(user.clone()).or_default();
        // A gap longer than the queue is only that long in the mix.
        let silence = silence.min(MAX_QUEUE as u64) as usize;
        voice.queue.extend(std::iter::repeat_n(0.0, silence));
        voice.queue.extend(samples.iter().copied());
        if voice.queue.len() > MAX_QUEUE {
            let excess = voice.queue.len() - MAX_QUEUE;
            voice.queue.drain(..excess);
            voice.dropped += excess as u64;
        }
    }

    /// Produces the output frames due by `now` (at most [`MAX_CATCH_UP`] of each kind); true
    /// when none is left due.
    pub fn poll(&mut self, now: Instant) -> anyhow::Result<bool> {
        let elapsed = now.saturating_duration_since(self.started);
        let audio_due = (elapsed.as_secs_f64() * 1000.0 / FRAME_MS) as u64;
        for _ in 0..MAX_CATCH_UP {
            if self.audio_frames >= audio_due {
                break;
            }
            self.mix_audio()?;
        }
        let video_due = (elapsed.as_secs_f64() * f64::from(self.fps)) as u64;
        for _ in 0..MAX_CATCH_UP {
            if self.video_frames >= video_due {
                break;
            }
            self.mix_video()?;
        }
        Ok(self.audio_frames >= audio_due && self.video_frames >= video_due)
    }

    fn mix_audio(&mut self) -> anyhow::Result<()> {
        let mut frame = [0.0f32; FRAME_SAMPLES];
        for voice in self.voices.values_mut() {
            if !voice.playing {
                if voice.queue.len() < PRIME {
                    continue;
                }
                voice.playing = true;
            }
            let n = voice.queue.len().min(FRAME_SAMPLES);
            for (out, s) in frame.iter_mut().zip(voice.queue.drain(..n)) {
                *out += s;
            }
            if voice.queue.is_empty() {
                // Ran dry: wait for the queue to fill again before playing on.
                voice.playing = false;
            }
        }
        for s in &mut frame {
            *s = s.clamp(-1.0, 1.0);
        }
        let ms = (self.audio_frames as f64 * FRAME_MS) as i64;
        let packet = self.opus.encode(&frame, ms as f64)?;
        self.webm
            .write(Track::Audio, ms, FRAME_MS as i64, true, &packet.data)?;
        self.audio_frames += 1;
        Ok(())
    }

    fn mix_video(&mut self) -> anyhow::Result<()> {
        let (width, height) = self.size;
        let n = self.tiles.len().max(1);
        let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
        let rows = n.div_ceil(cols);
        let (cell_w, cell_h) = ((width / cols) & !1, (height / rows) & !1);
        for (i, (_, picture)) in self.tiles.iter().enumerate() {
            if let Some(picture) = picture {
                let (x, y) = ((i % cols) * cell_w, (i / cols) * cell_h);
                blit(&mut self.canvas, picture, x, y, cell_w, cell_h);
            }
        }
        let period = 1000 / i64::from(self.fps.max(1));
        let ms = (self.video_frames * 1000 / u64::from(self.fps.max(1))) as i64;
        let frames = self
            .video
            .encode(&self.canvas, ms, period as u32, self.video_frames == 0)?;
        for frame in frames {
            self.webm
                .write(Track::Video, ms, period, frame.key, &frame.data)?;
        }
        self.video_frames += 1;
        Ok(())
    }

    /// Produces what is due, closes the file; returns (duration, video frames, audio frames).
    pub fn finish(mut self, now: Instant) -> anyhow::Result<(Duration, u64, u64)> {
        // Everything due, however late the last tick was.
        while !self.poll(now)? {}
        let duration = Duration::from_millis(self.webm.duration_ms().max(0) as u64);
        let counts = (self.video_frames, self.audio_frames);
        self.webm.finish()?;
        Ok((duration, counts.0, counts.1))
    }
}

/// Scales `picture` (nearest neighbour) into the `w`×`h` cell at (`x`, `y`) of `canvas`.
fn blit(canvas: &mut I420, picture: &I420, x: usize, y: usize, w: usize, h: usize) {
    let (cw, ch) = (canvas.width, canvas.height);
    let (pw, ph) = (picture.width, picture.height);
    if w == 0 || h == 0 || pw == 0 || ph == 0 || x + w > cw || y + h > ch {
        return;
    }
    let (canvas_y, canvas_uv) = canvas.data.split_at_mut(cw * ch);
    let (canvas_u, canvas_v) = canvas_uv.split_at_mut(cw / 2 * (ch / 2));
    let (pic_y, pic_uv) = picture.data.split_at(pw * ph);
    let (pic_u, pic_v) = pic_uv.split_at(pw / 2 * (ph / 2));
    for row in 0..h {
        let src_row = row * ph / h;
        for col in 0..w {
            canvas_y[(y + row) * cw + x + col] = pic_y[src_row * pw + col * pw / w];
        }
    }
    let (cw2, pw2, ph2) = (cw / 2, pw / 2, ph / 2);
    if pw2 == 0 || ph2 == 0 {
        return;
    }
    for row in 0..h / 2 {
        let src_row = row * ph2 / (h / 2);
        for col in 0..w / 2 {
            let at = (y / 2 + row) * cw2 + x / 2 + col;
            let from = src_row * pw2 + col * pw2 / (w / 2);
            canvas_u[at] = pic_u[from];
            canvas_v[at] = pic_v[from];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern;

    #[test]
    fn a_picture_fills_its_cell_and_leaves_the_rest_black() {
        let mut canvas = I420 {
            width: 320,
            height: 240,
            data: vec![16; 320 * 240 * 3 / 2],
        };
        let picture = pattern::frame(320, 240, 3).expect("valid size");
        blit(&mut canvas, &picture, 0, 0, 160, 120);
        assert_eq!(canvas.y()[0], picture.y()[0]);
        assert_eq!(canvas.y()[120 * 320 + 200], 16, "outside the cell");
        // A picture of any size (even a tiny one) scales without panicking.
        let tiny = I420 {
            width: 2,
            height: 2,
            data: vec![200; 6],
        };
        blit(&mut canvas, &tiny, 160, 120, 160, 120);
        assert_eq!(canvas.y()[239 * 320 + 319], 200);
    }
}
