//! Where the session connects, and the relay's reconnect secret that lets it replace its own
//! earlier session (the relay refuses a second connection for a present user otherwise).

use videocall_types::lobby::LobbyPath;
use videocall_types::{MeetingPacket, SessionId};

use super::Session;

/// Longest reconnect secret kept (the relay's are 49 characters).
const MAX_SECRET_LEN: usize = 128;

impl Session {
    /// The path (and query) to connect to now: `/lobby?token=…` with a room token, else
    /// `/lobby/{user}/{meeting}`, with `?reconnect=<secret>` once the relay issued us one.
    pub fn lobby_path(&self) -> LobbyPath {
        if let Some(token) = &self.config.token {
            return LobbyPath::token(token.clone());
        }
        let path = LobbyPath::open(self.config.user_id.clone(), self.config.meeting_id.clone());
        match &self.reconnect_secret {
            Some(secret) => path.with_query("reconnect", secret.clone()),
            None => path,
        }
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

    use videocall_types::{MeetingEventType, MeetingId, UserId, packets};

    use super::*;
    use crate::ClientConfig;

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
        assert_eq!(session.lobby_path().to_string(), "/lobby/alice/m1");
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
        assert_eq!(session.lobby_path().to_string(), "/lobby/alice/m1");
        session
            .handle_packet(Duration::ZERO, secret_event(ours, "107.0a1b"))
            .unwrap();
        assert_eq!(
            session.lobby_path().to_string(),
            "/lobby/alice/m1?reconnect=107.0a1b"
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

    #[test]
    fn a_token_session_joins_by_the_token_path() {
        let mut config =
            ClientConfig::new(UserId::new("alice").unwrap(), MeetingId::new("m1").unwrap());
        config.token = Some("h.p.s".into());
        assert_eq!(
            Session::new(config).lobby_path().to_string(),
            "/lobby?token=h.p.s"
        );
    }
}
