//! Who is the active speaker, from the audio levels the page measures where each participant's
//! audio is decoded (after decryption, so it works in encrypted meetings too).
//!
//! A pure state machine with time as a parameter: [`ActiveSpeaker::handle_levels`] takes the
//! loudest level of each participant over the last report window (the driver reports a few
//! times a second, not per packet) and returns the next state. Hysteresis keeps the speaker
//! view calm:
//!
//! - each participant's level is an envelope that rises at once and falls with a half-life of
//!   [`SpeakerConfig::half_life_ms`], so the gaps between words (or between the beeps of a fake
//!   microphone) do not count as silence;
//! - a challenger takes over only after being louder than the speaker (by
//!   [`SpeakerConfig::margin`]) and above [`SpeakerConfig::floor`] for
//!   [`SpeakerConfig::switch_after_ms`] without a break;
//! - a new speaker holds for at least [`SpeakerConfig::hold_ms`];
//! - when everyone is quiet the last speaker stays.
//!
//! Two people answering each other in bursts shorter than the switch window therefore never
//! make the view flicker.

use std::collections::BTreeMap;

use videocall_types::SessionId;

/// The hysteresis of [`ActiveSpeaker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerConfig {
    /// RMS (0..1) below which a participant counts as silent (about -40 dBFS).
    pub floor: f32,
    /// A challenger must be this many times louder than the speaker.
    pub margin: f32,
    /// How long a challenger must stay louder, ms.
    pub switch_after_ms: f64,
    /// The least time a speaker keeps the view, ms.
    pub hold_ms: f64,
    /// The envelope halves in this time when a participant goes quiet, ms.
    pub half_life_ms: f64,
}

impl Default for SpeakerConfig {
    fn default() -> Self {
        Self {
            floor: 0.01,
            margin: 1.2,
            switch_after_ms: 700.0,
            hold_ms: 1500.0,
            half_life_ms: 400.0,
        }
    }
}

/// The active speaker and what decides the next one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActiveSpeaker {
    config: SpeakerConfig,
    /// The participant shown large in the speaker view.
    current: Option<SessionId>,
    /// When `current` took over, ms.
    since_ms: f64,
    /// Who is louder than the speaker now, and since when (ms).
    challenger: Option<(SessionId, f64)>,
    /// Each participant's level envelope.
    envelopes: BTreeMap<SessionId, f32>,
    /// The time of the last report, ms.
    last_ms: Option<f64>,
}

