//! The relay's timers: what each one checks, and the heap that orders them.
//!
//! Each [`Timer`] variant carries everything its check needs, so the dispatch in
//! [`super::Relay::handle_timeout`] is an exhaustive match. A timer is never cancelled: its check
//! looks at the current state when it fires (a session that has left, a meeting no longer
//! served) and does nothing, or re-arms itself, when there is nothing to do. The heap holds at
//! most one idle and one stall timer per session and one leave and one expiry timer per pending
//! leave and meeting and one digest timer per meeting (a stale one, of a meeting forgotten and
//! served again, fires once and is not re-armed), so its size is bounded by what the node serves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use videocall_types::{MeetingId, SessionId};

/// One timer and what it checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// Whether the session has been silent for the idle timeout.
    Idle(SessionId),
    /// Whether the session's socket made progress since its queue first overflowed.
    Stall {
        /// The receiver whose queue overflowed.
        session: SessionId,
        /// Its count of written-bytes reports when the timer was armed.
        progress: u64,
    },
    /// Announce the meeting's leaves whose reconnect grace is over.
    Leave(MeetingId),
    /// Forget the meeting's remote participants not heard from for the idle timeout.
    RemoteExpiry(MeetingId),
    /// Send the meeting's next PRESENCE digest chunk to its sessions that take digests.
    PresenceDigest(MeetingId),
}

/// Timers ordered by when they are due (ties in a fixed order, so runs are deterministic).
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    /// Arms `timer` to fire at `at`.
    pub(super) fn push(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// When the earliest timer is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.next_due()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, timer))| timer)
    }

    /// Timers armed and not yet fired.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timers_fire_in_order_of_due_time_and_only_once_due() {
        let t0 = Instant::now();
        let meeting = MeetingId::new("m").unwrap();
        let mut timers = Timers::default();
        timers.push(t0 + Duration::from_secs(3), Timer::Leave(meeting.clone()));
        timers.push(
            t0 + Duration::from_secs(1),
            Timer::Idle(SessionId::new(1, 1)),
        );
        timers.push(
            t0 + Duration::from_secs(2),
            Timer::RemoteExpiry(meeting.clone()),
        );
        assert_eq!(timers.next_due(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let now = t0 + Duration::from_secs(2);
        assert_eq!(timers.pop_due(now), Some(Timer::Idle(SessionId::new(1, 1))));
        assert_eq!(
            timers.pop_due(now),
            Some(Timer::RemoteExpiry(meeting.clone()))
        );
        assert_eq!(timers.pop_due(now), None);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_due(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn timers_due_at_the_same_instant_all_fire_and_each_keeps_its_own_data() {
        let t0 = Instant::now();
        let (a, b) = (MeetingId::new("a").unwrap(), MeetingId::new("b").unwrap());
        let s = SessionId::new(1, 7);
        let mut timers = Timers::default();
        timers.push(t0, Timer::Leave(b.clone()));
        timers.push(t0, Timer::Leave(a.clone()));
        timers.push(
            t0,
            Timer::Stall {
                session: s,
                progress: 4,
            },
        );
        let mut fired = Vec::new();
        while let Some(timer) = timers.pop_due(t0) {
            fired.push(timer);
        }
        assert_eq!(
            fired,
            [
                Timer::Stall {
                    session: s,
                    progress: 4
                },
                Timer::Leave(a),
                Timer::Leave(b),
            ]
        );
        assert_eq!(timers.next_due(), None);
    }
}
