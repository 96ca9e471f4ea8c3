//! Chat, raised hands and reactions in the session (issue #18).
//!
//! CHAT carries a `ChatPacket`: in an encrypted meeting its `ChatMessage` is sealed with our
//! sender key ([`E2ee::seal_payload`](crate::e2ee::E2ee::seal_payload)), in a clear one it
//! travels as is. When someone joins, the member with the lowest session id of those present
//! before re-sends the recent history to the newcomer alone (`target_session`), sealed right
//! after our sender key went to it, so the relay never holds plaintext nor history. Sealed
//! messages that arrive before their sender's key are held (at most [`PENDING_SEALED`]) and
//! opened once the key is in. REACTION (raise/lower hand, emoji) travels in clear.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use prost::Message;
use rand_core::RngCore;
use videocall_types::proto::SealedMedia;
use videocall_types::{
    ChatMessage, ChatPacket, MeetingEventType, MeetingPacket, PacketType, PacketWrapper,
    ReactionKind, ReactionPacket, SessionId, UserId, chat_limits, packets,
};

use super::{Event, Session, SessionError};
use crate::chat::{self, ChatEntry, ChatError, ChatLog};
use crate::e2ee::{E2eeError, OsRng};

/// Sealed messages held until their sender's key arrives.
const PENDING_SEALED: usize = 64;

/// What the application asks of the session besides media.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Send a chat message to everyone (trimmed; at most 4096 bytes).
    SendChat(String),
    /// Raise our hand.
    RaiseHand,
    /// Lower our hand.
    LowerHand,
    /// A short reaction, one of [`chat_limits::ALLOWED_EMOJI`].
    React(String),
    /// Host only: lower this user's hand (the relay refuses it from anyone else).
    LowerHandOf(String),
}

/// Chat state of a session.
#[derive(Debug, Default)]
pub(super) struct ChatState {
    log: ChatLog,
    hand_raised: bool,
    /// Our roster is complete (the relay's RECONNECT_SECRET follows it): a JOINED from now on
    /// is a newcomer, owed our history if we are the one to send it.
    roster_done: bool,
    /// Newcomers owed our history once our sender key has gone to them (E2EE).
    owed: HashSet<SessionId>,
    /// Sealed messages whose sender's key has not arrived yet.
    pending: VecDeque<(SessionId, UserId, ChatPacket)>,
    /// Chat packets dropped: malformed, oversize, in clear while we encrypt, or not opened.
    dropped: u64,
}

impl Session {
    /// Carries out `command`; `wall_ms` is the time now in Unix milliseconds (what a chat
    /// message says it was sent at).
    pub fn handle_command(&mut self, wall_ms: u64, command: Command) -> Result<(), SessionError> {
        if self.session_id().is_none() {
            return Err(SessionError::NotJoined(self.state));
        }
        match command {
            Command::SendChat(text) => {
                let text = chat::check_text(&text)?.to_owned();
                let mut id = [0u8; chat::ID_BYTES];
                OsRng.fill_bytes(&mut id);
                let message = ChatMessage {
                    id: Bytes::copy_from_slice(&id),
                    text: text.clone(),
                    sent_at_ms: wall_ms,
                    author: Bytes::new(),
                };
                self.send_chat_message(&message, None)?;
                // Ours too: re-sent to newcomers, and never shown twice.
                self.chat.log.accept(ChatEntry {
                    id: chat::hex(&id),
                    from: self.config.user_id.clone(),
                    text,
                    at_ms: wall_ms,
                    via: None,
                });
                Ok(())
            }
            Command::RaiseHand => self.set_hand(true),
            Command::LowerHand => self.set_hand(false),
            Command::React(emoji) => {
                if !chat::emoji_allowed(&emoji) {
                    return Err(ChatError::EmojiNotAllowed(emoji).into());
                }
                let reaction = ReactionPacket {
                    kind: ReactionKind::Emoji as i32,
                    emoji,
                };
                self.send_packet(PacketType::Reaction, packets::encode(&reaction))
            }
            Command::LowerHandOf(user) => {
                let event = MeetingPacket {
                    event_type: MeetingEventType::LowerHandRequested as i32,
                    room_id: self.config.meeting_id.as_str().to_owned(),
                    target_user_id: Bytes::from(user.into_bytes()),
                    ..Default::default()
                };
                self.send_packet(PacketType::Meeting, packets::encode(&event))
            }
        }
    }

    /// Whether our hand is raised.
    pub fn hand_raised(&self) -> bool {
        self.chat.hand_raised
    }

    /// The chat messages kept (what a newcomer gets from us), oldest first.
    pub fn chat_history(&self) -> impl Iterator<Item = &ChatEntry> {
        self.chat.log.history()
    }

