//! Queueing: offering a packet to receivers, and what their queues' verdicts ask of the relay.
//!
//! Each receiver's [`OutQueue`] applies the congestion policy (its class budgets, the node's
//! bound, skip-to-keyframe); this module filters by subscription, hands admitted packets out as
//! [`Output::Transmit`], and turns one packet's drops into at most one CONGESTION signal and one
//! KEYFRAME_REQUEST for its publisher and a stall check for each receiver that overflowed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use videocall_types::{MeetingId, SessionId, StreamKey};

use super::session::Session;
use super::timer::Timer;
use super::{Output, Relay};
use crate::classify::Class;
use crate::config::RelayConfig;
use crate::metrics::Metrics;
use crate::queue::{NodeQueue, Verdict};
use crate::subject;

/// What offering a packet needs of the relay besides the receiving session (disjoint borrows of
/// the relay's fields).
struct Delivery<'a> {
    config: &'a RelayConfig,
    metrics: &'a mut Metrics,
    outputs: &'a mut VecDeque<Output>,
}

impl Delivery<'_> {
    /// Offers one packet from `publisher` to receiver `me`: filters unsubscribed video, applies
    /// the queue's congestion policy, and hands the packet out if it is admitted.
    fn offer(
        &mut self,
        session: &mut Session,
        me: SessionId,
        publisher: SessionId,
        packet: &Bytes,
        class: Class,
    ) -> Verdict {
        if let (Class::Video { screen, .. }, Some(sub)) = (class, &session.subscription)
            && !sub.wants(StreamKey::of_video(publisher, screen))
        {
            return Verdict::Filtered;
        }
        let node = NodeQueue {
            queued: self.metrics.queued_bytes as usize,
            max: self.config.max_node_queued_bytes,
        };
        let verdict = session.queue.admit(
            publisher,
            packet.len(),
            class,
            node,
            self.config,
            self.metrics,
        );
        if verdict == Verdict::Queued {
            self.metrics.queued_bytes += packet.len() as u64;
            self.outputs.push_back(Output::Transmit {
                session: me,
                packet: packet.clone(),
            });
        }
        verdict
    }
}

/// What one packet's fan-out asks of the relay once every receiver has been offered it.
#[derive(Debug, Default, PartialEq, Eq)]
struct FanOutcome {
    /// The first receiver whose drop the publisher should hear of as congestion.
    congested_at: Option<SessionId>,
    /// Whether a dropped video frame left a receiver waiting for a keyframe.
    want_keyframe: bool,
    /// Receivers whose queue is full and whose stall check is not armed yet.
    overflowed: Vec<SessionId>,
}

impl FanOutcome {
    /// Records `receiver`'s verdict.
    fn record(&mut self, receiver: SessionId, verdict: Verdict, stall_armed: bool) {
        if let Verdict::Dropped {
            congestion,
            want_keyframe,
            full,
        } = verdict
        {
            if congestion && self.congested_at.is_none() {
                self.congested_at = Some(receiver);
            }
            self.want_keyframe |= want_keyframe;
            if full && !stall_armed {
                self.overflowed.push(receiver);
            }
        }
    }

    /// The receiver a keyframe request is made for, if one is wanted (the queue only wants a
    /// keyframe after a congestion drop, so there is always one then).
    fn keyframe_for(&self) -> Option<SessionId> {
        self.congested_at.filter(|_| self.want_keyframe)
    }
}

impl Relay {
    /// Offers `packet` from `origin` to every local session of the meeting but `origin`, then
    /// tells the publisher about congestion and asks it for a keyframe if a receiver needs one.
    pub(super) fn fan_out(
        &mut self,
        now: Instant,
        meeting_id: &MeetingId,
        origin: SessionId,
        packet: &Bytes,
        class: Class,
        origin_user: &Bytes,
    ) {
        self.fan_out_where(now, meeting_id, origin, packet, class, origin_user, |_| {
            true
        });
    }

