//! What kind of traffic a packet is, as far as routing and congestion are concerned.
//!
//! The relay never needs the media itself; it reads the `MediaPacket` header fields (media type,
//! key/delta) when the payload is a plain `MediaPacket`. Payloads it cannot read (encrypted by
//! clients that seal the whole `MediaPacket`) are [`Class::Opaque`]: forwarded while there is
//! room, dropped first under pressure.

use bytes::Bytes;
use prost::Message;
use videocall_types::proto::{KeyRequest, SenderKeyPacket};
use videocall_types::{ChatPacket, MediaPacket, MediaType, PacketType};

/// Routing class of a `PacketWrapper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Keys, meeting events, heartbeats, diagnostics, keyframe requests: always forwarded.
    Control,
    /// Audio: always forwarded, never skipped.
    Audio,
    /// A video frame of the publisher's camera (`screen == false`) or screen-share stream.
    Video { screen: bool, key: bool },
    /// A keyframe request (throttled per sender).
    KeyframeRequest,
    /// An RTT probe: echoed to its sender, not fanned out.
    Rtt,
    /// Media the relay cannot read.
    Opaque,
}

/// Classifies a wrapper of type `packet_type` carrying `data`.
pub(crate) fn classify(packet_type: PacketType, data: &Bytes) -> Class {
    if packet_type != PacketType::Media {
        return Class::Control;
    }
    // Decoding from `Bytes` slices the payload instead of copying it.
    let Ok(media) = MediaPacket::decode(data.clone()) else {
        return Class::Opaque;
    };
    match MediaType::try_from(media.media_type) {
        Ok(MediaType::Video) => Class::Video {
            screen: false,
            key: media.frame_type == "key",
        },
        Ok(MediaType::Screen) => Class::Video {
            screen: true,
            key: media.frame_type == "key",
        },
        Ok(MediaType::Audio) => Class::Audio,
        Ok(MediaType::Heartbeat) => Class::Control,
        Ok(MediaType::KeyframeRequest) => Class::KeyframeRequest,
        Ok(MediaType::Rtt) => Class::Rtt,
        Ok(MediaType::Unknown) | Err(_) => Class::Opaque,
    }
}

/// Whether a MEDIA payload is video, screen or audio **in clear**: a readable `MediaPacket` of
/// those types without a sealed envelope (field 16). Sealed envelopes, heartbeats, RTT probes,
/// keyframe requests and payloads the relay cannot read are not.
pub(crate) fn is_clear_media(packet_type: PacketType, data: &Bytes) -> bool {
    if packet_type != PacketType::Media {
        return false;
    }
    let Ok(media) = MediaPacket::decode(data.clone()) else {
        return false;
    };
    media.sealed.is_none()
        && matches!(
            MediaType::try_from(media.media_type),
            Ok(MediaType::Video | MediaType::Screen | MediaType::Audio)
        )
}

/// Whether a CHAT payload is **not** sealed: anything but a readable `ChatPacket` with a sealed
/// envelope and no clear message. An encrypted meeting accepts only sealed chat (issue #18).
pub(crate) fn is_clear_chat(packet_type: PacketType, data: &Bytes) -> bool {
    if packet_type != PacketType::Chat {
        return false;
    }
    match ChatPacket::decode(data.clone()) {
        Ok(chat) => chat.sealed.is_none() || chat.message.is_some(),
        Err(_) => true,
    }
}

