//! The page's tiles, the layout that arranges them, and which of them get video: one order for
//! all three, so the videos we subscribe to are the tiles the page shows.
//!
//! - [`Layout::Grid`]: every tile the same size, screen shares first, then cameras by session;
//! - [`Layout::Speaker`]: the active speaker large (see [`super::speaker`]), the others in a
//!   strip;
//! - [`Layout::Pinned`]: the pinned tile large, the others in a strip (pinning a tile chooses
//!   it; without a pin it shows as the speaker view).
//!
//! With more peers than [`MAX_VISIBLE_VIDEOS`] the page subscribes (on demand, at the relay) to
//! the camera video of the large tile and then of the first camera tiles in order; screens
//! always, since a shared screen is what everyone looks at.

use videocall_client::Subscription;
use videocall_types::{SessionId, StreamKey, StreamKind};

use super::MeetingState;

/// Most remote camera videos received at once (the visible grid, or the large tile and its
/// strip).
pub const MAX_VISIBLE_VIDEOS: usize = 9;

/// How the meeting's tiles are arranged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// Every tile the same size.
    #[default]
    Grid,
    /// The active speaker large, the others in a strip.
    Speaker,
    /// The pinned tile large, the others in a strip.
    Pinned,
}

impl Layout {
    /// Every layout, in the order of the switch.
    pub const ALL: [Layout; 3] = [Layout::Grid, Layout::Speaker, Layout::Pinned];

