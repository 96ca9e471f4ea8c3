//! Where each received audio frame goes in a participant's recording: in sequence order, late
//! and duplicate frames dropped, and gaps (lost frames, a muted microphone, a reconnection)
//! filled with silence as the sender's timestamps say, so that the file keeps real time.

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};

/// A clock gap below this many samples (60 ms) is jitter, not silence.
const TOLERANCE: u64 = 3 * FRAME_SAMPLES as u64;
/// Longest silence one gap inserts (60 s); past it the timeline starts again after the gap,
/// so a peer's absurd timestamp cannot make us write gigabytes of zeros.
pub const MAX_GAP: u64 = 60 * SAMPLE_RATE as u64;

const SAMPLES_PER_MS: f64 = SAMPLE_RATE as f64 / 1000.0;

/// One participant's audio timeline, in samples at 48 kHz.
#[derive(Debug, Default)]
pub struct AudioTimeline {
    first_ms: Option<f64>,
    next_sequence: Option<u64>,
    /// Samples placed so far (silence included).
    pub written: u64,
    /// Frames dropped as late or repeated.
    pub late: u64,
    /// Samples of silence inserted.
    pub silence: u64,
}

impl AudioTimeline {
    /// Places a frame of `samples` sent at `ms` (sender's clock) with `sequence`: `None` to
    /// drop it, else the samples of silence to write before it.
    pub fn place(&mut self, ms: f64, sequence: u64, samples: usize) -> Option<u64> {
        if self.next_sequence.is_some_and(|next| sequence < next) {
            self.late += 1;
            return None;
        }
        let lost = self.next_sequence.map_or(0, |next| {
            (sequence - next).saturating_mul(FRAME_SAMPLES as u64)
        });
        let by_clock = if ms.is_finite() {
            let first = *self.first_ms.get_or_insert(ms);
            let expected = ((ms - first) * SAMPLES_PER_MS).max(0.0) as u64;
            expected.saturating_sub(self.written)
        } else {
            0
        };
        let mut silence = if by_clock > TOLERANCE { by_clock } else { 0 }.max(lost);
        if silence > MAX_GAP {
            // Start the clock again after the (shortened) gap.
            self.first_ms = ms
                .is_finite()
                .then(|| ms - (self.written + MAX_GAP) as f64 / SAMPLES_PER_MS);
            silence = MAX_GAP;
        }
        self.next_sequence = Some(sequence.saturating_add(1));
        self.written += silence + samples as u64;
        self.silence += silence;
        Some(silence)
    }

    /// The sender reconnected: its sequence numbers start again (its clock goes on).
    pub fn restart_sequence(&mut self) {
        self.next_sequence = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: usize = FRAME_SAMPLES;

    #[test]
    fn frames_in_order_with_jitter_get_no_silence() {
        let mut timeline = AudioTimeline::default();
        for n in 0..100u64 {
            let jitter = if n % 2 == 0 { 15.0 } else { -5.0 };
            assert_eq!(timeline.place(n as f64 * 20.0 + jitter, n, F), Some(0));
        }
        assert_eq!(timeline.written, 100 * F as u64);
    }

    #[test]
    fn a_lost_frame_becomes_20_ms_of_silence() {
        let mut timeline = AudioTimeline::default();
        assert_eq!(timeline.place(0.0, 0, F), Some(0));
        assert_eq!(timeline.place(40.0, 2, F), Some(F as u64));
    }

    #[test]
    fn a_muted_second_is_filled_by_the_clock_and_late_frames_are_dropped() {
        let mut timeline = AudioTimeline::default();
        assert_eq!(timeline.place(0.0, 0, F), Some(0));
        // The browser's sequence does not advance while muted; its clock does.
        assert_eq!(timeline.place(1020.0, 1, F), Some(48_000));
        assert_eq!(timeline.place(1040.0, 1, F), None);
        assert_eq!(timeline.late, 1);
    }

    #[test]
    fn absurd_timestamps_insert_at_most_one_capped_gap() {
        let mut timeline = AudioTimeline::default();
        assert_eq!(timeline.place(0.0, 0, F), Some(0));
        assert_eq!(timeline.place(1e15, 1, F), Some(MAX_GAP));
        assert_eq!(timeline.place(1e15 + 20.0, 2, F), Some(0));
        assert_eq!(timeline.place(f64::NAN, 3, F), Some(0));
        assert_eq!(timeline.place(0.0, u64::MAX, F), Some(MAX_GAP));
    }
}
