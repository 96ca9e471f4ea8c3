//! The scanner against `prost`: random valid packets (with unknown fields and merged
//! duplicates), random mutations of them and random bytes. The encoder against `prost`.

use bytes::Bytes;
use prost::Message;
use videocall_types::proto::SealedMedia;
use videocall_types::{
    AudioMetadata, HeartbeatMetadata, MediaPacket, MediaType, PacketType, PacketWrapper,
    VideoCodec, VideoMetadata,
};

use super::*;

/// SplitMix64, seeded: every failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Small values mostly, sometimes any: varints of every length.
    fn varint(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => self.below(300),
            2 => self.below(1 << 35),
            _ => self.next(),
        }
    }
}

fn random_media(rng: &mut Rng) -> MediaPacket {
    let frame_type = ["key", "delta", "", "ключ"][rng.below(4) as usize];
    MediaPacket {
        media_type: rng.varint() as i32,
        user_id: Bytes::from(rng.bytes(40)),
        data: Bytes::from(rng.bytes(300)),
        frame_type: frame_type.into(),
        timestamp: if rng.chance(3) {
            0.0
        } else {
            f64::from_bits(rng.next())
        },
        duration: f64::from_bits(rng.next()),
        audio_metadata: rng.chance(3).then(|| AudioMetadata {
            audio_format: "opus".into(),
            audio_number_of_channels: rng.varint() as u32,
            sequence: rng.varint(),
            ..Default::default()
        }),
        video_metadata: rng.chance(2).then(|| VideoMetadata {
            sequence: rng.varint(),
            codec: rng.varint() as i32,
        }),
        heartbeat_metadata: rng.chance(4).then(|| HeartbeatMetadata {
            video_enabled: rng.chance(2),
            ..Default::default()
        }),
        sealed: rng.chance(4).then(SealedMedia::default),
    }
}

/// An unknown field (tag outside `known`), of a random wire type.
fn unknown_field(rng: &mut Rng, known: &[u32], out: &mut Vec<u8>) {
    let tag = loop {
        let tag = 1 + rng.below(2000) as u32;
        if !known.contains(&tag) {
            break tag;
        }
    };
    match rng.below(5) {
        0 => {
            encode_key(tag, WireType::Varint, out);
            encode_varint(rng.varint(), out);
        }
        1 => {
            encode_key(tag, WireType::SixtyFourBit, out);
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        2 => {
            encode_key(tag, WireType::ThirtyTwoBit, out);
            out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        3 => {
            let bytes = rng.bytes(50);
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(&bytes);
        }
        _ => {
            // A group holding a varint.
            encode_key(tag, WireType::StartGroup, out);
            encode_key(1, WireType::Varint, out);
            encode_varint(rng.varint(), out);
            encode_key(tag, WireType::EndGroup, out);
        }
    }
}

/// `parts` encoded one after another with unknown fields between them: prost merges them.
fn with_unknowns(rng: &mut Rng, parts: &[Vec<u8>], known: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        for _ in 0..rng.below(3) {
            unknown_field(rng, known, &mut out);
        }
        out.extend_from_slice(part);
    }
    for _ in 0..rng.below(3) {
        unknown_field(rng, known, &mut out);
    }
    out
}

const WRAPPER_FIELDS: &[u32] = &[1, 2, 3, 4];
const MEDIA_FIELDS: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 16];

fn random_packet(rng: &mut Rng) -> Vec<u8> {
    let media_parts: Vec<Vec<u8>> = (0..1 + rng.below(2))
        .map(|_| random_media(rng).encode_to_vec())
        .collect();
    let media = with_unknowns(rng, &media_parts, MEDIA_FIELDS);
    let wrapper = PacketWrapper {
        packet_type: if rng.chance(2) {
            PacketType::Media as i32
        } else {
            rng.varint() as i32
        },
        user_id: Bytes::from(rng.bytes(40)),
        data: Bytes::from(media),
        session_id: rng.varint(),
    };
    with_unknowns(rng, &[wrapper.encode_to_vec()], WRAPPER_FIELDS)
}

/// Where prost decodes, the scanner reads the same; the wrapper scanner fails exactly where
/// prost does (it reads every field prost checks).
fn agree(bytes: &[u8]) {
    let scanned = scan_wrapper(bytes);
    let decoded = PacketWrapper::decode(bytes);
    assert_eq!(scanned.is_ok(), decoded.is_ok(), "{bytes:?}");
    let (Ok(header), Ok(wrapper)) = (scanned, decoded) else {
        return;
    };
    assert_eq!(header.packet_type, wrapper.packet_type);
    assert_eq!(header.user_id, &wrapper.user_id[..]);
    assert_eq!(header.data, &wrapper.data[..]);
    assert_eq!(header.session_id, wrapper.session_id);
    let scanned = scan_media(header.data);
    let Ok(media) = MediaPacket::decode(header.data) else {
        return;
    };
    let scanned = scanned.unwrap_or_else(|e| panic!("prost decodes, the scanner says {e}"));
    assert_eq!(scanned.media_type, media.media_type);
    assert_eq!(scanned.data, &media.data[..]);
    assert_eq!(scanned.frame_type, media.frame_type);
    assert_eq!(scanned.timestamp.to_bits(), media.timestamp.to_bits());
    assert_eq!(
        scanned.video_sequence,
        media.video_metadata.map(|m| m.sequence)
    );
    assert_eq!(scanned.sealed, media.sealed.is_some());
}