    /// As the page names it (also its `data-layout` value).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Grid => "grid",
            Layout::Speaker => "speaker",
            Layout::Pinned => "pinned",
        }
    }

    /// As shown on the switch.
    pub fn label(self) -> &'static str {
        match self {
            Layout::Grid => "Grid",
            Layout::Speaker => "Speaker",
            Layout::Pinned => "Pinned",
        }
    }

    /// The layout named `name` (as [`name`](Self::name) gives it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name)
    }
}

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

    /// The layout as shown: pinned while a pinned peer is there (unpinning goes back to the
    /// chosen layout); the pinned layout without a pin shows as the speaker view.
    pub fn shown_layout(&self) -> Layout {
        match (self.pinned_peer(), self.layout) {
            (Some(_), _) => Layout::Pinned,
            (None, Layout::Pinned) => Layout::Speaker,
            (None, layout) => layout,
        }
    }

    /// The active speaker, while still in the meeting.
    pub fn active_speaker(&self) -> Option<SessionId> {
        self.speaker
            .current()
            .filter(|s| self.peers.contains_key(s))
    }

    /// The pinned peer, while still in the meeting.
    fn pinned_peer(&self) -> Option<SessionId> {
        self.pinned.filter(|p| self.peers.contains_key(p))
    }

    /// The tile shown large: none in the grid; the pinned camera in the pinned layout; in the
    /// speaker view the active speaker's camera, or the first tile until someone speaks.
    pub fn main_tile(&self) -> Option<StreamKey> {
        match self.shown_layout() {
            Layout::Grid => None,
            Layout::Pinned => self.pinned_peer().map(StreamKey::camera),
            Layout::Speaker => self
                .active_speaker()
                .map(StreamKey::camera)
                .or_else(|| self.tiles().first().copied()),
        }
    }

    /// The (at most `max`) peers whose camera video is shown: the large tile's first, then the
    /// camera tiles in order. A pinned peer who left is not among them.
    pub fn visible(&self, max: usize) -> Vec<SessionId> {
        let main = self
            .main_tile()
            .filter(|tile| tile.kind == StreamKind::Camera)
            .map(|tile| tile.session);
        let cameras = self
            .tiles()
            .into_iter()
            .filter(|tile| tile.kind == StreamKind::Camera)
            .map(|tile| tile.session)
            .filter(|session| Some(*session) != main);
        main.into_iter().chain(cameras).take(max).collect()
    }

    /// What to ask the relay for: everyone's video while every peer fits on the page, else
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
        assert_eq!(
            s.shown_layout(),
            Layout::Pinned,
            "pinning shows the pinned tile large"
        );
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

    /// Levels every 200 ms for `ms`, `loud` speaking: the speaker view follows them.
    fn speak(mut s: MeetingState, from_ms: u32, ms: u32, loud: u32) -> MeetingState {
        for t in (from_ms..from_ms + ms).step_by(200) {
            s = s.reduce(Action::AudioLevels {
                at_ms: f64::from(t),
                levels: vec![(sid(loud), 0.2)],
            });
        }
        s
    }

    #[test]
    fn the_speaker_view_shows_the_active_speaker_large_and_subscribes_to_it_first() {
        let s = meeting_of(12).reduce(Action::SetLayout(Layout::Speaker));
        assert_eq!(
            s.main_tile(),
            Some(StreamKey::camera(sid(1))),
            "until someone speaks"
        );
        let s = speak(s, 0, 2000, 12);
        assert_eq!(s.active_speaker(), Some(sid(12)));
        assert_eq!(s.main_tile(), Some(StreamKey::camera(sid(12))));
        let mut want = sids([12]);
        want.extend(sids(1..=8));
        assert_eq!(
            only(s.subscription()).0,
            want,
            "the speaker's video, then the strip's"
        );
        // The grid does not care who speaks.
        let s = s.reduce(Action::SetLayout(Layout::Grid));
        assert_eq!(s.main_tile(), None);
        assert_eq!(s.visible(MAX_VISIBLE_VIDEOS), sids(1..=9));
    }

    #[test]
    fn the_layout_survives_a_reconnect_and_unpinning_goes_back_to_the_chosen_one() {
        let s = meeting_of(3)
            .reduce(Action::SetLayout(Layout::Speaker))
            .reduce(Action::Pin(sid(2)));
        assert_eq!(s.shown_layout(), Layout::Pinned);
        assert_eq!(s.main_tile(), Some(StreamKey::camera(sid(2))));
        let s = s.reduce(Action::Pin(sid(2)));
        assert_eq!(
            s.shown_layout(),
            Layout::Speaker,
            "back to the chosen layout"
        );
        let s = s
            .reduce(Action::Pin(sid(3)))
            .reduce(Action::PeerLeft { session: sid(3) });
        assert_eq!(s.shown_layout(), Layout::Speaker, "the pin left");
        let s = s.reduce(Action::ConnectionLost("reset".into()));
        assert_eq!(s.layout, Layout::Speaker, "remembered for the meeting");
    }

    #[test]
    fn levels_of_strangers_are_ignored_and_a_speaker_who_leaves_hands_the_view_back() {
        let s = meeting_of(3).reduce(Action::SetLayout(Layout::Speaker));
        let s = speak(s, 0, 2000, 99);
        assert_eq!(s.active_speaker(), None, "no peer 99");
        let s = speak(s, 2000, 2000, 3);
        assert_eq!(s.main_tile(), Some(StreamKey::camera(sid(3))));
        let s = s.reduce(Action::PeerLeft { session: sid(3) });
        assert_eq!(s.main_tile(), Some(StreamKey::camera(sid(1))));
    }

    #[test]
    fn layouts_have_stable_names() {
        for layout in Layout::ALL {
            assert_eq!(Layout::from_name(layout.name()), Some(layout));
        }
        assert_eq!(Layout::from_name("mosaic"), None);
    }

    #[test]
    fn the_layout_switch_cycles_and_grid_drops_the_pin() {
        let s = meeting_of(7).reduce(Action::NextLayout);
        assert_eq!(s.shown_layout(), Layout::Speaker);
        let s = s.reduce(Action::NextLayout);
        assert_eq!(
            s.shown_layout(),
            Layout::Grid,
            "nothing pinned: no pinned layout"
        );
        let s = s.reduce(Action::NextLayout);
        let s = s.reduce(Action::Pin(sid(7))).reduce(Action::NextLayout);
        assert_eq!(
            (s.shown_layout(), s.pinned),
            (Layout::Grid, None),
            "pinned → grid"
        );
    }
}
