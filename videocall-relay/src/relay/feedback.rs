//! Feedback to publishers: CONGESTION signals and KEYFRAME_REQUESTs, throttled per publisher.
//!
//! A publisher hears of congestion at most [`CONGESTION_PER_SEC`] times a second, and at most one
//! keyframe request reaches it per [`KEYFRAME_FORWARD_INTERVAL`], whoever asks: a receiver, the
//! relay for a receiver skipping to a keyframe, or another node. The throttles hold one entry per
//! publisher that was sent something; [`Feedback::forget`] drops a publisher's entries when it is
//! gone from the node's view (left here, left or went quiet elsewhere, or its meeting is no longer
//! served), so their number is bounded by the participants the node knows.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use videocall_types::{MeetingId, SessionId, packets};

use super::{Relay, SECOND};
use crate::config::{CONGESTION_PER_SEC, KEYFRAME_FORWARD_INTERVAL};
use crate::limit::WindowLimit;

/// The per-publisher throttles.
#[derive(Debug, Default)]
pub(super) struct Feedback {
    /// Publisher → CONGESTION signals recently sent to it.
    congestion_sent: HashMap<SessionId, WindowLimit<CONGESTION_PER_SEC>>,
    /// Publisher → when a KEYFRAME_REQUEST last went to it (from the relay or a receiver).
    keyframe_forwarded: HashMap<SessionId, Instant>,
}

impl Feedback {
    /// Whether a CONGESTION signal may go to `publisher` now; if so, records that one did.
    pub(super) fn congestion_due(&mut self, now: Instant, publisher: SessionId) -> bool {
        self.congestion_sent
            .entry(publisher)
            .or_default()
            .allow(now, SECOND)
    }

    /// Whether a keyframe request may go to `publisher` now; if so, records that one did.
    pub(super) fn keyframe_due(&mut self, now: Instant, publisher: SessionId) -> bool {
        match self.keyframe_forwarded.get(&publisher) {
            Some(at) if now.saturating_duration_since(*at) < KEYFRAME_FORWARD_INTERVAL => false,
            _ => {
                self.keyframe_forwarded.insert(publisher, now);
                true
            }
        }
    }

    /// `publisher` is gone from the node's view: its throttles are dropped.
    pub(super) fn forget(&mut self, publisher: SessionId) {
        self.congestion_sent.remove(&publisher);
        self.keyframe_forwarded.remove(&publisher);
    }

    /// Publishers with throttle state.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.congestion_sent
            .keys()
            .chain(self.keyframe_forwarded.keys())
            .collect::<std::collections::HashSet<_>>()
            .len()
    }
}

impl Relay {
    /// Tells `publisher` that `receiver` (ours) is congested, if the throttle allows.
    pub(super) fn signal_congestion(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        receiver: SessionId,
        publisher: SessionId,
    ) {
        if !self.feedback.congestion_due(now, publisher) {
            return;
        }
        self.metrics.congestion_signals += 1;
        let receiver_user = self.sessions[&receiver].user_bytes.clone();
        let packet = packets::encode(&packets::congestion(receiver_user, publisher));
        self.send_directed(meeting, receiver, publisher, packet);
    }

    /// Asks `publisher` for a keyframe on behalf of `receiver` (ours), if the throttle allows and
    /// the publisher is a participant we know.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        meeting: &MeetingId,
        receiver: SessionId,
        publisher: SessionId,
        publisher_user: Option<Bytes>,
    ) {
        let user = publisher_user.or_else(|| self.user_of(meeting, publisher));
        let Some(user) = user else {
            return; // not (yet) a participant we know
        };
        if !self.feedback.keyframe_due(now, publisher) {
            return;
        }
        self.metrics.keyframe_requests_sent += 1;
        let packet = packets::encode(&packets::keyframe_request(user, publisher));
        self.send_directed(meeting, receiver, publisher, packet);
    }

    fn user_of(&self, meeting: &MeetingId, session: SessionId) -> Option<Bytes> {
        if let Some(s) = self.sessions.get(&session) {
            return Some(s.user_bytes.clone());
        }
        self.meetings
            .get(meeting)?
            .remote
            .get(&session)
            .map(|p| p.user.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_publisher_hears_of_congestion_at_most_the_allowed_times_a_second() {
        let t0 = Instant::now();
        let p = SessionId::new(1, 1);
        let mut feedback = Feedback::default();
        let sent = (0..10)
            .filter(|&i| feedback.congestion_due(t0 + Duration::from_millis(i * 10), p))
            .count();
        assert_eq!(sent, CONGESTION_PER_SEC);
        assert!(feedback.congestion_due(t0 + SECOND, p));
        // Another publisher has its own allowance.
        assert!(feedback.congestion_due(t0, SessionId::new(1, 2)));
    }

    #[test]
    fn one_keyframe_request_per_interval_reaches_a_publisher() {
        let t0 = Instant::now();
        let p = SessionId::new(1, 1);
        let mut feedback = Feedback::default();
        assert!(feedback.keyframe_due(t0, p));
        assert!(!feedback.keyframe_due(t0 + KEYFRAME_FORWARD_INTERVAL / 2, p));
        assert!(feedback.keyframe_due(t0 + KEYFRAME_FORWARD_INTERVAL, p));
    }

    #[test]
    fn forgetting_a_publisher_drops_both_throttles_and_only_its_own() {
        let t0 = Instant::now();
        let (p, q) = (SessionId::new(1, 1), SessionId::new(2, 1));
        let mut feedback = Feedback::default();
        for _ in 0..CONGESTION_PER_SEC {
            assert!(feedback.congestion_due(t0, p));
        }
        assert!(feedback.keyframe_due(t0, p));
        assert!(feedback.keyframe_due(t0, q));
        assert_eq!(feedback.len(), 2);
        feedback.forget(p);
        assert_eq!(feedback.len(), 1);
        // A publisher that comes back under the same id starts with a fresh allowance.
        assert!(feedback.congestion_due(t0, p));
        assert!(feedback.keyframe_due(t0, p));
        assert!(!feedback.keyframe_due(t0, q));
    }
}
