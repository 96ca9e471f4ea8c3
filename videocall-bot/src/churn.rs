//! Churn and the accounting that stays exact across it.
//!
//! With `--churn`, every participant leaves after a random life and joins again (a new session,
//! the same user) after a random pause, for the whole run. Delivery is still measured per
//! (packet, receiver) pair, but only for pairs where both ends were *settled* when the packet
//! was sent: the sender and the receiver had each been joined for [`SETTLE`] and had at least
//! [`SETTLE`] left before their planned leave. A packet sent before a receiver joined, or in the
//! last moments before its sender or receiver leaves, is neither expected nor counted.
//!
//! The [`Presence`] of a meeting holds each participant's settled interval. A publisher counts
//! the settled receivers when it sends (the expected figure) and stamps the packet as counted;
//! a receiver counts a stamped packet as delivered if it was sent inside its own settled
//! interval. Both sides apply the same rule to the same instant, so no race between a join and
//! a packet in flight can make a packet expected and never counted or the other way round: a
//! receiver's interval is registered when it has joined and starts [`SETTLE`] later.

use std::sync::Mutex;
use std::time::Duration;

/// How long after its join and before its planned leave a participant is not counted: covers
/// the subscription settling after a join and the packets in flight (and still queued in the
/// client) when a leave closes the transport. Hop latency is a few ms even on the loaded
/// 2-core machine; half a second leaves two orders of magnitude of room.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);

/// The shortest life `--churn` accepts: a life must have a settled part.
pub(crate) const MIN_LIFE: Duration = Duration::from_secs(1);

/// Closed range of durations, e.g. `20s..90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Span {
    /// Parses `MIN..MAX` (each a duration such as `20s`, `500ms`, `2m`) or one duration.
    pub(crate) fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<Self, String> {
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (duration(a)?, duration(b)?),
            None => {
                let d = duration(text)?;
                (d, d)
            }
        };
        if min > max {
            return Err(format!("{text}: the minimum is above the maximum"));
        }
        Ok(Self { min, max })
    }

    /// A duration drawn uniformly from the span.
    pub(crate) fn draw(&self, rng: &mut Rng) -> Duration {
        self.min + (self.max - self.min).mul_f64(rng.unit())
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}s..{}s",
            self.min.as_secs_f64(),
            self.max.as_secs_f64()
        )
    }
}

/// SplitMix64: a small, seedable generator, so a churn schedule can be replayed with `--seed`.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Send times (µs on the bot's clock) during which a participant is settled: `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) from_us: u64,
    pub(crate) to_us: u64,
}

impl Settled {
    /// Always settled: participants of a run without churn, registered before the window.
    pub(crate) const ALWAYS: Self = Self {
        from_us: 0,
        to_us: u64::MAX,
    };

    /// The settled part of a life that joined at `joined_us` and leaves at `leave_us`.
    pub(crate) fn of_life(joined_us: u64, leave_us: u64) -> Self {
        let settle = SETTLE.as_micros() as u64;
        Self {
            from_us: joined_us.saturating_add(settle),
            to_us: leave_us.saturating_sub(settle),
        }
    }

    pub(crate) fn contains(&self, us: u64) -> bool {
        self.from_us <= us && us < self.to_us
    }
}

/// Which participants of one meeting are settled when: one slot per participant.
#[derive(Debug)]
pub(crate) struct Presence {
    slots: Mutex<Vec<Option<Settled>>>,
}

impl Presence {
    pub(crate) fn new(participants: usize) -> Self {
        Self {
            slots: Mutex::new(vec![None; participants]),
        }
    }

    /// Participant `slot`'s current life (or none while it is away).
    pub(crate) fn set(&self, slot: usize, settled: Option<Settled>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get_mut(slot) {
            *s = settled;
        }
    }

    /// How many participants other than `sender` were settled at `sent_us` and receive what
    /// `sender` sends (`receives(receiver)`).
    pub(crate) fn receivers(
        &self,
        sender: usize,
        sent_us: u64,
        receives: impl Fn(usize) -> bool,
    ) -> u64 {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .enumerate()
            .filter(|(r, s)| *r != sender && s.is_some_and(|s| s.contains(sent_us)) && receives(*r))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<Duration, String> {
        s.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| format!("bad {s}"))
    }

    #[test]
    fn spans_parse_and_draw_inside_their_bounds() {
        let span = Span::parse("20s..90s", secs).unwrap();
        assert_eq!(span.min, Duration::from_secs(20));
        assert_eq!(span.max, Duration::from_secs(90));
        assert_eq!(Span::parse("5s", secs).unwrap().max, Duration::from_secs(5));
        assert_eq!(Span::parse("0s..5s", secs).unwrap().to_string(), "0s..5s");
        assert!(Span::parse("9s..3s", secs).is_err());
        assert!(Span::parse("x..3s", secs).is_err());
        let mut rng = Rng::new(7);
        let draws: Vec<Duration> = (0..1000).map(|_| span.draw(&mut rng)).collect();
        assert!(draws.iter().all(|d| (span.min..=span.max).contains(d)));
        // Spread over the span, not stuck at one end.
        assert!(draws.iter().any(|d| *d < Duration::from_secs(30)));
        assert!(draws.iter().any(|d| *d > Duration::from_secs(80)));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn a_life_is_settled_away_from_its_join_and_its_leave() {
        let life = Settled::of_life(10_000_000, 30_000_000);
        assert!(!life.contains(10_000_000));
        assert!(life.contains(10_500_000));
        assert!(life.contains(29_499_999));
        assert!(!life.contains(29_500_000));
        assert!(Settled::ALWAYS.contains(0) && Settled::ALWAYS.contains(u64::MAX - 1));
    }

    #[test]
    fn receivers_are_the_settled_others_that_receive() {
        let presence = Presence::new(4);
        presence.set(0, Some(Settled::ALWAYS));
        presence.set(1, Some(Settled::of_life(0, 10_000_000)));
        presence.set(2, Some(Settled::ALWAYS));
        // Slot 3 is away.
        assert_eq!(presence.receivers(0, 1_000_000, |_| true), 2);
        // Slot 1 has left its settled part by 9.6 s.
        assert_eq!(presence.receivers(0, 9_600_000, |_| true), 1);
        assert_eq!(presence.receivers(0, 1_000_000, |r| r != 2), 1);
        presence.set(3, Some(Settled::ALWAYS));
        assert_eq!(presence.receivers(3, 1_000_000, |_| true), 3);
        presence.set(2, None);
        assert_eq!(presence.receivers(3, 1_000_000, |_| true), 2);
    }
}
