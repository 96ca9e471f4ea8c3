//! Presence (issue #17): a participant's camera/mic/screen/speaking state as the bits of a
//! [`PresenceEntry`](crate::proto::PresenceEntry), and the `PRESENCE` wrapper the relay sends.
//! See `protobuf/presence_packet.proto`.

use bytes::Bytes;

use crate::proto::PresenceDigest;
use crate::{HeartbeatMetadata, PacketType, PacketWrapper, SYSTEM_USER_ID, packets};

/// The query parameter (`?presence=1`) by which a client asks the relay for presence digests
/// instead of every peer's every heartbeat.
pub const PRESENCE_QUERY: (&str, &str) = ("presence", "1");

/// Bit of [`HeartbeatMetadata::video_enabled`].
pub const VIDEO: u32 = 1;
/// Bit of [`HeartbeatMetadata::audio_enabled`].
pub const AUDIO: u32 = 2;
/// Bit of [`HeartbeatMetadata::screen_enabled`].
pub const SCREEN: u32 = 4;
/// Bit of [`HeartbeatMetadata::is_speaking`].
pub const SPEAKING: u32 = 8;

/// The bits of a heartbeat's state.
pub fn flags(heartbeat: &HeartbeatMetadata) -> u32 {
    let bit = |on: bool, bit: u32| if on { bit } else { 0 };
    bit(heartbeat.video_enabled, VIDEO)
        | bit(heartbeat.audio_enabled, AUDIO)
        | bit(heartbeat.screen_enabled, SCREEN)
        | bit(heartbeat.is_speaking, SPEAKING)
}

/// The state the bits say (reserved bits are ignored).
pub fn heartbeat(flags: u32) -> HeartbeatMetadata {
    HeartbeatMetadata {
        video_enabled: flags & VIDEO != 0,
        audio_enabled: flags & AUDIO != 0,
        screen_enabled: flags & SCREEN != 0,
        is_speaking: flags & SPEAKING != 0,
    }
}

/// The `PRESENCE` wrapper carrying `digest`, from the system id.
pub fn presence_packet(digest: &PresenceDigest) -> PacketWrapper {
    PacketWrapper {
        packet_type: PacketType::Presence as i32,
        user_id: Bytes::from_static(SYSTEM_USER_ID.as_bytes()),
        data: packets::encode(digest),
        session_id: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_survives_its_bits_and_reserved_bits_are_ignored() {
        for bits in 0..16 {
            assert_eq!(flags(&heartbeat(bits)), bits);
        }
        assert_eq!(heartbeat(0xF0 | AUDIO), heartbeat(AUDIO));
        assert!(heartbeat(SCREEN).screen_enabled && !heartbeat(SCREEN).video_enabled);
    }
}