    /// [`Relay::fan_out`] to the receivers `wanted` selects.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fan_out_where(
        &mut self,
        now: Instant,
        meeting_id: &MeetingId,
        origin: SessionId,
        packet: &Bytes,
        class: Class,
        origin_user: &Bytes,
        wanted: impl Fn(&Session) -> bool,
    ) {
        let Some(meeting) = self.meetings.get(meeting_id) else {
            return;
        };
        let mut delivery = Delivery {
            config: &self.config,
            metrics: &mut self.metrics,
            outputs: &mut self.outputs,
        };
        let mut outcome = FanOutcome::default();
        for &receiver in &meeting.local {
            if receiver == origin {
                continue;
            }
            let Some(session) = self.sessions.get_mut(&receiver) else {
                continue;
            };
            if !wanted(session) {
                continue;
            }
            let verdict = delivery.offer(session, receiver, origin, packet, class);
            outcome.record(receiver, verdict, session.stall_armed);
        }
        for &receiver in &outcome.overflowed {
            self.arm_stall(now, receiver);
        }
        if let Some(receiver) = outcome.congested_at {
            self.signal_congestion(now, meeting_id, receiver, origin);
        }
        if let Some(receiver) = outcome.keyframe_for() {
            self.request_keyframe(now, meeting_id, receiver, origin, Some(origin_user.clone()));
        }
    }

    /// Queues a control packet for one local session.
    pub(super) fn send_to(&mut self, session: SessionId, packet: Bytes) {
        if let Some(s) = self.sessions.get_mut(&session) {
            let mut delivery = Delivery {
                config: &self.config,
                metrics: &mut self.metrics,
                outputs: &mut self.outputs,
            };
            delivery.offer(s, session, session, &packet, Class::Control);
        }
    }

    /// Sends `packet` to `target` only: directly when it is ours, else over the bus.
    pub(super) fn send_directed(
        &mut self,
        meeting: &MeetingId,
        origin: SessionId,
        target: SessionId,
        packet: Bytes,
    ) {
        if self.sessions.contains_key(&target) {
            self.send_to(target, packet);
        } else {
            self.publish(subject::directed_subject(meeting, origin, target), packet);
        }
    }

    /// Publishes `packet` on the bus.
    pub(super) fn publish(&mut self, subject: Arc<str>, packet: Bytes) {
        self.metrics.bus_published += 1;
        self.outputs.push_back(Output::Publish { subject, packet });
    }

    /// Arms the stall check of a receiver whose queue just overflowed.
    fn arm_stall(&mut self, now: Instant, id: SessionId) {
        if let Some(s) = self.sessions.get_mut(&id)
            && !s.stall_armed
        {
            s.stall_armed = true;
            let timer = Timer::Stall {
                session: id,
                progress: s.progress,
            };
            self.timers.push(now + self.config.stall_timeout, timer);
        }
    }
}

#[cfg(test)]
mod tests {
    use videocall_types::{MeetingId, SubscriptionPacket, UserId};

    use super::*;
    use crate::metrics::DropReason;
    use crate::subscription::Subscription;

    const VIDEO: Class = Class::Video {
        screen: false,
        key: false,
    };

    fn session(config: &RelayConfig) -> Session {
        let user = UserId::new("alice").unwrap();
        let grants = super::super::Grants {
            publish: true,
            subscribe: true,
            host: false,
        };
        let meeting = MeetingId::new("m").unwrap();
        let name = Bytes::from_static(b"alice");
        Session::new(
            Instant::now(),
            config,
            SessionId::new(1, 1),
            user,
            meeting,
            name,
            grants,
        )
    }

    #[test]
    fn an_admitted_packet_is_handed_out_and_counted_on_the_node_queue() {
        let config = RelayConfig::default();
        let (mut metrics, mut outputs) = (Metrics::default(), VecDeque::new());
        let mut delivery = Delivery {
            config: &config,
            metrics: &mut metrics,
            outputs: &mut outputs,
        };
        let mut s = session(&config);
        let (me, publisher) = (SessionId::new(1, 1), SessionId::new(1, 2));
        let packet = Bytes::from_static(b"0123456789");
        let verdict = delivery.offer(&mut s, me, publisher, &packet, Class::Audio);
        assert_eq!(verdict, Verdict::Queued);
        assert_eq!(metrics.queued_bytes, 10);
        assert_eq!(
            outputs.pop_front(),
            Some(Output::Transmit {
                session: me,
                packet
            })
        );
    }

