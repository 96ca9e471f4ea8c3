//! Where the session connects, the relay's reconnect secret that lets it replace its own
//! earlier session (the relay refuses a second connection for a present user otherwise), and
//! moving to another relay when ours drains.

use std::time::Duration;

use videocall_types::lobby::LobbyPath;
use videocall_types::presence::PRESENCE_QUERY;
use videocall_types::{MeetingPacket, SessionId};

use super::{Action, Session};

/// Longest reconnect secret kept (the relay's are 49 characters).
const MAX_SECRET_LEN: usize = 128;
/// Longest part of a draining relay's message kept in the disconnect reason.
const MAX_DRAIN_MESSAGE_CHARS: usize = 200;

impl Session {
    /// The path (and query) to connect to now: `/lobby?token=…` with a room token, else
    /// `/lobby/{user}/{meeting}`, with `reconnect=<secret>` once the relay issued us one; and
    /// `presence=1` when we take presence digests.
    pub fn lobby_path(&self) -> LobbyPath {
        let path = match (&self.config.token, &self.reconnect_secret) {
            (Some(token), _) => LobbyPath::token(token.clone()),
            (None, secret) => {
                let path =
                    LobbyPath::open(self.config.user_id.clone(), self.config.meeting_id.clone());
                match secret {
                    Some(secret) => path.with_query("reconnect", secret.clone()),
                    None => path,
                }
            }
        };
        let (key, value) = PRESENCE_QUERY;
        if self.config.presence {
            path.with_query(key, value)
        } else {
            path
        }
    }

    /// The relay drains (MEETING `NODE_DRAINING`; it stops for an update): leave it and
    /// reconnect at once, without backoff, to another relay ([`Action::Connect`] `elsewhere`),
    /// presenting our reconnect secret so that our new session replaces this one there; peers
    /// see the replacement, not a departure. Identity and E2EE keys are kept, as on any
    /// reconnect. Ignored unless joined, and when reconnecting is off (the relay closes us at
    /// its drain limit).
    pub(super) fn move_elsewhere(&mut self, now: Duration, message: &str) {
        if self.session_id().is_none() || !self.config.reconnect {
            return;
        }
        let message: String = message.chars().take(MAX_DRAIN_MESSAGE_CHARS).collect();
        self.actions.push_back(Action::Close);
        let reason = format!("the relay is draining: {message}");
        self.lose_connection(now, reason, 1, Some(Duration::ZERO));
        self.connect_to(now, 1, true);
    }

