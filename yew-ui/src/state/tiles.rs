//! The grid's tiles and which of them get video: one order for both, so the videos we subscribe
//! to are the tiles the page draws first.
//!
//! With more peers than [`MAX_VISIBLE_VIDEOS`] the page subscribes (on demand, at the relay) to
//! the camera video of the pinned peer and then of the first camera tiles in grid order; screens
//! always, since a shared screen is what everyone looks at.

use videocall_client::Subscription;
use videocall_types::{SessionId, StreamKey};

use super::MeetingState;

/// Most remote camera videos received at once (the visible grid).
pub const MAX_VISIBLE_VIDEOS: usize = 9;

impl MeetingState {
    /// The remote tiles in the order the grid draws them: screen shares first (a shared screen
    /// is what the meeting looks at), then cameras, each by session.
    pub fn tiles(&self) -> Vec<StreamKey> {
        let screens = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.has_screen_stream)
            .map(|(session, _)| StreamKey::screen(*session));
        let cameras = self.peers.keys().map(|session| StreamKey::camera(*session));
        screens.chain(cameras).collect()
    }

    /// The (at most `max`) peers whose camera video is shown: the pinned peer first, then the
    /// camera tiles in grid order. A pinned peer who left is not among them.
    pub fn visible(&self, max: usize) -> Vec<SessionId> {
        let pinned = self.pinned.filter(|p| self.peers.contains_key(p));
        let cameras = self
            .tiles()
            .into_iter()
            .filter(|tile| tile.kind == videocall_types::StreamKind::Camera)
            .map(|tile| tile.session)
            .filter(|session| Some(*session) != pinned);
        pinned.into_iter().chain(cameras).take(max).collect()
    }

    /// What to ask the relay for: everyone's video while every peer fits in the grid, else
    /// the [`visible`](Self::visible) cameras and every screen.
    pub fn subscription(&self) -> Subscription {
        if self.peers.len() <= MAX_VISIBLE_VIDEOS {
            return Subscription::All;
        }
        Subscription::Only {
            video: self.visible(MAX_VISIBLE_VIDEOS),
            screen: self.peers.keys().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Action, TransportKind};

    /// The camera and screen lists of an `Only` subscription.
    fn only(subscription: Subscription) -> (Vec<SessionId>, Vec<SessionId>) {
        match subscription {
            Subscription::Only { video, screen } => (video, screen),
            Subscription::All => panic!("everyone's video"),
        }
    }

    fn sid(n: u32) -> SessionId {
        SessionId::new(0, n)
    }

    fn sids(ns: impl IntoIterator<Item = u32>) -> Vec<SessionId> {
        ns.into_iter().map(sid).collect()
    }

    /// Joined, with peers 1..=n arriving in reverse order (join order is not tile order).
    fn meeting_of(n: u32) -> MeetingState {
        let mut s = MeetingState::new("me", "demo")
            .reduce(Action::Connect)
            .reduce(Action::Joined(TransportKind::WebTransport));
        for i in (1..=n).rev() {
            s = s.reduce(Action::PeerJoined {
                session: sid(i),
                user: format!("user{i}"),
            });
        }
        s
    }

    #[test]
    fn with_twelve_peers_the_videos_are_the_first_tiles_with_the_pinned_peer_first() {
        let s = meeting_of(12);
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), sids(1..=9), "tile order");
        let s = s.reduce(Action::Pin(sid(11)));
        let mut want = sids([11]);
        want.extend(sids(1..=8));
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), want);
        let (video, screen) = only(s.subscription());
        assert_eq!(video, want);
        assert_eq!(screen, sids(1..=12), "screens always");
        // The wire carries the same streams (as a sorted set).
        assert_eq!(
            s.subscription().to_packet().video,
            [1, 2, 3, 4, 5, 6, 7, 8, 11]
        );
    }

    #[test]
    fn a_pinned_peer_who_leaves_gives_its_video_slot_back() {
        let s = meeting_of(12)
            .reduce(Action::Pin(sid(12)))
            .reduce(Action::PeerLeft { session: sid(12) });
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), sids(1..=9));
        let s = s.reduce(Action::PeerLeft { session: sid(1) });
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), sids(2..=10));
        assert_eq!(
            only(s.subscription()).0,
            sids(2..=10),
            "ten peers left: the tenth tile has no video"
        );
        let s = s.reduce(Action::PeerLeft { session: sid(2) });
        assert_eq!(
            s.subscription(),
            Subscription::All,
            "nine fit: everyone's video"
        );
    }

    #[test]
    fn a_stale_pin_is_never_subscribed() {
        // A pin survives nothing that removes its peer; even so, `visible` only names peers.
        let mut s = meeting_of(12).reduce(Action::Pin(sid(5)));
        s.peers.remove(&sid(5));
        let visible = s.visible(MAX_VISIBLE_VIDEOS);
        assert!(!visible.contains(&sid(5)));
        assert_eq!(visible.len(), MAX_VISIBLE_VIDEOS);
    }

    #[test]
    fn screens_are_drawn_first_and_do_not_take_camera_slots() {
        let s = meeting_of(12).reduce(Action::ScreenStream { session: sid(10) });
        let tiles = s.tiles();
        assert_eq!(tiles[0], StreamKey::screen(sid(10)));
        assert_eq!(tiles[1], StreamKey::camera(sid(1)));
        assert_eq!(tiles.len(), 13);
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), sids(1..=9));
    }

    #[test]
    fn nine_peers_take_everyone_s_video() {
        let s = meeting_of(9).reduce(Action::Pin(sid(3)));
        assert_eq!(s.subscription(), Subscription::All);
        let s = s.reduce(Action::PeerJoined {
            session: sid(10),
            user: "late".into(),
        });
        let (video, _) = only(s.subscription());
        assert_eq!(video.first(), Some(&sid(3)));
        assert!(!video.contains(&sid(10)), "the tenth tile has no video");
    }
}