/// The one session a directed packet is for: an AES_KEY carrying exactly one wrap (its
/// recipient), a KEY_REQUEST (its target), or a CHAT with a target session (history for a
/// newcomer). Such packets go to that session only, so a wrap never travels to anyone else.
/// `None`: not such a packet (it is fanned out as before).
pub(crate) fn directed_target(packet_type: PacketType, data: &Bytes) -> Option<u64> {
    match packet_type {
        PacketType::Chat => ChatPacket::decode(data.clone())
            .ok()
            .map(|c| c.target_session)
            .filter(|t| *t != 0),
        PacketType::AesKey => {
            let packet = SenderKeyPacket::decode(data.clone()).ok()?;
            match packet.keys.as_slice() {
                [one] => Some(one.recipient_session),
                _ => None,
            }
        }
        PacketType::KeyRequest => KeyRequest::decode(data.clone())
            .ok()
            .map(|r| r.target_session),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(media_type: MediaType, frame_type: &str) -> Bytes {
        MediaPacket {
            media_type: media_type as i32,
            frame_type: frame_type.into(),
            data: Bytes::from_static(&[1, 2, 3]),
            ..Default::default()
        }
        .encode_to_vec()
        .into()
    }

    #[test]
    fn media_headers_decide_the_class() {
        let c = |t, f| classify(PacketType::Media, &media(t, f));
        assert_eq!(
            c(MediaType::Video, "key"),
            Class::Video {
                screen: false,
                key: true
            }
        );
        assert_eq!(
            c(MediaType::Screen, "delta"),
            Class::Video {
                screen: true,
                key: false
            }
        );
        assert_eq!(c(MediaType::Audio, "key"), Class::Audio);
        assert_eq!(c(MediaType::Heartbeat, ""), Class::Control);
        assert_eq!(c(MediaType::KeyframeRequest, ""), Class::KeyframeRequest);
        assert_eq!(c(MediaType::Rtt, ""), Class::Rtt);
    }

    #[test]
    fn clear_media_is_video_screen_or_audio_without_an_envelope() {
        let clear = |t| is_clear_media(PacketType::Media, &media(t, "key"));
        assert!(clear(MediaType::Video) && clear(MediaType::Screen) && clear(MediaType::Audio));
        assert!(!clear(MediaType::Heartbeat) && !clear(MediaType::Rtt));
        let sealed: Bytes = MediaPacket {
            media_type: MediaType::Video as i32,
            frame_type: "key".into(),
            sealed: Some(Default::default()),
            ..Default::default()
        }
        .encode_to_vec()
        .into();
        assert!(!is_clear_media(PacketType::Media, &sealed));
        assert!(!is_clear_media(
            PacketType::AesKey,
            &media(MediaType::Audio, "")
        ));
        assert!(!is_clear_media(
            PacketType::Media,
            &Bytes::from_static(&[0xff; 4])
        ));
    }

    #[test]
    fn only_sealed_chat_without_a_clear_message_is_not_clear() {
        let chat = |packet: ChatPacket| -> Bytes { packet.encode_to_vec().into() };
        let sealed = ChatPacket {
            sealed: Some(Default::default()),
            ..Default::default()
        };
        assert!(!is_clear_chat(PacketType::Chat, &chat(sealed.clone())));
        let clear = ChatPacket {
            message: Some(Default::default()),
            ..Default::default()
        };
        assert!(is_clear_chat(PacketType::Chat, &chat(clear.clone())));
        let both = ChatPacket {
            message: clear.message,
            ..sealed.clone()
        };
        assert!(is_clear_chat(PacketType::Chat, &chat(both)));
        assert!(is_clear_chat(
            PacketType::Chat,
            &Bytes::from_static(&[0xff; 4])
        ));
        assert!(!is_clear_chat(PacketType::Reaction, &chat(sealed)));
    }

    #[test]
    fn chat_with_a_target_is_directed_and_without_one_is_fanned_out() {
        let chat = |target| -> Bytes {
            ChatPacket {
                target_session: target,
                ..Default::default()
            }
            .encode_to_vec()
            .into()
        };
        assert_eq!(directed_target(PacketType::Chat, &chat(42)), Some(42));
        assert_eq!(directed_target(PacketType::Chat, &chat(0)), None);
        assert_eq!(classify(PacketType::Chat, &chat(0)), Class::Control);
        assert_eq!(classify(PacketType::Reaction, &chat(0)), Class::Control);
    }

    #[test]
    fn unreadable_media_is_opaque_and_other_types_are_control() {
        let garbage = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(classify(PacketType::Media, &garbage), Class::Opaque);
        assert_eq!(classify(PacketType::AesKey, &garbage), Class::Control);
    }
}
