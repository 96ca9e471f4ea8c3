//! One participant of the bot: its seat in a meeting, its sessions (one, or with `--churn` one
//! after another, each driven by `drive.rs`), what it measures, and the counters all share.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{Duration, Instant};

use videocall_client::native::NativeConfig;
use videocall_types::MeetingId;

use crate::args::Args;
use crate::churn::{Presence, Rng, Settled};
use crate::drive::session;
use crate::profile::Profile;

/// Counters shared by every participant.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// Participants that joined at least once.
    pub(crate) joined: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Every join, first joins and rejoins after churn.
    pub(crate) joins: AtomicU64,
    /// Leaves the churn asked for.
    pub(crate) leaves: AtomicU64,
    /// Sessions joined now.
    pub(crate) connected: AtomicI64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_delivered: AtomicU64,
    /// Counted (video frame, receiver) pairs: what should be delivered (see `churn.rs`).
    pub(crate) expected: AtomicU64,
    pub(crate) window_delivered: AtomicU64,
    /// Counted video frames delivered to a session that was not its participant's first.
    pub(crate) delivered_after_rejoin: AtomicU64,
    pub(crate) audio_delivered: AtomicU64,
    pub(crate) audio_expected: AtomicU64,
    pub(crate) audio_window_delivered: AtomicU64,
    pub(crate) congestion: AtomicU64,
}

/// The timeline of a run, relative to `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    pub(crate) start: Instant,
    /// Frames sent from here on are measured…
    pub(crate) window_from: Duration,
    /// …until here.
    pub(crate) window_to: Duration,
    /// Publishing stops here.
    pub(crate) end: Duration,
}

impl Timeline {
    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    pub(crate) fn in_window(&self, sent_us: u64) -> bool {
        let sent = Duration::from_micros(sent_us);
        sent >= self.window_from && sent < self.window_to
    }
}

/// What one participant measured, over all its sessions.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) latencies_us: Vec<u32>,
    /// Join → first video frame, once per session.
    pub(crate) first_frames_us: Vec<u32>,
    /// E2EE: frames that did not open (no key yet, …) and media refused as not encrypted.
    pub(crate) e2ee_dropped: u64,
    pub(crate) mismatch_drops: u64,
    /// Video frames a decoder could not have used: late, or skipped for a gap.
    pub(crate) reorder_late: u64,
    pub(crate) reorder_skipped: u64,
}

/// Whether participant `receiver` of a meeting (publishers first, then subscribers) receives
/// publisher `k`'s video: everyone but `k` itself, or with `--visible` only the first `visible`
/// publishers (for a publisher: the first `visible` of the others).
pub(crate) fn sees(receiver: usize, k: usize, publishers: usize, visible: usize) -> bool {
    if receiver == k {
        return false;
    }
    if visible == 0 {
        return true;
    }
    if receiver >= publishers {
        return k < visible;
    }
    // Publisher `receiver` lists the other publishers in order and takes the first `visible`.
    (if k < receiver { k } else { k - 1 }) < visible
}

/// The publisher index in a bot user id (`pub-<k>-<meeting>`).
pub(crate) fn publisher_of(user: &str) -> Option<usize> {
    user.strip_prefix("pub-")?.split('-').next()?.parse().ok()
}

/// Where one participant sits: its meeting, its place in it, and how it connects.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    /// Over the whole bot.
    pub(crate) index: usize,
    /// Within its meeting (publishers first).
    pub(crate) slot: usize,
    pub(crate) publisher: Option<usize>,
    pub(crate) meeting: MeetingId,
    pub(crate) presence: Arc<Presence>,
    pub(crate) native: NativeConfig,
}

/// Why one session of a participant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The churn made it leave; it joins again after a pause.
    Left,
    /// The run is over.
    Drained,
    /// It cannot connect (a refused certificate) or its driver stopped.
    Failed,
}

/// Everything a participant's sessions share.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) args: Arc<Args>,
    pub(crate) profile: Profile,
    pub(crate) timeline: Timeline,
    pub(crate) totals: Arc<Totals>,
}

/// One participant for the whole run: one session, or with `--churn` a session after another.
pub(crate) async fn participant(seat: Seat, run: Run) -> Measured {
    let mut measured = Measured::default();
    let churn = run.args.churn;
    let end = tokio::time::Instant::from_std(run.timeline.start + run.timeline.end);
    let mut rng = Rng::new(run.args.seed.wrapping_add(seat.index as u64));
    if churn.is_none() {
        // Registered before the window opens (joins happen during the ramp): a participant
        // that joins late or not at all counts as loss, as it should.
        seat.presence.set(seat.slot, Some(Settled::ALWAYS));
    }
    for life in 0.. {
        let length = churn.map(|span| span.draw(&mut rng));
        let ended = session(&seat, &run, life, length, &mut measured).await;
        if churn.is_some() {
            seat.presence.set(seat.slot, None);
        }
        if ended != Ended::Left {
            break;
        }
        let back = tokio::time::Instant::now() + run.args.churn_pause.draw(&mut rng);
        if back >= end {
            break;
        }
        tokio::time::sleep_until(back).await;
    }
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many participants of a meeting receive publisher `k`'s video.
    fn receivers_of(k: usize, publishers: usize, subscribers: usize, visible: usize) -> usize {
        (0..publishers + subscribers)
            .filter(|&r| sees(r, k, publishers, visible))
            .count()
    }

    #[test]
    fn receivers_follow_the_visible_limit() {
        // Everyone sees everyone.
        assert_eq!(receivers_of(0, 3, 5, 0), 7);
        // 970 viewers see the first 9 publishers; publishers see the first 9 others.
        assert_eq!(receivers_of(0, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(8, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(9, 30, 970, 9), 9);
        assert_eq!(receivers_of(29, 30, 970, 9), 0);
        // A subscriber sees the first 9; publisher 3 sees 0..=9 but itself.
        assert!(sees(30, 8, 30, 9) && !sees(30, 9, 30, 9));
        assert!(sees(3, 9, 30, 9) && !sees(3, 3, 30, 9) && !sees(3, 10, 30, 9));
    }

    #[test]
    fn publisher_indices_come_from_bot_user_ids() {
        assert_eq!(publisher_of("pub-12-bot-3"), Some(12));
        assert_eq!(publisher_of("sub-4-bot-0"), None);
        assert_eq!(publisher_of("pub-x-bot-0"), None);
    }
}
