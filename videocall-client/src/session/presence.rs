//! Peers' camera/mic/screen/speaking state, from their heartbeats and the relay's PRESENCE
//! digests (issue #17).
//!
//! We ask the relay for digests (`?presence=1` on the session path, [`ClientConfig::presence`]):
//! it then forwards a peer's HEARTBEAT only when the peer's state changes, and every few seconds
//! sends a digest listing the meeting's participants with their state. A relay of the original
//! project ignores the parameter and forwards every heartbeat; both paths end in the same
//! [`Event::PeerState`], raised only when a peer's state differs from what we knew.
//!
//! A participant listed in a digest is in the meeting: one we did not know is taken as a peer,
//! as media from an unknown session is. Departures are never inferred from silence (the relay
//! announces PARTICIPANT_LEFT), so peers whose heartbeats the relay no longer forwards stay.
//!
//! [`ClientConfig::presence`]: super::ClientConfig::presence

use bytes::Bytes;
use prost::Message;
use videocall_types::presence::heartbeat;
use videocall_types::{HeartbeatMetadata, PresenceDigest, SessionId, UserId};

use super::{Event, Session, SessionError};

/// Entries of one digest looked at; the relay sends at most 256 (the rest is ignored).
pub const MAX_DIGEST_ENTRIES: usize = 1024;

impl Session {
    /// A peer's last known state (from its heartbeats or the relay's digests).
    pub fn peer_state(&self, session: SessionId) -> Option<HeartbeatMetadata> {
        self.peer_states.get(&session).copied()
    }

    /// A PRESENCE digest from the relay.
    pub(super) fn presence_digest(&mut self, data: Bytes) -> Result<(), SessionError> {
        let digest =
            PresenceDigest::decode(data).map_err(|e| SessionError::Malformed(e.to_string()))?;
        let ours = self.session_id();
        for entry in digest.entries.into_iter().take(MAX_DIGEST_ENTRIES) {
            let Some(session) = SessionId::from_wire(entry.session_id) else {
                continue;
            };
            if Some(session) == ours || self.retired.contains(&session) {
                continue;
            }
            let Some(user) = UserId::from_wire(&entry.user_id) else {
                continue;
            };
            if !self.peers.contains_key(&session) {
                self.peer_joined(session, &user);
            }
            self.apply_peer_state(session, heartbeat(entry.flags));
        }
        Ok(())
    }

    /// Records `state` for peer `session`; tells the application when it changed.
    pub(super) fn apply_peer_state(&mut self, session: SessionId, state: HeartbeatMetadata) {
        let Some(user) = self.peers.get(&session) else {
            return;
        };
        if self.peer_states.insert(session, state) != Some(state) {
            self.events.push_back(Event::PeerState {
                session,
                user: user.clone(),
                state,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use videocall_types::presence::{AUDIO, VIDEO, presence_packet};
    use videocall_types::{
        MediaPacket, MediaType, MeetingId, PacketType, PacketWrapper, PresenceEntry, UserId,
        packets,
    };

    use super::*;
    use crate::ClientConfig;

    fn joined() -> Session {
        let config =
            ClientConfig::new(UserId::new("alice").unwrap(), MeetingId::new("m1").unwrap());
        let mut session = Session::new(config);
        session.handle_start(Duration::ZERO);
        session.handle_connected(Duration::ZERO);
        let assigned = packets::session_assigned(SessionId::new(1, 1));
        session
            .handle_packet(Duration::ZERO, packets::encode(&assigned))
            .unwrap();
        while session.poll_event().is_some() {}
        session
    }

    fn digest(entries: &[(SessionId, &str, u32)]) -> Bytes {
        let digest = PresenceDigest {
            entries: entries
                .iter()
                .map(|(s, user, flags)| PresenceEntry {
                    session_id: s.get(),
                    user_id: Bytes::copy_from_slice(user.as_bytes()),
                    flags: *flags,
                })
                .collect(),
            chunk: 0,
            chunks: 1,
        };
        packets::encode(&presence_packet(&digest))
    }

    fn states(session: &mut Session) -> Vec<(SessionId, HeartbeatMetadata)> {
        std::iter::from_fn(|| session.poll_event())
            .filter_map(|e| match e {
                Event::PeerState { session, state, .. } => Some((session, state)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_digest_brings_peers_and_their_state_and_repeats_raise_nothing() {
        let mut s = joined();
        let (bob, me) = (SessionId::new(1, 2), SessionId::new(1, 1));
        s.handle_packet(
            Duration::ZERO,
            digest(&[(bob, "bob", VIDEO), (me, "alice", 0)]),
        )
        .unwrap();
        assert_eq!(s.peers().get(&bob).map(UserId::as_str), Some("bob"));
        assert!(!s.peers().contains_key(&me), "never our own session");
        assert_eq!(s.peer_state(bob), Some(heartbeat(VIDEO)));
        assert_eq!(states(&mut s), [(bob, heartbeat(VIDEO))]);
        s.handle_packet(Duration::ZERO, digest(&[(bob, "bob", VIDEO)]))
            .unwrap();
        assert!(states(&mut s).is_empty(), "nothing changed");
        s.handle_packet(Duration::ZERO, digest(&[(bob, "bob", AUDIO)]))
            .unwrap();
        assert_eq!(states(&mut s), [(bob, heartbeat(AUDIO))]);
    }

    #[test]
    fn a_heartbeat_changes_the_state_a_digest_told_and_a_digest_never_removes_a_peer() {
        let mut s = joined();
        let (bob, carol) = (SessionId::new(1, 2), SessionId::new(1, 3));
        s.handle_packet(
            Duration::ZERO,
            digest(&[(bob, "bob", 0), (carol, "carol", 0)]),
        )
        .unwrap();
        let beat = MediaPacket {
            media_type: MediaType::Heartbeat as i32,
            heartbeat_metadata: Some(heartbeat(VIDEO | AUDIO)),
            ..Default::default()
        };
        let wrapper = PacketWrapper {
            packet_type: PacketType::Media as i32,
            user_id: Bytes::from_static(b"bob"),
            data: packets::encode(&beat),
            session_id: bob.get(),
        };
        while s.poll_event().is_some() {}
        s.handle_packet(Duration::ZERO, packets::encode(&wrapper))
            .unwrap();
        assert_eq!(states(&mut s), [(bob, heartbeat(VIDEO | AUDIO))]);
        // A digest that does not list carol (another chunk) leaves her alone.
        s.handle_packet(Duration::ZERO, digest(&[(bob, "bob", VIDEO | AUDIO)]))
            .unwrap();
        assert!(s.peers().contains_key(&carol));
    }

    #[test]
    fn a_digest_from_a_peer_or_malformed_is_not_the_relays_word() {
        let mut s = joined();
        let mut forged = PacketWrapper::decode(digest(&[(SessionId::new(1, 9), "x", 0)])).unwrap();
        forged.user_id = Bytes::from_static(b"mallory");
        s.handle_packet(Duration::ZERO, packets::encode(&forged))
            .unwrap();
        assert!(s.peers().is_empty());
        let mut broken = forged;
        broken.user_id = Bytes::from_static(videocall_types::SYSTEM_USER_ID.as_bytes());
        broken.data = Bytes::from_static(&[0xff, 0xff, 0xff]);
        assert!(matches!(
            s.handle_packet(Duration::ZERO, packets::encode(&broken)),
            Err(SessionError::Malformed(_))
        ));
    }
}