    #[test]
    fn video_of_a_publisher_not_subscribed_to_is_filtered_and_audio_is_not() {
        let config = RelayConfig::default();
        let (mut metrics, mut outputs) = (Metrics::default(), VecDeque::new());
        let mut delivery = Delivery {
            config: &config,
            metrics: &mut metrics,
            outputs: &mut outputs,
        };
        let mut s = session(&config);
        let (wanted, other) = (SessionId::new(1, 2), SessionId::new(1, 3));
        let packet = SubscriptionPacket {
            video: vec![wanted.get()],
            ..Default::default()
        };
        s.subscription = Subscription::from_packet(packet, |_| true).0;
        let me = SessionId::new(1, 1);
        let frame = Bytes::from_static(b"frame");
        assert_eq!(
            delivery.offer(&mut s, me, other, &frame, VIDEO),
            Verdict::Filtered
        );
        assert_eq!(
            delivery.offer(&mut s, me, other, &frame, Class::Audio),
            Verdict::Queued
        );
        assert_eq!(
            delivery.offer(&mut s, me, wanted, &frame, VIDEO),
            Verdict::Queued
        );
        assert_eq!(outputs.len(), 2);
    }

    #[test]
    fn a_full_queue_skips_the_stream_to_its_next_keyframe() {
        let config = RelayConfig {
            queue_video_bytes: 100,
            ..RelayConfig::default()
        };
        let (mut metrics, mut outputs) = (Metrics::default(), VecDeque::new());
        let mut delivery = Delivery {
            config: &config,
            metrics: &mut metrics,
            outputs: &mut outputs,
        };
        let mut s = session(&config);
        let (me, p) = (SessionId::new(1, 1), SessionId::new(1, 2));
        let big = Bytes::from(vec![0; 80]);
        let small = Bytes::from(vec![0; 10]);
        assert_eq!(delivery.offer(&mut s, me, p, &big, VIDEO), Verdict::Queued);
        assert!(matches!(
            delivery.offer(&mut s, me, p, &big, VIDEO),
            Verdict::Dropped {
                congestion: true,
                want_keyframe: true,
                full: true
            }
        ));
        // Room again, but a delta still waits for the keyframe; the keyframe passes.
        s.queue.transmitted(80);
        assert!(matches!(
            delivery.offer(&mut s, me, p, &small, VIDEO),
            Verdict::Dropped { full: false, .. }
        ));
        let key = Class::Video {
            screen: false,
            key: true,
        };
        assert_eq!(delivery.offer(&mut s, me, p, &small, key), Verdict::Queued);
        assert_eq!(
            delivery.offer(&mut s, me, p, &small, VIDEO),
            Verdict::Queued
        );
        assert_eq!(metrics.drops(DropReason::Congestion), 1);
        assert_eq!(metrics.drops(DropReason::SkipToKeyframe), 1);
    }

    #[test]
    fn a_fan_out_blames_its_first_congested_receiver_and_arms_each_stall_once() {
        let (a, b, c) = (
            SessionId::new(1, 1),
            SessionId::new(1, 2),
            SessionId::new(1, 3),
        );
        let dropped = |congestion, want_keyframe, full| Verdict::Dropped {
            congestion,
            want_keyframe,
            full,
        };
        let mut outcome = FanOutcome::default();
        outcome.record(a, Verdict::Queued, false);
        outcome.record(b, dropped(false, false, true), false);
        outcome.record(c, dropped(true, true, true), true);
        outcome.record(a, dropped(true, false, true), false);
        assert_eq!(outcome.congested_at, Some(c));
        assert_eq!(outcome.keyframe_for(), Some(c));
        assert_eq!(outcome.overflowed, [b, a]);

        let mut opaque = FanOutcome::default();
        opaque.record(a, dropped(true, false, true), false);
        assert_eq!(opaque.keyframe_for(), None);
    }
}
