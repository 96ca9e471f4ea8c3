//! The reducer's tests (native: `cargo test -p yew-ui`).

use super::*;

/// Session `n` of node 0.
fn sid(n: u32) -> SessionId {
    SessionId::new(0, n)
}

fn joined() -> MeetingState {
    MeetingState::new("alice", "demo")
        .reduce(Action::Connect)
        .reduce(Action::Joined(TransportKind::WebTransport))
        .reduce(Action::PeerJoined {
            session: sid(7),
            user: "bob".into(),
        })
}

#[test]
fn joining_records_the_transport_and_peers() {
    let s = joined();
    assert_eq!(s.phase, Phase::Joined);
    assert_eq!(s.transport.map(TransportKind::label), Some("WebTransport"));
    assert_eq!(s.peers[&sid(7)].user, "bob");
}

#[test]
fn a_failed_connection_is_never_shown_as_joined() {
    let s = MeetingState::new("a", "m")
        .reduce(Action::Connect)
        .reduce(Action::ConnectFailed("no relay reachable".into()));
    assert_eq!(s.phase, Phase::Failed("no relay reachable".into()));
    assert_eq!(s.transport, None);
}

#[test]
fn heartbeats_update_a_peer_and_leaving_unpins_it() {
    let s = joined()
        .reduce(Action::Heartbeat {
            session: sid(7),
            video: true,
            audio: false,
            screen: false,
            speaking: true,
        })
        .reduce(Action::Pin(sid(7)));
    assert!(s.peers[&sid(7)].speaking && s.peers[&sid(7)].video_on && !s.peers[&sid(7)].audio_on);
    assert_eq!(s.pinned, Some(sid(7)));
    let s = s.reduce(Action::Pin(sid(7)));
    assert_eq!(s.pinned, None, "pinning again unpins");
    let s = s
        .reduce(Action::Pin(sid(7)))
        .reduce(Action::PeerLeft { session: sid(7) });
    assert!(s.peers.is_empty());
    assert_eq!(s.pinned, None);
}

#[test]
fn a_screen_tile_appears_with_its_stream_and_goes_with_the_share() {
    let s = joined().reduce(Action::ScreenStream { session: sid(7) });
    assert!(s.peers[&sid(7)].has_screen_stream);
    let s = s.reduce(Action::Heartbeat {
        session: sid(7),
        video: true,
        audio: true,
        screen: false,
        speaking: false,
    });
    assert!(!s.peers[&sid(7)].has_screen_stream);
}

#[test]
fn toggles_stats_and_notices() {
    let s = joined()
        .reduce(Action::ToggleMic)
        .reduce(Action::ToggleCamera)
        .reduce(Action::Rtt(12.5))
        .reduce(Action::Congestion)
        .reduce(Action::Notice("camera blocked".into()))
        .reduce(Action::Notice("camera blocked".into()))
        .reduce(Action::PeerStats {
            session: sid(7),
            fps: 29.0,
            kbps: 480.0,
            decode_queue: 1,
            dropped: 2,
        });
    assert!(!s.mic_on && !s.camera_on);
    assert_eq!((s.rtt_ms, s.congestion_events), (Some(12.5), 1));
    assert_eq!(s.send_quality, None);
    let q = SendQuality {
        rung: 2,
        width: 640,
        height: 360,
        fps: 30,
        kbps: 500,
        reason: "congestion",
        steps_down: 1,
        steps_up: 0,
    };
    let s = s.reduce(Action::SendQuality(q.clone()));
    assert_eq!(s.send_quality, Some(q));
    assert_eq!(s.notices.len(), 1);
    assert_eq!(s.peers[&sid(7)].fps, 29.0);
}

#[test]
fn the_safety_code_shows_only_while_encrypted_and_refused_peers_are_marked() {
    let code = |c: &str| Action::SafetyCode {
        code: c.into(),
        holders: vec![("me".into(), "ab12".into()), ("bob".into(), "cd34".into())],
    };
    let s = joined().reduce(code("12345"));
    assert_eq!(s.safety_code, None, "no code before encryption is decided");
    assert!(s.key_holders.is_empty());
    let s = s
        .reduce(Action::Encryption(true))
        .reduce(code("12345 67890"))
        .reduce(Action::PeerUnencrypted { session: sid(7) })
        .reduce(Action::PeerUnencrypted { session: sid(99) });
    assert_eq!(s.safety_code.as_deref(), Some("12345 67890"));
    assert_eq!(s.key_holders.len(), 2);
    assert!(s.peers[&sid(7)].unencrypted);
    assert_eq!(s.peers.len(), 1, "an unknown session is not invented");
    let s = s.reduce(Action::Encryption(false));
    assert_eq!(s.safety_code, None);
    assert!(s.key_holders.is_empty());
}

