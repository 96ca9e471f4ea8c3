//! The encodings in `shared/wire-vectors.json` were made by the original project's own types:
//! ours must produce exactly the same bytes and read them back.

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    AudioMetadata, HeartbeatMetadata, MediaPacket, MediaType, MeetingEventType, PacketType,
    PacketWrapper, RsaPacket, SessionId, VideoCodec, VideoMetadata, packets,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("vector hex is two hex digits per byte"))
        .collect()
}

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// The vectors as this crate builds them, by name.
fn ours(name: &str) -> Vec<u8> {
    match name {
        "media_wrapper" => PacketWrapper {
            packet_type: PacketType::Media as i32,
            user_id: b(b"alice"),
            data: b(b"x"),
            session_id: 7,
        }
        .encode_to_vec(),
        "session_assigned" => {
            packets::session_assigned(SessionId::from_wire(42).unwrap()).encode_to_vec()
        }
        "participant_joined" => packets::meeting_event(&videocall_types::MeetingPacket {
            display_name: b(b"Bob"),
            ..packets::participant_event(
                MeetingEventType::ParticipantJoined,
                "m1",
                2,
                b(b"bob"),
                SessionId::from_wire(43).unwrap(),
            )
        })
        .encode_to_vec(),
        "video_key" => MediaPacket {
            media_type: MediaType::Video as i32,
            user_id: b(b"alice"),
            data: b(&[1, 2, 3]),
            frame_type: "key".into(),
            timestamp: 1234.5,
            duration: 33.0,
            video_metadata: Some(VideoMetadata {
                sequence: 5,
                codec: VideoCodec::Vp9Profile0Level108bit as i32,
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        "audio" => MediaPacket {
            media_type: MediaType::Audio as i32,
            user_id: b(b"alice"),
            data: b(&[9]),
            frame_type: "key".into(),
            timestamp: 20.0,
            audio_metadata: Some(AudioMetadata {
                audio_format: "opus".into(),
                audio_number_of_channels: 1,
                audio_number_of_frames: 960,
                audio_sample_rate: 48000.0,
                sequence: 9,
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        "heartbeat" => MediaPacket {
            media_type: MediaType::Heartbeat as i32,
            user_id: b(b"alice"),
            timestamp: 1.0,
            heartbeat_metadata: Some(HeartbeatMetadata {
                video_enabled: true,
                audio_enabled: false,
                screen_enabled: false,
                is_speaking: true,
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        "keyframe_request" => MediaPacket {
            media_type: MediaType::KeyframeRequest as i32,
            user_id: b(b"bob"),
            ..Default::default()
        }
        .encode_to_vec(),
        "congestion" => {
            packets::congestion(b(b"bob"), SessionId::from_wire(7).unwrap()).encode_to_vec()
        }
        "rsa_pub_key" => PacketWrapper {
            packet_type: PacketType::RsaPubKey as i32,
            user_id: b(b"alice"),
            data: RsaPacket {
                public_key_der: b(&[0xde, 0xad]),
                user_id: b(b"alice"),
                // E2EE v2's signature fields are empty in the original's packet.
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
            session_id: 7,
        }
        .encode_to_vec(),
        other => panic!("no builder for vector {other}: add one"),
    }
}

/// Decodes `bytes` as the message type of vector `name` and encodes it again.
fn roundtrip(name: &str, bytes: &[u8]) -> Vec<u8> {
    let buf = Bytes::copy_from_slice(bytes);
    match name {
        "video_key" | "audio" | "heartbeat" | "keyframe_request" => MediaPacket::decode(buf)
            .expect("vector decodes as MediaPacket")
            .encode_to_vec(),
        _ => PacketWrapper::decode(buf)
            .expect("vector decodes as PacketWrapper")
            .encode_to_vec(),
    }
}

#[test]
fn media_wrapper_encodes_to_the_documented_bytes() {
    let packet = PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: b(b"alice"),
        data: b(b"x"),
        session_id: 7,
    };
    let expected = hex("08 03 12 05 61 6c 69 63 65 1a 01 78 20 07");
    assert_eq!(packet.encode_to_vec(), expected);
    assert_eq!(PacketWrapper::decode(expected.as_slice()).unwrap(), packet);
}

fn check_vectors_file(path: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("wire-vectors.json is JSON");
    let vectors = doc["vectors"].as_array().expect("a `vectors` array");
    assert!(
        vectors.len() >= 9,
        "expected the nine vectors of the contract"
    );
    for vector in vectors {
        let name = vector["name"].as_str().expect("vector name");
        let expected = hex(vector["hex"].as_str().expect("vector hex"));
        assert_eq!(ours(name), expected, "encoding of {name}");
        assert_eq!(roundtrip(name, &expected), expected, "round trip of {name}");
    }
}

#[test]
fn every_wire_vector_encodes_and_decodes_exactly() {
    // A copy of shared/wire-vectors.json travels with the crate so the test runs anywhere.
    check_vectors_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/wire-vectors.json"
    ));
}

#[test]
fn the_shared_wire_vectors_when_present_still_match() {
    // When the project's shared/ folder sits beside the checkout, hold us to its current copy.
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/wire-vectors.json"
    );
    if std::path::Path::new(shared).exists() {
        check_vectors_file(shared);
    }
}

#[test]
fn rsa_packet_inside_its_wrapper_decodes_to_its_fields() {
    let wrapper = PacketWrapper::decode(Bytes::from(ours("rsa_pub_key"))).unwrap();
    let rsa = RsaPacket::decode(wrapper.data).unwrap();
    assert_eq!(&rsa.public_key_der[..], &[0xde, 0xad]);
    assert_eq!(&rsa.user_id[..], b"alice");
}
