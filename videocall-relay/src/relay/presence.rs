//! Presence in O(N) (issue #17): what each participant last said in its heartbeat (camera, mic,
//! screen, speaking), and who is told.
//!
//! Clients heartbeat every second. Forwarding every heartbeat to everyone costs N² packets a
//! second; most say nothing new. Sessions that understand PRESENCE ([`super::Join::presence`],
//! `?presence=1`) therefore receive a peer's HEARTBEAT only when its state is new or changed
//! (forwarded at once, as the sender sent it), and otherwise one PRESENCE digest per
//! [`crate::RelayConfig::presence_digest_interval`] per meeting: the next
//! [`PRESENCE_DIGEST_CHUNK`] participants of the meeting's presence table in session id order,
//! wrapping round, encoded once and shared by every such receiver. A newcomer gets the whole
//! table at once, after the roster. Clients of the original keep receiving every heartbeat.
//!
//! Departures do not depend on any of this: they are PARTICIPANT_LEFT, as before (a silent
//! local session is closed at the idle timeout, a silent remote one expires then).
//!
//! [`Presence`] is the bookkeeping of one meeting, with no output; the `Relay` methods below
//! turn it into deliveries. Every node keeps its own table: remote participants' heartbeats
//! still reach every node serving the meeting over the bus (O(N) per node; see ARCHITECTURE.md).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use videocall_types::presence::{flags, presence_packet};
use videocall_types::{MediaPacket, MediaType, MeetingId, PacketType, SessionId};
use videocall_types::{PresenceDigest, PresenceEntry, packets};

use super::Relay;
use super::timer::Timer;
use crate::classify::Class;

/// Most participants listed in one PRESENCE digest (a user id is at most 256 bytes, so a
/// digest stays under 70 KiB, well inside a session's control budget).
pub const PRESENCE_DIGEST_CHUNK: usize = 256;

/// What a heartbeat told the presence table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// The sender's first heartbeat here.
    New,
    /// Its state differs from its previous heartbeat's.
    Changed,
    /// Nothing new: receivers that take digests are not sent it.
    Same,
    /// The table is full and does not know the sender: forwarded to everyone, as before.
    Full,
}

impl Heard {
    /// Whether receivers that take digests are sent the heartbeat.
    fn forwarded(self) -> bool {
        self != Heard::Same
    }
}

#[derive(Debug)]
struct Entry {
    user: Bytes,
    flags: u32,
}

/// One meeting's presence table and digest rotation.
#[derive(Debug, Default)]
pub(super) struct Presence {
    /// Last heartbeat state by session (local and remote), in session id order.
    entries: BTreeMap<SessionId, Entry>,
    /// The last session listed in the previous digest chunk; the next one starts after it.
    cursor: Option<SessionId>,
    /// Index of the next chunk in the current round.
    chunk: u32,
    /// When the meeting's digest is next due (a [`Timer::PresenceDigest`] firing earlier is
    /// stale: the meeting was forgotten and served again since it was armed).
    pub(super) next_digest: Option<Instant>,
}

impl Presence {
    /// A heartbeat with state `flags` from `session` of `user`; the table holds at most `max`
    /// sessions.
    pub(super) fn handle_heartbeat(
        &mut self,
        session: SessionId,
        user: &Bytes,
        flags: u32,
        max: usize,
    ) -> Heard {
        if let Some(entry) = self.entries.get_mut(&session) {
            if entry.flags == flags {
                return Heard::Same;
            }
            entry.flags = flags;
            return Heard::Changed;
        }
        if self.entries.len() >= max {
            return Heard::Full;
        }
        let user = user.clone();
        self.entries.insert(session, Entry { user, flags });
        Heard::New
    }

    /// `session` left the roster.
    pub(super) fn forget(&mut self, session: SessionId) {
        self.entries.remove(&session);
    }