    /// Chat and reaction packets from peers that were dropped (malformed, over a cap, in clear
    /// while we encrypt, sealed while we do not, or not opened).
    pub fn chat_drops(&self) -> u64 {
        self.chat.dropped
    }

    fn set_hand(&mut self, raised: bool) -> Result<(), SessionError> {
        self.chat.hand_raised = raised;
        let kind = if raised {
            ReactionKind::HandRaised
        } else {
            ReactionKind::HandLowered
        };
        let reaction = ReactionPacket {
            kind: kind as i32,
            emoji: String::new(),
        };
        self.send_packet(PacketType::Reaction, packets::encode(&reaction))
    }

    /// Seals (E2EE) or wraps `message` in a CHAT for everyone or for `target` alone.
    fn send_chat_message(
        &mut self,
        message: &ChatMessage,
        target: Option<SessionId>,
    ) -> Result<(), SessionError> {
        let mut packet = ChatPacket {
            target_session: target.map_or(0, SessionId::get),
            ..Default::default()
        };
        match self.e2ee.as_mut() {
            Some(e2ee) => {
                let sealed = e2ee.seal_payload(PacketType::Chat, &message.encode_to_vec())?;
                packet.sealed = Some(sealed);
            }
            None => packet.message = Some(message.clone()),
        }
        self.send_packet(PacketType::Chat, packets::encode(&packet))
    }

    /// A REACTION from a peer.
    pub(super) fn handle_reaction(&mut self, wrapper: PacketWrapper) {
        let Some(session) = SessionId::from_wire(wrapper.session_id) else {
            return;
        };
        let Some(user) = UserId::from_wire(&wrapper.user_id) else {
            self.chat.dropped += 1;
            return;
        };
        let valid = wrapper.data.len() <= chat_limits::MAX_REACTION_PACKET_BYTES;
        let reaction = ReactionPacket::decode(wrapper.data).ok().filter(|_| valid);
        let event = match reaction
            .as_ref()
            .map(|r| (ReactionKind::try_from(r.kind), r.emoji.as_str()))
        {
            Some((Ok(ReactionKind::HandRaised), _)) => Event::Hand {
                session,
                user,
                raised: true,
            },
            Some((Ok(ReactionKind::HandLowered), _)) => Event::Hand {
                session,
                user,
                raised: false,
            },
            Some((Ok(ReactionKind::Emoji), emoji)) if chat::emoji_allowed(emoji) => {
                Event::Reaction {
                    session,
                    user,
                    emoji: emoji.to_owned(),
                }
            }
            _ => {
                self.chat.dropped += 1;
                return;
            }
        };
        self.events.push_back(event);
    }

    /// A host lowered our hand (MEETING `LOWER_HAND_REQUESTED`): lowered, and everyone told.
    pub(super) fn host_lowered_hand(&mut self) {
        self.chat.hand_raised = false;
        let _ = self.set_hand(false);
        self.events.push_back(Event::HandLoweredByHost);
    }

    /// A CHAT from a peer.
    pub(super) fn handle_chat(&mut self, wrapper: PacketWrapper) {
        let Some(from) = SessionId::from_wire(wrapper.session_id) else {
            return;
        };
        let ours = self.session_id();
        let Some(user) = UserId::from_wire(&wrapper.user_id) else {
            self.chat.dropped += 1;
            return;
        };
        let packet = (wrapper.data.len() <= chat_limits::MAX_CHAT_PACKET_BYTES)
            .then(|| ChatPacket::decode(wrapper.data).ok())
            .flatten()
            .filter(|p| p.target_session == 0 || Some(p.target_session) == ours.map(|s| s.get()));
        match packet {
            Some(packet) if Some(from) != ours => self.open_chat(from, user, packet),
            _ => self.chat.dropped += 1,
        }
    }

    fn open_chat(&mut self, from: SessionId, user: UserId, packet: ChatPacket) {
        let history = packet.target_session != 0;
        let message = match (&mut self.e2ee, packet.sealed.as_ref(), packet.message) {
            (Some(e2ee), Some(sealed), None) => {
                match e2ee.open_payload(from.get(), PacketType::Chat, sealed) {
                    Ok(plain) => ChatMessage::decode(plain.as_slice()).ok(),
                    Err(E2eeError::NoKey { .. }) => {
                        self.hold(from, user, sealed.clone(), history);
                        return;
                    }
                    Err(_) => None,
                }
            }
            (None, None, Some(message)) => Some(message),
            // In clear while we encrypt, or sealed while we do not.
            _ => None,
        };
        let entry = message.and_then(|m| entry(m, &user, history));
        match entry {
            Some(entry) => {
                if self.chat.log.accept(entry.clone()) {
                    self.events.push_back(Event::Chat(entry));
                }
            }
            None => self.chat.dropped += 1,
        }
    }