#[test]
fn the_scanner_agrees_with_prost_on_random_valid_packets() {
    let mut rng = Rng(1);
    for _ in 0..20_000 {
        let bytes = random_packet(&mut rng);
        assert!(scan_wrapper(&bytes).is_ok());
        agree(&bytes);
    }
}

#[test]
fn mutated_and_random_input_never_panics_and_agrees_where_prost_decodes() {
    let mut rng = Rng(2);
    let mut refused = 0;
    for i in 0..50_000 {
        let mut bytes = if i % 5 == 0 {
            rng.bytes(200)
        } else {
            random_packet(&mut rng)
        };
        for _ in 0..1 + rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes.truncate(at),
                _ => bytes[at] = rng.next() as u8,
            }
        }
        refused += usize::from(scan_wrapper(&bytes).is_err());
        agree(&bytes);
        // The media scanner on bytes that are no media packet at all.
        let _ = scan_media(&bytes);
    }
    // The mutations do produce malformed input (the test covers the error paths).
    assert!(refused > 5_000, "{refused}");
}

#[test]
fn malformed_input_is_an_error() {
    // Truncated varint, a length past the end, tag 0, a stray end group, a wrong wire type.
    for bad in [
        &[0x08, 0x80][..],
        &[0x1a, 0x05, 1, 2],
        &[0x00, 0x01],
        &[0x0c],
        &[0x0a, 0x00],
        &[0x08; 1],
        &[
            0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    ] {
        assert!(scan_wrapper(bad).is_err(), "{bad:?}");
        assert!(PacketWrapper::decode(bad).is_err(), "{bad:?}");
    }
    // A media packet whose video_metadata is cut, or has a mistyped sequence.
    assert_eq!(scan_media(&[0x42, 0x02, 0x08]), Err(ScanError::Malformed));
    assert_eq!(
        scan_media(&[0x42, 0x02, 0x0a, 0x00]),
        Err(ScanError::WireType(1))
    );
    assert_eq!(scan_media(&[0x22, 0x01, 0xff]), Err(ScanError::Utf8));
    // Groups nested past the limit.
    let mut deep = Vec::new();
    for _ in 0..=MAX_GROUP_DEPTH {
        encode_key(100, WireType::StartGroup, &mut deep);
    }
    assert_eq!(scan_wrapper(&deep), Err(ScanError::TooDeep));
    assert_eq!(scan_wrapper(&[]), Ok(WrapperHeader::default()));
}

/// What `Session::send_media` sends for the same frame.
fn session_encoding(media: &OutMedia<'_>) -> Vec<u8> {
    let mut data = media.head.to_vec();
    data.resize(media.size.max(media.head.len()), media.filler);
    let (media_type, frame_type, video_metadata) = match media.kind {
        OutKind::Video { sequence, key } => (
            MediaType::Video,
            if key { "key" } else { "delta" },
            Some(VideoMetadata {
                sequence,
                codec: VideoCodec::Vp8 as i32,
            }),
        ),
        OutKind::Audio => (MediaType::Audio, "key", None),
    };
    let packet = MediaPacket {
        media_type: media_type as i32,
        user_id: Bytes::copy_from_slice(media.user),
        data: Bytes::from(data),
        frame_type: frame_type.into(),
        timestamp: media.timestamp,
        video_metadata,
        ..Default::default()
    };
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        user_id: Bytes::copy_from_slice(media.user),
        data: Bytes::from(packet.encode_to_vec()),
        session_id: media.session_id,
    }
    .encode_to_vec()
}

#[test]
fn encoded_media_is_what_the_session_sends() {
    let kinds = [
        OutKind::Video {
            sequence: 0,
            key: true,
        },
        OutKind::Video {
            sequence: 1,
            key: false,
        },
        OutKind::Video {
            sequence: u64::MAX,
            key: false,
        },
        OutKind::Audio,
    ];
    for kind in kinds {
        for (size, timestamp) in [(7_500, 1234.5), (1_900, 0.001), (100, 0.0), (3, 7.0)] {
            let media = OutMedia {
                kind,
                user: b"pub-3-bench-b-ws-0",
                session_id: 0x0001_0000_0000_002a,
                head: b"VCB1 stamp of 21 byte",
                size,
                filler: 0x42,
                timestamp,
            };
            let mut out = vec![9, 9];
            encode_media(&mut out, &media);
            assert_eq!(&out[..2], &[9, 9]);
            assert_eq!(out[2..], session_encoding(&media), "{kind:?} {size}");
            assert_eq!(out.len() - 2, media.encoded_len());
            // And it scans back.
            let header = scan_wrapper(&out[2..]).unwrap();
            let scanned = scan_media(header.data).unwrap();
            assert_eq!(&scanned.data[..media.head.len()], media.head);
        }
    }
}
