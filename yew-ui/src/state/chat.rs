//! The chat panel, raised hands and reactions as the page shows them (issue #18). Part of the
//! meeting reducer: [`MeetingState`](super::MeetingState) holds a [`ChatPanel`], and hands and
//! reactions live on each [`Peer`](super::Peer).

/// Most messages the panel keeps (the oldest go first).
pub const MAX_CHAT_LINES: usize = 200;
/// How long a reaction shows on a tile, in ms.
pub const REACTION_SHOWN_MS: u32 = 4000;
/// The notice shown when a host lowered our hand.
pub const HAND_LOWERED_BY_HOST: &str = "A host lowered your hand.";

/// One message in the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// The message id (hex): a key for rendering.
    pub id: String,
    /// Its author.
    pub from: String,
    /// The text, shown as text (links: `videocall_client::chat::segments`).
    pub text: String,
    /// When it was sent, Unix ms.
    pub at_ms: u64,
    /// Ours.
    pub mine: bool,
    /// From a newcomer's history: who re-sent it.
    pub via: Option<String>,
}

/// The chat panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPanel {
    /// Messages, oldest first (at most [`MAX_CHAT_LINES`]).
    pub lines: Vec<ChatLine>,
    /// The panel is open.
    pub open: bool,
    /// Messages from others that arrived while it was closed.
    pub unread: u32,
}

impl ChatPanel {
    /// A message arrived (or we sent one); ids already shown are ignored.
    pub(super) fn push(&mut self, line: ChatLine) {
        if self.lines.iter().any(|l| l.id == line.id) {
            return;
        }
        if !self.open && !line.mine {
            self.unread = self.unread.saturating_add(1);
        }
        self.lines.push(line);
        if self.lines.len() > MAX_CHAT_LINES {
            let extra = self.lines.len() - MAX_CHAT_LINES;
            self.lines.drain(..extra);
        }
    }

    /// Opens or closes the panel; opening reads everything.
    pub(super) fn toggle(&mut self) {
        self.open = !self.open;
        if self.open {
            self.unread = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use videocall_types::SessionId;

    use super::super::{Action, MeetingState, TransportKind};
    use super::*;

    fn bob() -> SessionId {
        SessionId::new(0, 7)
    }

    fn joined() -> MeetingState {
        MeetingState::new("alice", "demo")
            .reduce(Action::Connect)
            .reduce(Action::Joined(TransportKind::WebSocket))
            .reduce(Action::PeerJoined {
                session: bob(),
                user: "bob".into(),
            })
    }

    fn line(id: &str, mine: bool) -> ChatLine {
        ChatLine {
            id: id.into(),
            from: if mine { "alice" } else { "bob" }.into(),
            text: format!("message {id}"),
            at_ms: 1,
            mine,
            via: None,
        }
    }

    #[test]
    fn messages_while_the_panel_is_closed_are_unread_until_it_opens() {
        let s = joined()
            .reduce(Action::Chat(line("a", false)))
            .reduce(Action::Chat(line("b", false)))
            .reduce(Action::Chat(line("c", true)));
        assert_eq!(s.chat.unread, 2, "our own message is never unread");
        let s = s.reduce(Action::ToggleChat);
        assert!(s.chat.open);
        assert_eq!(s.chat.unread, 0);
        let s = s.reduce(Action::Chat(line("d", false)));
        assert_eq!(s.chat.unread, 0, "read as it arrives while open");
        let s = s
            .reduce(Action::ToggleChat)
            .reduce(Action::Chat(line("e", false)));
        assert_eq!(s.chat.unread, 1);
        assert_eq!(s.chat.lines.len(), 5);
    }

    #[test]
    fn a_message_is_shown_once_and_the_panel_is_capped() {
        let mut s = joined().reduce(Action::Chat(line("a", false)));
        s = s.reduce(Action::Chat(line("a", false)));
        assert_eq!(s.chat.lines.len(), 1);
        assert_eq!(s.chat.unread, 1);
        for i in 0..(MAX_CHAT_LINES + 10) {
            s = s.reduce(Action::Chat(line(&format!("n{i}"), false)));
        }
        assert_eq!(s.chat.lines.len(), MAX_CHAT_LINES);
        assert_eq!(s.chat.lines[0].id, "n10");
    }

    #[test]
    fn hands_show_on_peers_and_a_host_can_lower_ours() {
        let s = joined()
            .reduce(Action::PeerHand {
                session: bob(),
                raised: true,
            })
            .reduce(Action::OwnHand(true));
        assert!(s.peers[&bob()].hand_raised);
        assert!(s.hand_raised);
        let s = s.reduce(Action::HandLoweredByHost);
        assert!(!s.hand_raised);
        assert!(s.notices.iter().any(|n| n == HAND_LOWERED_BY_HOST));
        let s = s.reduce(Action::PeerHand {
            session: bob(),
            raised: false,
        });
        assert!(!s.peers[&bob()].hand_raised);
        // A hand of someone who is not there changes nothing.
        let s2 = s.clone().reduce(Action::PeerHand {
            session: SessionId::new(0, 99),
            raised: true,
        });
        assert_eq!(s2, s);
    }

    #[test]
    fn a_reaction_expires_only_if_no_newer_one_replaced_it() {
        let react = |seq, emoji: &str| Action::Reaction {
            session: bob(),
            emoji: emoji.into(),
            seq,
        };
        let s = joined().reduce(react(1, "👍")).reduce(react(2, "🎉"));
        let s = s.reduce(Action::ReactionExpired {
            session: bob(),
            seq: 1,
        });
        assert_eq!(s.peers[&bob()].reaction, Some((2, "🎉".into())));
        let s = s.reduce(Action::ReactionExpired {
            session: bob(),
            seq: 2,
        });
        assert_eq!(s.peers[&bob()].reaction, None);
    }
}