    /// A RECONNECT_SECRET event: kept if it is for our session and URL-safe (it goes into the
    /// query as it is).
    pub(super) fn keep_reconnect_secret(&mut self, event: MeetingPacket) {
        if Some(event.session_id) != self.session_id().map(SessionId::get) {
            return;
        }
        let safe = event.room_token.len() <= MAX_SECRET_LEN
            && event
                .room_token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if safe {
            self.reconnect_secret = Some(event.room_token);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prost::Message;
    use videocall_types::{MeetingEventType, MeetingId, PacketWrapper, UserId, packets};

    use super::*;
    use crate::{ClientConfig, ConnectionState, Event};

    fn joined() -> Session {
        let config =
            ClientConfig::new(UserId::new("alice").unwrap(), MeetingId::new("m1").unwrap());
        let mut session = Session::new(config);
        session.handle_start(Duration::ZERO);
        session.handle_connected(Duration::ZERO);
        let assigned = packets::encode(&packets::session_assigned(SessionId::new(1, 7)));
        session.handle_packet(Duration::ZERO, assigned).unwrap();
        session
    }

    fn secret_event(session: u64, secret: &str) -> bytes::Bytes {
        let event = MeetingPacket {
            event_type: MeetingEventType::ReconnectSecret as i32,
            room_token: secret.to_owned(),
            session_id: session,
            ..Default::default()
        };
        packets::encode(&packets::meeting_event(&event))
    }

    #[test]
    fn the_relays_secret_for_our_session_is_presented_on_reconnect_and_others_are_ignored() {
        let mut session = joined();
        assert_eq!(
            session.lobby_path().to_string(),
            "/lobby/alice/m1?presence=1"
        );
        let ours = SessionId::new(1, 7).get();
        // Another session's secret, or one that is not URL-safe, is not kept.
        for (to, secret) in [
            (ours + 1, "1.ab"),
            (ours, "1.a&b=c"),
            (ours, &"a".repeat(200)),
        ] {
            session
                .handle_packet(Duration::ZERO, secret_event(to, secret))
                .unwrap();
        }
        assert_eq!(
            session.lobby_path().to_string(),
            "/lobby/alice/m1?presence=1"
        );
        session
            .handle_packet(Duration::ZERO, secret_event(ours, "107.0a1b"))
            .unwrap();
        assert_eq!(
            session.lobby_path().to_string(),
            "/lobby/alice/m1?reconnect=107.0a1b&presence=1"
        );
    }

    #[test]
    fn a_hosts_mute_request_from_the_relay_is_raised_and_one_from_a_peer_is_not() {
        let mut session = joined();
        while session.poll_event().is_some() {}
        let request = MeetingPacket {
            event_type: MeetingEventType::MuteRequested as i32,
            ..Default::default()
        };
        let mut forged = packets::meeting_event(&request);
        forged.user_id = bytes::Bytes::from_static(b"mallory");
        session
            .handle_packet(Duration::ZERO, packets::encode(&forged))
            .unwrap();
        assert!(
            std::iter::from_fn(|| session.poll_event()).all(|e| e != crate::Event::MuteRequested)
        );
        session
            .handle_packet(
                Duration::ZERO,
                packets::encode(&packets::meeting_event(&request)),
            )
            .unwrap();
        assert!(
            std::iter::from_fn(|| session.poll_event()).any(|e| e == crate::Event::MuteRequested)
        );
    }

    fn draining(message: &str) -> bytes::Bytes {
        let event = MeetingPacket {
            event_type: MeetingEventType::NodeDraining as i32,
            message: message.to_owned(),
            ..Default::default()
        };
        packets::encode(&packets::meeting_event(&event))
    }

    #[test]
    fn late_media_from_a_replaced_session_does_not_bring_it_back() {
        let mut session = joined();
        let event = |kind, seq| {
            let e = packets::participant_event(
                kind,
                "m1",
                2,
                bytes::Bytes::from_static(b"bob"),
                SessionId::new(2, seq),
            );
            packets::encode(&packets::meeting_event(&e))
        };
        let media_from = |seq| {
            let media = videocall_types::MediaPacket {
                media_type: videocall_types::MediaType::Audio as i32,
                ..Default::default()
            };
            packets::encode(&PacketWrapper {
                packet_type: videocall_types::PacketType::Media as i32,
                user_id: bytes::Bytes::from_static(b"bob"),
                data: packets::encode(&media),
                session_id: SessionId::new(2, seq).get(),
            })
        };
        // Bob moves from session 1 to session 2 (a drain), then audio his old node still had
        // in flight arrives.
        for packet in [
            event(MeetingEventType::ParticipantJoined, 1),
            event(MeetingEventType::ParticipantJoined, 2),
            media_from(1),
        ] {
            session.handle_packet(Duration::ZERO, packet).unwrap();
        }
        let joins: Vec<SessionId> = std::iter::from_fn(|| session.poll_event())
            .filter_map(|e| match e {
                Event::PeerJoined { session, .. } => Some(session),
                _ => None,
            })
            .collect();
        assert_eq!(joins, [SessionId::new(2, 1), SessionId::new(2, 2)]);
        assert_eq!(session.peers().len(), 1);
        // A session announced again (a relay's roster) is a peer again.
        session
            .handle_packet(
                Duration::ZERO,
                event(MeetingEventType::ParticipantJoined, 1),
            )
            .unwrap();
        assert!(session.peers().contains_key(&SessionId::new(2, 1)));
    }

    #[test]
    fn a_draining_relay_makes_the_session_reconnect_at_once_elsewhere_with_its_secret() {
        let mut session = joined();
        let ours = SessionId::new(1, 7).get();
        session
            .handle_packet(Duration::ZERO, secret_event(ours, "107.0a1b"))
            .unwrap();
        let joined = packets::participant_event(
            MeetingEventType::ParticipantJoined,
            "m1",
            2,
            bytes::Bytes::from_static(b"bob"),
            SessionId::new(2, 1),
        );
        session
            .handle_packet(
                Duration::ZERO,
                packets::encode(&packets::meeting_event(&joined)),
            )
            .unwrap();
        while session.poll_event().is_some() {}
        while session.poll_action().is_some() {}

        let now = Duration::from_secs(5);
        session.handle_packet(now, draining("update")).unwrap();
        // The old transport closes and the next attempt starts now, not after a backoff, with
        // another relay first.
        assert_eq!(session.poll_action(), Some(Action::Close));
        assert_eq!(
            session.poll_action(),
            Some(Action::Connect {
                attempt: 1,
                elsewhere: true
            })
        );
        assert_eq!(session.state(), ConnectionState::Connecting { attempt: 1 });
        let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
        assert!(events.contains(&Event::PeerLeft {
            session: SessionId::new(2, 1),
            user: UserId::new("bob").unwrap()
        }));
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Disconnected { reason, retry_in: Some(wait) }
                if wait.is_zero() && reason.contains("draining: update")
        )));
        // It presents its secret, so the new node lets the new session replace this one.
        assert_eq!(
            session.lobby_path().to_string(),
            "/lobby/alice/m1?reconnect=107.0a1b&presence=1"
        );
        // A failed attempt then backs off as usual, and from the relay it moved to.
        session.handle_disconnected(now, "refused");
        assert!(matches!(
            session.state(),
            ConnectionState::Backoff { attempt: 2, .. }
        ));
        session.handle_timeout(now + Duration::from_secs(60));
        assert_eq!(
            session.poll_action(),
            Some(Action::Connect {
                attempt: 2,
                elsewhere: false
            })
        );
    }

    #[test]
    fn a_drain_notice_is_ignored_unless_joined_and_from_the_relay() {
        // From a peer (the relay stamps the sender's identity): not the relay's word.
        let mut session = joined();
        while session.poll_action().is_some() {}
        let mut forged = PacketWrapper::decode(draining("go")).unwrap();
        forged.user_id = bytes::Bytes::from_static(b"mallory");
        session
            .handle_packet(Duration::ZERO, packets::encode(&forged))
            .unwrap();
        assert_eq!(session.poll_action(), None);
        assert!(session.session_id().is_some());
        // Not joined yet: nothing to move.
        let config =
            ClientConfig::new(UserId::new("alice").unwrap(), MeetingId::new("m1").unwrap());
        let mut connecting = Session::new(config);
        connecting.handle_start(Duration::ZERO);
        while connecting.poll_action().is_some() {}
        connecting
            .handle_packet(Duration::ZERO, draining("go"))
            .unwrap();
        assert_eq!(connecting.poll_action(), None);
    }

    #[test]
    fn a_token_session_joins_by_the_token_path() {
        let mut config =
            ClientConfig::new(UserId::new("alice").unwrap(), MeetingId::new("m1").unwrap());
        config.token = Some("h.p.s".into());
        assert_eq!(
            Session::new(config.clone()).lobby_path().to_string(),
            "/lobby?token=h.p.s&presence=1"
        );
        // Acting as a client of the original: no presence digests asked for.
        config.presence = false;
        assert_eq!(
            Session::new(config).lobby_path().to_string(),
            "/lobby?token=h.p.s"
        );
    }
}
