//! Constructors for the packets the server originates, in the exact shapes the original
//! project's clients expect (see ARCHITECTURE.md, "Wire contract").

use bytes::Bytes;
use prost::Message;

use crate::{
    MediaPacket, MediaType, MeetingEventType, MeetingPacket, NoticeReason, PacketType,
    PacketWrapper, RelayNotice, SYSTEM_USER_ID, SessionId,
};

/// Encodes any message into a new refcounted buffer.
pub fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// The first packet of every session: `SESSION_ASSIGNED` from the system id, no data.
pub fn session_assigned(session: SessionId) -> PacketWrapper {
    PacketWrapper {
        packet_type: PacketType::SessionAssigned as i32,
        user_id: Bytes::from_static(SYSTEM_USER_ID.as_bytes()),
        data: Bytes::new(),
        session_id: session.get(),
    }
}

/// `RELAY_NOTICE` to `session`: why the relay refused its input or is closing it.
pub fn relay_notice(session: SessionId, notice: &RelayNotice) -> PacketWrapper {
    PacketWrapper {
        packet_type: PacketType::RelayNotice as i32,
        user_id: Bytes::from_static(SYSTEM_USER_ID.as_bytes()),
        data: encode(notice),
        session_id: session.get(),
    }
}

/// A [`RelayNotice`] with its fields.
pub fn notice(
    reason: NoticeReason,
    packet_type: i32,
    len: usize,
    limit: usize,
    message: impl Into<String>,
) -> RelayNotice {
    RelayNotice {
        reason: reason as i32,
        packet_type,
        len: len as u64,
        limit: limit as u64,
        message: message.into(),
    }
}

/// `CONGESTION` for the sender of a stream that a receiver is dropping: `user_id` is the
/// receiver, `session_id` the sender's session, no data.
pub fn congestion(receiver_user_id: Bytes, sender: SessionId) -> PacketWrapper {
    PacketWrapper {
        packet_type: PacketType::Congestion as i32,
        user_id: receiver_user_id,
        data: Bytes::new(),
        session_id: sender.get(),
    }
}

/// A `MEETING` wrapper from the system id carrying `event`.
pub fn meeting_event(event: &MeetingPacket) -> PacketWrapper {
    PacketWrapper {
        packet_type: PacketType::Meeting as i32,
        user_id: Bytes::from_static(SYSTEM_USER_ID.as_bytes()),
        data: encode(event),
        session_id: 0,
    }
}

/// The MeetingPacket of a PARTICIPANT_JOINED or PARTICIPANT_LEFT event.
pub fn participant_event(
    kind: MeetingEventType,
    room_id: &str,
    participant_count: i64,
    user_id: Bytes,
    session: SessionId,
) -> MeetingPacket {
    MeetingPacket {
        event_type: kind as i32,
        room_id: room_id.to_owned(),
        participant_count,
        display_name: user_id.clone(),
        target_user_id: user_id,
        session_id: session.get(),
        ..Default::default()
    }
}

/// A `MEDIA` wrapper asking `target_user_id` for a keyframe, as the relay sends it on behalf of a
/// receiver that skipped frames. The original's clients send the same shape.
pub fn keyframe_request(target_user_id: Bytes, target: SessionId) -> PacketWrapper {
    let media = MediaPacket {
        media_type: MediaType::KeyframeRequest as i32,
        user_id: target_user_id,
        ..Default::default()
    };
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: Bytes::from_static(SYSTEM_USER_ID.as_bytes()),
        data: encode(&media),
        session_id: target.get(),
    }
}