    fn hold(&mut self, from: SessionId, user: UserId, sealed: SealedMedia, history: bool) {
        if self.chat.pending.len() == PENDING_SEALED {
            self.chat.pending.pop_front();
            self.chat.dropped += 1;
        }
        let packet = ChatPacket {
            // Only whether it was history matters from here on.
            target_session: u64::from(history),
            sealed: Some(sealed),
            message: None,
        };
        self.chat.pending.push_back((from, user, packet));
    }

    /// Opens held messages whose sender's key has arrived (called after every key change).
    pub(super) fn retry_held_chat(&mut self) {
        let Some(e2ee) = &self.e2ee else {
            return;
        };
        if !self
            .chat
            .pending
            .iter()
            .any(|(from, ..)| e2ee.has_key_from(from.get()))
        {
            return;
        }
        let pending = std::mem::take(&mut self.chat.pending);
        for (from, user, packet) in pending {
            let keyed = self
                .e2ee
                .as_ref()
                .is_some_and(|e| e.has_key_from(from.get()));
            if keyed {
                self.open_chat(from, user, packet);
            } else {
                self.chat.pending.push_back((from, user, packet));
            }
        }
    }

    /// We joined (again): the roster comes first.
    pub(super) fn chat_joined(&mut self) {
        self.chat.roster_done = false;
        self.chat.owed.clear();
    }

    /// The relay's RECONNECT_SECRET closes our roster. A hand still raised from before a
    /// reconnect is told again: peers knew it on our old session.
    pub(super) fn chat_roster_done(&mut self) {
        self.chat.roster_done = true;
        if self.chat.hand_raised {
            let _ = self.set_hand(true);
        }
    }

    /// `joined` joined after us: our hand is told again, and if we are the member with the
    /// lowest session id of those present before, our history goes to it — at once in a clear
    /// meeting, after our sender key did when we encrypt.
    pub(super) fn chat_peer_joined(&mut self, joined: SessionId) {
        if !self.chat.roster_done {
            return;
        }
        if self.chat.hand_raised {
            let _ = self.set_hand(true);
        }
        let Some(ours) = self.session_id() else {
            return;
        };
        let lowest = self
            .peers
            .keys()
            .filter(|s| **s != joined)
            .all(|s| ours < *s);
        if !lowest || self.chat.log.is_empty() {
            return;
        }
        if self.e2ee.is_some() {
            self.chat.owed.insert(joined);
        } else {
            self.send_history(joined);
        }
    }

    pub(super) fn chat_peer_left(&mut self, left: SessionId) {
        self.chat.owed.remove(&left);
        self.chat.pending.retain(|(from, ..)| *from != left);
    }

    /// Our sender key just went to `to` (AES_KEY): what we owe it follows.
    pub(super) fn chat_key_sent(&mut self, to: u64) {
        if let Some(to) = SessionId::from_wire(to)
            && self.chat.owed.remove(&to)
        {
            self.send_history(to);
        }
    }

    fn send_history(&mut self, to: SessionId) {
        let messages: Vec<ChatMessage> = self
            .chat
            .log
            .history()
            .filter_map(|e| {
                let id = unhex(&e.id)?;
                Some(ChatMessage {
                    id: id.into(),
                    text: e.text.clone(),
                    sent_at_ms: e.at_ms,
                    author: Bytes::copy_from_slice(e.from.as_bytes()),
                })
            })
            .collect();
        for message in &messages {
            if self.send_chat_message(message, Some(to)).is_err() {
                break;
            }
        }
    }
}

/// The entry shown for `message` from `sender`; `None` when it breaks a rule (id length, text
/// or author too long).
fn entry(message: ChatMessage, sender: &UserId, history: bool) -> Option<ChatEntry> {
    let id_ok = !message.id.is_empty() && message.id.len() <= 2 * chat::ID_BYTES;
    let text_ok = message.text.len() <= chat_limits::MAX_TEXT_BYTES;
    let author_ok = message.author.len() <= chat::MAX_AUTHOR_BYTES;
    if !(id_ok && text_ok && author_ok) {
        return None;
    }
    let (from, via) = if history && !message.author.is_empty() {
        let author = UserId::from_wire(&message.author)?;
        (author, Some(sender.clone()))
    } else {
        (sender.clone(), None)
    };
    Some(ChatEntry {
        id: chat::hex(&message.id),
        from,
        text: message.text,
        at_ms: message.sent_at_ms,
        via,
    })
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

impl From<ChatError> for SessionError {
    fn from(e: ChatError) -> Self {
        SessionError::Chat(e)
    }
}
