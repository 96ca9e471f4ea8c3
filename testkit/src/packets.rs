//! Building and recognising the packets tests send.

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    AudioMetadata, HeartbeatMetadata, MediaPacket, MediaType, MeetingEventType, MeetingPacket,
    PacketType, PacketWrapper, PresenceDigest,
};

/// A MEDIA wrapper whose identity fields claim to be someone else (the relay must overwrite
/// them).
pub fn media(media_type: MediaType, frame_type: &str, data: Vec<u8>) -> Bytes {
    let media = MediaPacket {
        media_type: media_type as i32,
        user_id: Bytes::from_static(b"forged"),
        frame_type: frame_type.into(),
        data: data.into(),
        ..Default::default()
    };
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: Bytes::from_static(b"mallory"),
        data: media.encode_to_vec().into(),
        session_id: 999,
    }
    .encode_to_vec()
    .into()
}

/// `media` in a MEDIA wrapper, in clear (the relay fills in who sent it).
pub fn wrap(media: &MediaPacket) -> Bytes {
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        data: media.encode_to_vec().into(),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// An audio packet carrying `tag`.
pub fn audio(tag: &str) -> Bytes {
    media(MediaType::Audio, "key", tag.as_bytes().to_vec())
}

/// The `sequence`-th 20 ms audio frame a client core sends (160 bytes; the sequence number in
/// its metadata lets a receiver see every gap).
pub fn numbered_audio(sequence: u64) -> MediaPacket {
    MediaPacket {
        media_type: MediaType::Audio as i32,
        data: vec![0x5a; 160].into(),
        frame_type: "key".into(),
        audio_metadata: Some(AudioMetadata {
            sequence,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A video frame whose payload starts with `seq` (big-endian) and has `size` bytes.
pub fn video(seq: u32, key: bool, size: usize) -> Bytes {
    let mut data = seq.to_be_bytes().to_vec();
    data.resize(size.max(4), 0x5A);
    media(MediaType::Video, if key { "key" } else { "delta" }, data)
}

/// The media packet inside `wrapper`, if it is one.
pub fn media_of(wrapper: &PacketWrapper) -> Option<MediaPacket> {
    (wrapper.packet_type == PacketType::Media as i32)
        .then(|| MediaPacket::decode(wrapper.data.clone()).ok())
        .flatten()
}

/// True for an audio packet carrying `tag`.
pub fn is_audio(wrapper: &PacketWrapper, tag: &str) -> bool {
    media_of(wrapper)
        .is_some_and(|m| m.media_type == MediaType::Audio as i32 && m.data == tag.as_bytes())
}

/// The sequence number of a video frame made by [`video`].
pub fn video_seq(wrapper: &PacketWrapper) -> Option<u32> {
    let media = media_of(wrapper)?;
    (media.media_type == MediaType::Video as i32 && media.data.len() >= 4)
        .then(|| u32::from_be_bytes(media.data[..4].try_into().expect("length checked")))
}

/// True for a PARTICIPANT_JOINED naming `user`.
pub fn is_joined(wrapper: &PacketWrapper, user: &str) -> bool {
    wrapper.packet_type == PacketType::Meeting as i32
        && MeetingPacket::decode(wrapper.data.clone()).is_ok_and(|e| {
            e.event_type == MeetingEventType::ParticipantJoined as i32
                && e.target_user_id == user.as_bytes()
        })
}

/// A HEARTBEAT saying the camera is `video` (the mic on), as clients send every second.
pub fn heartbeat(video: bool) -> Bytes {
    let media = MediaPacket {
        media_type: MediaType::Heartbeat as i32,
        heartbeat_metadata: Some(HeartbeatMetadata {
            video_enabled: video,
            audio_enabled: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    wrap(&media)
}

/// The state in a HEARTBEAT from `session`, if `wrapper` is one.
pub fn heartbeat_from(wrapper: &PacketWrapper, session: u64) -> Option<HeartbeatMetadata> {
    let media = media_of(wrapper)?;
    (wrapper.session_id == session && media.media_type == MediaType::Heartbeat as i32)
        .then(|| media.heartbeat_metadata.unwrap_or_default())
}

/// The digest in a PRESENCE wrapper, if `wrapper` is one.
pub fn presence_of(wrapper: &PacketWrapper) -> Option<PresenceDigest> {
    (wrapper.packet_type == PacketType::Presence as i32)
        .then(|| PresenceDigest::decode(wrapper.data.clone()).ok())
        .flatten()
}