#[test]
fn the_media_intent_follows_the_toggles_and_leaving_stops_the_share() {
    let s = joined();
    let all_on = MediaIntent {
        mic: true,
        camera: true,
        screen: false,
    };
    assert_eq!(s.media(), all_on, "mic and camera start on");
    let s = s
        .reduce(Action::ToggleMic)
        .reduce(Action::ToggleCamera)
        .reduce(Action::Sharing(true));
    assert_eq!(
        s.media(),
        MediaIntent {
            mic: false,
            camera: false,
            screen: true
        }
    );
    assert!(!s.reduce(Action::Leave).media().screen);
}

#[test]
fn a_hosts_mute_request_turns_the_mic_off_says_why_and_can_be_undone() {
    let s = joined().reduce(Action::MuteRequested);
    assert!(!s.media().mic && s.media().camera);
    assert_eq!(s.notices, [MUTED_BY_HOST]);
    // Asked twice: still off, said once; the participant may unmute.
    let s = s.reduce(Action::MuteRequested);
    assert_eq!(s.notices.len(), 1);
    assert!(s.reduce(Action::ToggleMic).media().mic);
}

#[test]
fn a_session_the_relay_ended_stays_ended_with_its_reason() {
    let s = joined().reduce(Action::Ended(FinalClose::Replaced));
    assert_eq!(s.phase, Phase::Ended(FinalClose::Replaced));
    assert!(s.peers.is_empty() && s.pinned.is_none());
    // The transport's close that follows does not turn it into a reconnect.
    let s = s.reduce(Action::ConnectionLost("closed".into()));
    assert_eq!(s.phase, Phase::Ended(FinalClose::Replaced));
}

#[test]
fn joins_leaves_messages_and_hands_are_announced_and_the_region_stays_small() {
    let s = joined()
        .reduce(Action::PeerHand {
            session: sid(7),
            raised: true,
        })
        .reduce(Action::PeerHand {
            session: sid(7),
            raised: true,
        })
        .reduce(Action::Chat(ChatLine {
            id: "01".into(),
            from: "bob".into(),
            text: "hello".into(),
            at_ms: 1,
            mine: false,
            via: None,
        }))
        .reduce(Action::PeerLeft { session: sid(7) });
    let said: Vec<_> = s.announcements.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        said,
        [
            "bob joined",
            "bob raised their hand",
            "Message from bob: hello",
            "bob left"
        ]
    );
    let mut s = s;
    for i in 0..20 {
        s = s.reduce(Action::PeerJoined {
            session: sid(100 + i),
            user: format!("u{i}"),
        });
    }
    assert_eq!(s.announcements.len(), MAX_ANNOUNCEMENTS);
    assert_eq!(s.announcements.last().map(|(n, _)| *n), Some(24));
}

#[test]
fn on_a_phone_the_people_list_and_the_chat_open_one_at_a_time() {
    let s = joined()
        .reduce(Action::ToggleChat)
        .reduce(Action::TogglePeople);
    assert!(s.people_open && !s.chat.open);
    let s = s.reduce(Action::ToggleChat);
    assert!(!s.people_open && s.chat.open);
}

#[test]
fn a_lost_connection_clears_peers_until_the_rejoin() {
    let s = joined().reduce(Action::ConnectionLost("reset".into()));
    assert_eq!(s.phase, Phase::Reconnecting("reset".into()));
    assert!(s.peers.is_empty());
    let s = s.reduce(Action::Joined(TransportKind::WebSocket));
    assert_eq!(s.transport, Some(TransportKind::WebSocket));
}

#[test]
fn the_device_panel_toggles_and_switched_devices_are_kept_per_kind() {
    let s = joined().reduce(Action::ToggleDevices);
    assert!(s.devices_open);
    let s = s
        .reduce(Action::DeviceSwitched(DeviceKind::Camera, "cam-2".into()))
        .reduce(Action::DeviceSwitched(DeviceKind::Speaker, "out-1".into()))
        .reduce(Action::ToggleDevices);
    assert!(!s.devices_open);
    assert_eq!(s.devices_in_use.camera.as_deref(), Some("cam-2"));
    assert_eq!(s.devices_in_use.microphone, None);
    assert_eq!(s.devices_in_use.speaker.as_deref(), Some("out-1"));
}
