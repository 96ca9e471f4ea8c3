//! Inputs the fuzzer (`fuzz/`, target `client_session`) found to crash the client core, replayed
//! through the public API. Each test names the crash it pins.

use std::time::Duration;

use bytes::Bytes;
use videocall_client::{ClientConfig, Event, Session};
use videocall_types::{
    MediaPacket, MediaType, MeetingId, PacketType, PacketWrapper, SessionId, UserId, packets,
};

fn joined(session: SessionId) -> Session {
    let config = ClientConfig::new(UserId::new("me").unwrap(), MeetingId::new("m0").unwrap());
    let mut s = Session::new(config);
    s.handle_start(Duration::ZERO);
    s.handle_connected(Duration::ZERO);
    s.handle_packet(
        Duration::ZERO,
        packets::encode(&packets::session_assigned(session)),
    )
    .unwrap();
    while s.poll_event().is_some() {}
    s
}

/// Crash: `Duration::from_secs_f64` panicked ("value is either too big or NaN") on an RTT echo
/// whose timestamp was 1e300 (fuzz/corpus/client_session/crash-rtt-timestamp).
#[test]
fn an_rtt_echo_whose_timestamp_is_no_time_is_ignored() {
    let me = SessionId::new(1, 1);
    let mut s = joined(me);
    let now = Duration::from_secs(5);
    for timestamp in [1e300, f64::INFINITY, f64::NAN, -1.0, 1.9e22] {
        let media = MediaPacket {
            media_type: MediaType::Rtt as i32,
            timestamp,
            ..Default::default()
        };
        let echo = PacketWrapper {
            packet_type: PacketType::Media as i32,
            user_id: Bytes::from_static(b"me"),
            data: packets::encode(&media),
            session_id: me.get(),
        };
        s.handle_packet(now, packets::encode(&echo)).unwrap();
        let rtts: Vec<Event> = std::iter::from_fn(|| s.poll_event())
            .filter(|e| matches!(e, Event::Rtt(_)))
            .collect();
        assert!(rtts.is_empty(), "timestamp {timestamp}: {rtts:?}");
    }
    // A sane echo still measures.
    let media = MediaPacket {
        media_type: MediaType::Rtt as i32,
        timestamp: 4_900.0,
        ..Default::default()
    };
    let echo = PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: Bytes::from_static(b"me"),
        data: packets::encode(&media),
        session_id: me.get(),
    };
    s.handle_packet(now, packets::encode(&echo)).unwrap();
    let rtt = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
        Event::Rtt(d) => Some(d),
        _ => None,
    });
    assert_eq!(rtt, Some(Duration::from_millis(100)));
}
