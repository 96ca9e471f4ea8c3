//! Subscribe on demand: which publishers' video a session renders.
//!
//! A SUBSCRIPTION packet comes from a client, so it is hostile until proven otherwise: it is
//! refused before decoding when larger than the meeting's size allows
//! ([`max_subscription_bytes`](crate::config::max_subscription_bytes)), ids of nobody in the
//! meeting are ignored (and counted), and what is kept is sorted, deduplicated and shrunk, so
//! both its memory and the work of building it are bounded by the meeting's size.

use videocall_types::{SessionId, StreamKey, StreamKind, SubscriptionPacket};

/// The video streams a session wants; sorted ids, looked up by binary search.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Subscription {
    video: Vec<u64>,
    screen: Vec<u64>,
}

impl Subscription {
    /// Whether the session wants `publisher`'s camera (`screen == false`) or screen stream.
    pub(crate) fn wants(&self, stream: StreamKey) -> bool {
        let list = match stream.kind {
            StreamKind::Camera => &self.video,
            StreamKind::Screen => &self.screen,
        };
        list.binary_search(&stream.session.get()).is_ok()
    }

    /// The subscription `packet` asks for (`None`: every publisher), keeping only ids for which
    /// `is_member` holds. Returns it with the number of ids ignored. Linear in the packet's
    /// length plus `k log k` for the `k` ids kept.
    pub(crate) fn from_packet(
        packet: SubscriptionPacket,
        mut is_member: impl FnMut(SessionId) -> bool,
    ) -> (Option<Self>, u64) {
        if packet.all {
            return (None, 0);
        }
        let mut ignored = 0;
        let mut keep = |mut list: Vec<u64>| {
            let before = list.len();
            list.retain(|raw| SessionId::from_wire(*raw).is_some_and(&mut is_member));
            ignored += (before - list.len()) as u64;
            list.sort_unstable();
            list.dedup();
            // Decoding sized the vector for the whole packet; keep only what is used.
            list.shrink_to_fit();
            list
        };
        let video = keep(packet.video);
        let screen = keep(packet.screen);
        (Some(Self { video, screen }), ignored)
    }

    /// Streams in `self` that `old` did not want (`None`: everything was wanted), in order.
    pub(crate) fn newly_wanted(&self, old: Option<&Subscription>) -> Vec<StreamKey> {
        let Some(old) = old else {
            return Vec::new();
        };
        let mut fresh = Vec::new();
        for (list, screen) in [(&self.video, false), (&self.screen, true)] {
            for raw in list {
                let Some(p) = SessionId::from_wire(*raw) else {
                    continue;
                };
                let stream = StreamKey::of_video(p, screen);
                if !old.wants(stream) {
                    fresh.push(stream);
                }
            }
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u32) -> u64 {
        SessionId::new(1, seq).get()
    }

    #[test]
    fn ids_outside_the_meeting_are_ignored_and_counted() {
        let packet = SubscriptionPacket {
            video: vec![id(3), id(1), id(3), id(99), 0],
            screen: vec![id(2), id(98)],
            all: false,
        };
        let (sub, ignored) = Subscription::from_packet(packet, |s| s.get() <= id(5));
        let sub = sub.unwrap();
        assert_eq!(sub.video, [id(1), id(3)]);
        assert_eq!(sub.screen, [id(2)]);
        // 99, 98 and the invalid 0.
        assert_eq!(ignored, 3);
        assert!(sub.wants(StreamKey::camera(SessionId::new(1, 3))));
        assert!(!sub.wants(StreamKey::screen(SessionId::new(1, 3))));
    }

    #[test]
    fn all_means_no_filter_and_new_streams_are_listed() {
        let all = SubscriptionPacket {
            all: true,
            ..Default::default()
        };
        assert_eq!(Subscription::from_packet(all, |_| true), (None, 0));
        let old = Subscription {
            video: vec![id(1)],
            screen: vec![],
        };
        let new = Subscription {
            video: vec![id(1), id(2)],
            screen: vec![id(1)],
        };
        assert_eq!(
            new.newly_wanted(Some(&old)),
            [
                StreamKey::camera(SessionId::new(1, 2)),
                StreamKey::screen(SessionId::new(1, 1))
            ]
        );
        assert!(new.newly_wanted(None).is_empty());
    }
}