    /// Sessions in the table.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The next chunk of at most `max` entries in the rotation (`None`: the table is empty).
    /// Chunks never wrap inside: the last one of a round may be short.
    pub(super) fn next_chunk(&mut self, max: usize) -> Option<PresenceDigest> {
        if self.entries.is_empty() {
            return None;
        }
        let chunks = self.chunks(max);
        let start = match self.cursor {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut entries = self.listed(start, max);
        if entries.is_empty() || self.chunk >= chunks {
            // The round is over (the table shrank under the cursor): start the next one.
            self.chunk = 0;
            entries = self.listed(Bound::Unbounded, max);
        }
        let chunk = self.chunk;
        let last = entries
            .last()
            .and_then(|e| SessionId::from_wire(e.session_id));
        let more = last.is_some_and(|last| {
            self.entries
                .range((Bound::Excluded(last), Bound::Unbounded))
                .next()
                .is_some()
        });
        if entries.len() == max && more {
            self.cursor = last;
            self.chunk += 1;
        } else {
            self.cursor = None;
            self.chunk = 0;
        }
        Some(PresenceDigest {
            entries,
            chunk,
            chunks,
        })
    }

    /// The whole table as chunks of at most `max` entries, for a newcomer.
    pub(super) fn full(&self, max: usize) -> Vec<PresenceDigest> {
        let chunks = self.chunks(max);
        let all: Vec<PresenceEntry> = self.listed(Bound::Unbounded, usize::MAX);
        all.chunks(max)
            .enumerate()
            .map(|(i, part)| PresenceDigest {
                entries: part.to_vec(),
                chunk: i as u32,
                chunks,
            })
            .collect()
    }

    fn chunks(&self, max: usize) -> u32 {
        self.entries.len().div_ceil(max.max(1)) as u32
    }

    fn listed(&self, start: Bound<SessionId>, max: usize) -> Vec<PresenceEntry> {
        self.entries
            .range((start, Bound::Unbounded))
            .take(max)
            .map(|(session, e)| PresenceEntry {
                session_id: session.get(),
                user_id: e.user.clone(),
                flags: e.flags,
            })
            .collect()
    }
}

/// The state bits of a readable, unsealed HEARTBEAT (`None`: not one; a sealed or unreadable
/// heartbeat is forwarded to everyone, as before).
pub(super) fn heartbeat_flags(packet_type: PacketType, class: Class, data: &Bytes) -> Option<u32> {
    if packet_type != PacketType::Media || class != Class::Control {
        return None;
    }
    let media = MediaPacket::decode(data.clone()).ok()?;
    if media.media_type != MediaType::Heartbeat as i32 || media.sealed.is_some() {
        return None;
    }
    Some(media.heartbeat_metadata.as_ref().map_or(0, flags))
}

impl Relay {
    /// Fans out `packet` from `origin` in `meeting_id`, as `fan_out` does, except that a
    /// heartbeat saying nothing new (`heartbeat` = its state bits) goes only to receivers that
    /// do not take presence digests.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fan_out_with_presence(
        &mut self,
        now: Instant,
        meeting_id: &MeetingId,
        origin: SessionId,
        packet: &Bytes,
        class: Class,
        origin_user: &Bytes,
        heartbeat: Option<u32>,
    ) {
        let heard = heartbeat.and_then(|bits| {
            let max = self.config.max_sessions_per_meeting + self.config.max_remote_per_meeting;
            let meeting = self.meetings.get_mut(meeting_id)?;
            Some(
                meeting
                    .presence
                    .handle_heartbeat(origin, origin_user, bits, max),
            )
        });
        if heard == Some(Heard::Full) {
            self.metrics.presence_table_full += 1;
        }
        match heard {
            Some(heard) if !heard.forwarded() => {
                let suppressed = self.meetings.get(meeting_id).map_or(0, |m| {
                    m.local
                        .iter()
                        .filter(|s| {
                            **s != origin && self.sessions.get(s).is_some_and(|s| s.presence)
                        })
                        .count()
                });
                self.metrics.heartbeats_suppressed += suppressed as u64;
                self.fan_out_where(now, meeting_id, origin, packet, class, origin_user, |s| {
                    !s.presence
                });
            }
            _ => self.fan_out(now, meeting_id, origin, packet, class, origin_user),
        }
    }

    /// Arms the meeting's digest timer if it is not armed.
    pub(super) fn arm_presence_digest(&mut self, now: Instant, meeting_id: &MeetingId) {
        let at = now + self.config.presence_digest_interval;
        if let Some(meeting) = self.meetings.get_mut(meeting_id)
            && meeting.presence.next_digest.is_none()
        {
            meeting.presence.next_digest = Some(at);
            self.timers
                .push(at, Timer::PresenceDigest(meeting_id.clone()));
        }
    }

    /// The meeting's digest timer: the next chunk goes to every local session that takes
    /// digests, encoded once; the timer is armed again while the meeting is served.
    pub(super) fn send_presence_digest(&mut self, now: Instant, meeting_id: &MeetingId) {
        let interval = self.config.presence_digest_interval;
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return; // no longer served: the timer ends here
        };
        if meeting.presence.next_digest.is_some_and(|due| now < due) {
            return; // a stale timer of an earlier time the meeting was served
        }
        let at = now + interval;
        meeting.presence.next_digest = Some(at);
        self.timers
            .push(at, Timer::PresenceDigest(meeting_id.clone()));
        let sessions = &self.sessions;
        let receivers: Vec<SessionId> = meeting
            .local
            .iter()
            .copied()
            .filter(|s| sessions.get(s).is_some_and(|s| s.presence))
            .collect();
        if receivers.is_empty() {
            return;
        }
        let Some(digest) = meeting.presence.next_chunk(PRESENCE_DIGEST_CHUNK) else {
            return;
        };
        let packet = packets::encode(&presence_packet(&digest));
        for receiver in receivers {
            self.metrics.presence_digests += 1;
            self.send_to(receiver, packet.clone());
        }
    }

    /// A newcomer that takes digests is sent the meeting's whole presence table.
    pub(super) fn send_full_digest(&mut self, session: SessionId, meeting_id: &MeetingId) {
        let Some(meeting) = self.meetings.get(meeting_id) else {
            return;
        };
        for digest in meeting.presence.full(PRESENCE_DIGEST_CHUNK) {
            self.metrics.presence_digests += 1;
            self.send_to(session, packets::encode(&presence_packet(&digest)));
        }
    }
}

#[cfg(test)]
mod tests;
