//! What a client asks the relay for: everyone's video, or only some publishers' camera and
//! screen (subscribe on demand: a page shows nine tiles, not a thousand).

use videocall_types::{SessionId, StreamKey, StreamKind, SubscriptionPacket};

/// The video a client receives (audio and control always come).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Subscription {
    /// Every publisher's camera and screen.
    #[default]
    All,
    /// Only these streams.
    Only {
        /// Sessions whose camera we receive.
        video: Vec<SessionId>,
        /// Sessions whose screen we receive.
        screen: Vec<SessionId>,
    },
}

impl Subscription {
    /// Most sessions in one list: a page shows tens of tiles; the relay refuses a SUBSCRIPTION
    /// longer than two lists of the meeting's size anyway, so more would only be refused.
    pub const MAX_SESSIONS: usize = 1024;

    /// These streams only (duplicates ignored, each list capped at [`Self::MAX_SESSIONS`]).
    pub fn only(streams: impl IntoIterator<Item = StreamKey>) -> Self {
        let (mut video, mut screen) = (Vec::new(), Vec::new());
        for key in streams {
            match key.kind {
                StreamKind::Camera => video.push(key.session),
                StreamKind::Screen => screen.push(key.session),
            }
        }
        Self::Only { video, screen }
    }

    /// The SUBSCRIPTION packet saying it: lists sorted, deduplicated and capped.
    pub fn to_packet(&self) -> SubscriptionPacket {
        match self {
            Self::All => SubscriptionPacket {
                all: true,
                ..Default::default()
            },
            Self::Only { video, screen } => SubscriptionPacket {
                video: wire_list(video),
                screen: wire_list(screen),
                all: false,
            },
        }
    }
}

fn wire_list(sessions: &[SessionId]) -> Vec<u64> {
    let mut list: Vec<u64> = sessions.iter().map(|s| s.get()).collect();
    list.sort_unstable();
    list.dedup();
    list.truncate(Subscription::MAX_SESSIONS);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> SessionId {
        SessionId::from_wire(n).expect("not zero")
    }

    #[test]
    fn only_sorts_splits_and_deduplicates_streams() {
        let wanted = [
            StreamKey::camera(id(9)),
            StreamKey::screen(id(4)),
            StreamKey::camera(id(2)),
            StreamKey::camera(id(9)),
        ];
        let packet = Subscription::only(wanted).to_packet();
        assert_eq!(
            (packet.video, packet.screen, packet.all),
            (vec![2, 9], vec![4], false)
        );
        assert!(Subscription::All.to_packet().all);
    }

    #[test]
    fn a_subscription_list_is_capped() {
        let many = (1..=5000).map(|n| StreamKey::camera(id(n)));
        let packet = Subscription::only(many).to_packet();
        assert_eq!(packet.video.len(), Subscription::MAX_SESSIONS);
    }
}