impl ActiveSpeaker {
    /// A tracker with other hysteresis than the default.
    pub fn with_config(config: SpeakerConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The active speaker, once someone has spoken.
    pub fn current(&self) -> Option<SessionId> {
        self.current
    }

    /// A participant's level envelope now (0 when never heard).
    pub fn level(&self, session: SessionId) -> f32 {
        self.envelopes.get(&session).copied().unwrap_or(0.0)
    }

    /// The state after a report at `now_ms` of the loudest level (RMS, 0..1) of each
    /// participant heard since the last report. Participants not in `levels` were silent.
    pub fn handle_levels(mut self, now_ms: f64, levels: &[(SessionId, f32)]) -> Self {
        let elapsed = self.last_ms.map_or(0.0, |last| (now_ms - last).max(0.0));
        self.last_ms = Some(now_ms);
        let decay = 0.5f64.powf(elapsed / self.config.half_life_ms) as f32;
        for envelope in self.envelopes.values_mut() {
            *envelope *= decay;
        }
        for &(session, level) in levels {
            // Measured by our own decoder, but a NaN must not win every comparison.
            let level = if level.is_finite() {
                level.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let envelope = self.envelopes.entry(session).or_insert(0.0);
            *envelope = envelope.max(level);
        }
        let loudest = self
            .envelopes
            .iter()
            .filter(|(_, level)| **level > self.config.floor)
            // The first of equals (by session) wins, so the choice is deterministic.
            .fold(
                None::<(SessionId, f32)>,
                |best, (session, level)| match best {
                    Some((_, best_level)) if best_level >= *level => best,
                    _ => Some((*session, *level)),
                },
            );
        let current_level = self.current.map_or(0.0, |s| self.level(s));
        match loudest {
            Some((session, level))
                if Some(session) != self.current && level > current_level * self.config.margin =>
            {
                let since = match self.challenger {
                    Some((challenger, since)) if challenger == session => since,
                    _ => now_ms,
                };
                self.challenger = Some((session, since));
                let sustained = now_ms - since >= self.config.switch_after_ms;
                let held = self.current.is_none() || now_ms - self.since_ms >= self.config.hold_ms;
                if sustained && held {
                    self.current = Some(session);
                    self.since_ms = now_ms;
                    self.challenger = None;
                }
            }
            _ => self.challenger = None,
        }
        self
    }

    /// `session` left: it is no longer heard, nor the speaker.
    pub fn remove(&mut self, session: SessionId) {
        self.envelopes.remove(&session);
        if self.current == Some(session) {
            self.current = None;
        }
        if self.challenger.is_some_and(|(s, _)| s == session) {
            self.challenger = None;
        }
    }

    /// Everyone left (the connection dropped, we left).
    pub fn clear(&mut self) {
        *self = Self::with_config(self.config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u32) -> SessionId {
        SessionId::new(0, n)
    }

    /// Reports every 200 ms from `from_ms` to `to_ms` (exclusive), each with `levels(t)`.
    fn run(
        mut s: ActiveSpeaker,
        from_ms: u32,
        to_ms: u32,
        levels: impl Fn(u32) -> Vec<(SessionId, f32)>,
    ) -> (ActiveSpeaker, Vec<Option<SessionId>>) {
        let mut seen = Vec::new();
        for t in (from_ms..to_ms).step_by(200) {
            s = s.handle_levels(f64::from(t), &levels(t));
            seen.push(s.current());
        }
        (s, seen)
    }

    /// Changes of speaker in a sequence of reports.
    fn switches(seen: &[Option<SessionId>]) -> usize {
        seen.windows(2).filter(|w| w[0] != w[1]).count()
    }

    #[test]
    fn the_only_voice_becomes_the_speaker_after_the_switch_window() {
        let (s, seen) = run(ActiveSpeaker::default(), 0, 1200, |_| {
            vec![(sid(1), 0.2), (sid(2), 0.0)]
        });
        assert_eq!(s.current(), Some(sid(1)));
        // Not at the first report: it must be sustained.
        assert_eq!(seen[0], None);
        assert_eq!(seen.iter().position(Option::is_some), Some(4), "at 800 ms");
    }

    #[test]
    fn silence_and_noise_below_the_floor_choose_no_one() {
        let (s, _) = run(ActiveSpeaker::default(), 0, 5000, |_| {
            vec![(sid(1), 0.005), (sid(2), 0.0)]
        });
        assert_eq!(s.current(), None);
    }

    #[test]
    fn the_speaker_follows_whoever_talks_for_long_enough_and_stays_through_silence() {
        let (s, _) = run(ActiveSpeaker::default(), 0, 3000, |_| vec![(sid(1), 0.2)]);
        assert_eq!(s.current(), Some(sid(1)));
        // Everyone quiet: the last speaker stays.
        let (s, seen) = run(s, 3000, 8000, |_| vec![]);
        assert!(seen.iter().all(|c| *c == Some(sid(1))));
        // Someone else talks (the first stays quiet): they take over.
        let (s, _) = run(s, 8000, 10000, |_| vec![(sid(2), 0.05)]);
        assert_eq!(s.current(), Some(sid(2)));
    }

    #[test]
    fn two_people_alternating_in_short_bursts_do_not_flicker() {
        let (s, _) = run(ActiveSpeaker::default(), 0, 3000, |_| vec![(sid(1), 0.2)]);
        assert_eq!(s.current(), Some(sid(1)));
        // 400 ms each, by turns, equally loud, for 20 s.
        let (s, seen) = run(s, 3000, 23000, |t| {
            let who = if (t / 400) % 2 == 0 { 1 } else { 2 };
            vec![(sid(who), 0.2)]
        });
        assert_eq!(switches(&seen), 0, "the view stays on one speaker");
        assert_eq!(s.current(), Some(sid(1)));
    }

    #[test]
    fn a_quieter_voice_does_not_take_over_from_a_louder_one() {
        let (s, seen) = run(ActiveSpeaker::default(), 0, 10000, |_| {
            vec![(sid(1), 0.2), (sid(2), 0.18)]
        });
        assert_eq!(s.current(), Some(sid(1)));
        assert_eq!(switches(&seen), 1, "None → 1 once");
    }

    #[test]
    fn a_new_speaker_holds_for_the_minimum_time() {
        let config = SpeakerConfig::default();
        let (s, _) = run(ActiveSpeaker::default(), 0, 3000, |_| vec![(sid(1), 0.2)]);
        // 2 takes over at some report; then 3 is much louder at once.
        let (s, seen) = run(s, 3000, 6000, |t| {
            if t < 4400 {
                vec![(sid(2), 0.3)]
            } else {
                vec![(sid(3), 0.9)]
            }
        });
        let took_over = seen
            .iter()
            .position(|c| *c == Some(sid(2)))
            .expect("2 took over");
        let third = seen
            .iter()
            .position(|c| *c == Some(sid(3)))
            .expect("3 took over");
        let held_ms = (third - took_over) as f64 * 200.0;
        assert!(held_ms >= config.hold_ms, "2 held {held_ms} ms");
        assert_eq!(s.current(), Some(sid(3)));
    }

    #[test]
    fn periodic_beeps_count_as_one_sustained_voice() {
        // Chromium's fake microphone: a short beep every 500 ms, silence between. The report
        // window catches the beep in some reports only.
        let (s, seen) = run(ActiveSpeaker::default(), 0, 4000, |t| {
            if t % 1000 == 0 {
                vec![(sid(1), 0.3)]
            } else {
                vec![(sid(1), 0.0)]
            }
        });
        assert_eq!(s.current(), Some(sid(1)));
        assert_eq!(switches(&seen), 1);
    }

    #[test]
    fn a_speaker_who_leaves_is_forgotten_and_bad_levels_are_ignored() {
        let (mut s, _) = run(ActiveSpeaker::default(), 0, 2000, |_| vec![(sid(1), 0.2)]);
        s.remove(sid(1));
        assert_eq!((s.current(), s.level(sid(1))), (None, 0.0));
        let (s, _) = run(s, 2000, 6000, |_| {
            vec![(sid(2), f32::NAN), (sid(3), f32::INFINITY), (sid(4), -1.0)]
        });
        assert_eq!(s.current(), None);
        assert_eq!(s.level(sid(2)), 0.0);
    }
}
