//! Host controls: remove a participant, ask one to mute, lower one's raised hand, end the
//! meeting.
//!
//! They come from the meeting API ([`Relay::handle_remove`] and friends, through
//! `NodeHandle`), or in-band from a session with the host grant (a MEETING packet with the
//! event and `target_user_id`). The node that takes one carries it out for its own sessions and
//! publishes it on the bus as a system MEETING event, from the node's own origin
//! (`SessionId::new(node_id, 0)`, never a session), so every other node serving the meeting
//! carries it out for theirs: a removed participant is disconnected on whichever node it is.

use std::collections::HashSet;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use videocall_types::{MeetingEventType, MeetingId, MeetingPacket, SessionId, UserId, packets};

use super::{CloseReason, MAX_REMOVED_PER_MEETING, Relay};
use crate::subject;

/// A host's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostAction {
    /// Disconnect this user and refuse its joins.
    Remove(Bytes),
    /// Ask this user to mute (a MEETING `MUTE_REQUESTED` to its sessions).
    AskToMute(Bytes),
    /// Lower this user's raised hand (a MEETING `LOWER_HAND_REQUESTED` to its sessions, which
    /// lower it and tell everyone).
    LowerHand(Bytes),
    /// Close everyone with MEETING_ENDED.
    End,
}

impl HostAction {
    /// The host action a MEETING packet's data asks for, if any (other events are not host
    /// actions; a removal or mute without a valid target is none either).
    pub(crate) fn from_event(data: &Bytes) -> Option<Self> {
        let event = MeetingPacket::decode(data.clone()).ok()?;
        let target = || {
            let user = std::str::from_utf8(&event.target_user_id).ok()?;
            UserId::new(user).ok()?;
            Some(event.target_user_id.clone())
        };
        match MeetingEventType::try_from(event.event_type).ok()? {
            MeetingEventType::ParticipantRemoved => target().map(Self::Remove),
            MeetingEventType::MuteRequested => target().map(Self::AskToMute),
            MeetingEventType::LowerHandRequested => target().map(Self::LowerHand),
            MeetingEventType::MeetingEnded => Some(Self::End),
            _ => None,
        }
    }

    /// The MEETING event that carries it (to the participants concerned, and on the bus).
    fn event(&self, meeting: &MeetingId) -> Bytes {
        let (kind, target, message) = match self {
            Self::Remove(user) => (
                MeetingEventType::ParticipantRemoved,
                user.clone(),
                CloseReason::Removed.as_str(),
            ),
            Self::AskToMute(user) => (
                MeetingEventType::MuteRequested,
                user.clone(),
                "a host asks you to mute",
            ),
            Self::LowerHand(user) => (
                MeetingEventType::LowerHandRequested,
                user.clone(),
                "a host lowered your hand",
            ),
            Self::End => (
                MeetingEventType::MeetingEnded,
                Bytes::new(),
                CloseReason::MeetingEnded.as_str(),
            ),
        };
        let event = MeetingPacket {
            event_type: kind as i32,
            room_id: meeting.as_str().to_owned(),
            target_user_id: target,
            message: message.to_owned(),
            ..Default::default()
        };
        packets::encode(&packets::meeting_event(&event))
    }
}

impl Relay {
    /// A host removes `user` from `meeting`: its sessions on every node are told
    /// (PARTICIPANT_REMOVED) and closed ([`CloseReason::Removed`]), their leave is announced at
    /// once, and the user's later joins are refused (also after the meeting empties here).
    pub fn handle_remove(&mut self, now: Instant, meeting: &MeetingId, user: &UserId) {
        let action = HostAction::Remove(Bytes::copy_from_slice(user.as_bytes()));
        self.host_action(now, meeting, action);
    }

    /// A host asks `user` in `meeting` to mute: its sessions on every node get a MEETING
    /// `MUTE_REQUESTED` (the client decides; the relay cannot mute encrypted media).
    pub fn handle_ask_to_mute(&mut self, now: Instant, meeting: &MeetingId, user: &UserId) {
        let action = HostAction::AskToMute(Bytes::copy_from_slice(user.as_bytes()));
        self.host_action(now, meeting, action);
    }

    /// A host ends `meeting`: every session on every node gets MEETING_ENDED and is closed
    /// ([`CloseReason::MeetingEnded`]).
    pub fn handle_end_meeting(&mut self, now: Instant, meeting: &MeetingId) {
        self.host_action(now, meeting, HostAction::End);
    }

    /// Carries out `action` here and publishes it for the other nodes.
    pub(super) fn host_action(&mut self, now: Instant, meeting: &MeetingId, action: HostAction) {
        let origin = SessionId::new(self.config.node_id, 0);
        let event = action.event(meeting);
        self.apply_host_action(now, meeting, &action);
        self.publish(subject::session_subject(meeting, origin), event);
    }

    /// Carries out `action` for this node's sessions of `meeting`.
    pub(super) fn apply_host_action(
        &mut self,
        now: Instant,
        meeting_id: &MeetingId,
        action: &HostAction,
    ) {
        if let HostAction::Remove(user) = action {
            let room = self.removed.len() < self.config.max_meetings
                || self.removed.contains_key(meeting_id);
            if room {
                let removed = self.removed.entry(meeting_id.clone()).or_default();
                if removed.len() < MAX_REMOVED_PER_MEETING {
                    removed.insert(user.clone());
                }
            }
        }
        let Some(meeting) = self.meetings.get(meeting_id) else {
            return;
        };
        self.metrics.host_actions += 1;
        let target = match action {
            HostAction::Remove(user)
            | HostAction::AskToMute(user)
            | HostAction::LowerHand(user) => Some(user),
            HostAction::End => None,
        };
        let concerned: Vec<SessionId> = meeting
            .local
            .iter()
            .copied()
            .filter(|s| {
                target.is_none_or(|user| self.sessions.get(s).is_some_and(|s| s.user_bytes == user))
            })
            .collect();
        let event = action.event(meeting_id);
        let close = match action {
            HostAction::Remove(_) => Some(CloseReason::Removed),
            HostAction::End => Some(CloseReason::MeetingEnded),
            HostAction::AskToMute(_) | HostAction::LowerHand(_) => None,
        };
        for session in &concerned {
            self.send_to(*session, event.clone());
            if let Some(reason) = close {
                self.close(now, *session, reason);
            }
        }
        if close.is_some() {
            // Nobody is coming back: announce their leave now, not after the reconnect grace.
            let concerned: HashSet<SessionId> = concerned.into_iter().collect();
            if let Some(meeting) = self.meetings.get_mut(meeting_id) {
                meeting.hasten_leaves(now, |s| concerned.contains(&s));
            }
            self.announce_leaves(now, meeting_id);
        }
    }
}
