//! Writes the seed corpus of every target to `fuzz/corpus/<target>/` (run after changing an
//! input format: `cargo run --manifest-path fuzz/Cargo.toml --example seeds`). Seeds are short
//! scenarios in each target's record format with real encoded packets inside, so the fuzzer
//! starts from inputs that get past decoding.

use std::path::Path;

use bytes::Bytes;
use prost::Message;
use videocall_fuzz::input::{push_record, tag_of};
use videocall_fuzz::relay_driver::{Action, BUS_ACTIONS, CLIENT_ACTIONS};
use videocall_fuzz::{client_driver, e2ee_driver, keys};
use videocall_relay::bus_batch::BatchWriter;
use videocall_types::framing::push_frame;
use videocall_types::{
    MediaPacket, MediaType, MeetingEventType, PacketType, PacketWrapper, SessionId,
    SubscriptionPacket, packets,
};

struct Seeds {
    target: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Seeds {
    fn new(target: &'static str) -> Self {
        Self {
            target,
            files: Vec::new(),
        }
    }

    fn add(&mut self, name: &'static str, data: Vec<u8>) {
        self.files.push((name, data));
    }

    fn write(self, root: &Path) {
        // Other files stay: crash inputs (`crash-*`) are kept as seeds so every run replays them.
        let dir = root.join(self.target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, data) in self.files {
            std::fs::write(dir.join(name), data).expect("write a seed");
        }
    }
}

fn media(media_type: MediaType, key: bool, data: &[u8]) -> Bytes {
    packets::encode(&MediaPacket {
        media_type: media_type as i32,
        frame_type: if key { "key" } else { "delta" }.into(),
        user_id: Bytes::from_static(b"alice"),
        data: Bytes::copy_from_slice(data),
        timestamp: 1000.0,
        ..Default::default()
    })
}

fn wrapper(packet_type: PacketType, data: Bytes) -> Bytes {
    packets::encode(&PacketWrapper {
        packet_type: packet_type as i32,
        user_id: Bytes::from_static(b"alice"),
        data,
        session_id: 0,
    })
}

/// Session 0 (alice) sends `packet` as raw bytes.
fn raw(out: &mut Vec<u8>, packet: &[u8]) {
    let mut body = vec![0];
    body.extend_from_slice(packet);
    push_record(out, tag_of(CLIENT_ACTIONS, Action::InboundRaw), &body);
}

fn relay_client() -> Seeds {
    let t = |a| tag_of(CLIENT_ACTIONS, a);
    let mut seeds = Seeds::new("relay_client");

    let mut packets_in = Vec::new();
    raw(
        &mut packets_in,
        &wrapper(PacketType::Media, media(MediaType::Video, true, b"kf")),
    );
    raw(
        &mut packets_in,
        &wrapper(PacketType::Media, media(MediaType::Audio, false, b"a")),
    );
    raw(
        &mut packets_in,
        &wrapper(PacketType::Media, media(MediaType::Rtt, false, b"")),
    );
    raw(
        &mut packets_in,
        &wrapper(
            PacketType::Media,
            media(MediaType::KeyframeRequest, false, b""),
        ),
    );
    raw(
        &mut packets_in,
        &wrapper(PacketType::AesKey, Bytes::from_static(b"\x80\x01\x01")),
    );
    let sub = SubscriptionPacket {
        video: vec![SessionId::new(1, 2).get(), SessionId::new(2, 1).get()],
        screen: vec![],
        all: false,
    };
    raw(
        &mut packets_in,
        &wrapper(PacketType::Subscription, packets::encode(&sub)),
    );
    seeds.add("packets", packets_in);

    let mut congestion = Vec::new();
    push_record(&mut congestion, t(Action::Join), &[0, 2]);
    push_record(
        &mut congestion,
        t(Action::Subscribe),
        &[1, 0, 0x00, 0x40, 0xff, 0, 0, 1, 0, 0, 0, 0, 9],
    );
    for _ in 0..4 {
        let mut body = vec![0, MediaType::Video as u8, 0];
        body.extend_from_slice(&[0x11; 1500]);
        push_record(&mut congestion, t(Action::Media), &body);
    }
    push_record(&mut congestion, t(Action::Flush), &[1]);
    push_record(
        &mut congestion,
        t(Action::Media),
        &[0, MediaType::Video as u8, 1, 1, 2, 3],
    );
    push_record(&mut congestion, t(Action::Transmitted), &[2, 0, 0, 4, 0]);
    push_record(&mut congestion, t(Action::Time), &[0x10, 0]);
    seeds.add("congestion", congestion);

    let mut churn = Vec::new();
    push_record(&mut churn, t(Action::Join), &[1, 3]);
    push_record(
        &mut churn,
        t(Action::InboundWrapped),
        &[
            2,
            PacketType::Subscription as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            0x18,
            0x01,
        ],
    );
    push_record(&mut churn, t(Action::Leave), &[0]);
    push_record(&mut churn, t(Action::Join), &[0, 0]);
    push_record(&mut churn, t(Action::Time), &[0x0f, 0xff]);
    push_record(&mut churn, t(Action::Time), &[0xff, 0xff]);
    seeds.add("churn", churn);
    seeds
}

fn relay_bus() -> Seeds {
    let t = |a| tag_of(BUS_ACTIONS, a);
    let mut seeds = Seeds::new("relay_bus");

    let mut remote = Vec::new();
    // A remote participant joins (event on its session subject), sends media, is directed a
    // keyframe request at one of ours, and leaves.
    push_record(
        &mut remote,
        t(Action::BusEvent),
        &[0, 1, 0, MeetingEventType::ParticipantJoined as u8, 1, 3],
    );
    push_record(
        &mut remote,
        t(Action::BusMedia),
        &[0, 1, 0, MediaType::Video as u8, 1, 9, 9, 9],
    );
    push_record(
        &mut remote,
        t(Action::BusMedia),
        &[0, 1, 0, MediaType::Audio as u8, 0, 1],
    );
    push_record(
        &mut remote,
        t(Action::BusWrapped),
        &[2, 1, 0, PacketType::Congestion as u8, 0],
    );
    push_record(&mut remote, t(Action::Subscribe), &[0, 0, 0x03]);
    push_record(
        &mut remote,
        t(Action::BusEvent),
        &[0, 1, 0, MeetingEventType::ParticipantLeft as u8, 1, 3],
    );
    push_record(&mut remote, t(Action::Time), &[0x20, 0]);
    seeds.add("remote_peer", remote);

    let mut raw = Vec::new();
    let keyframe = packets::encode(&packets::keyframe_request(
        Bytes::from_static(b"alice"),
        SessionId::new(1, 1),
    ));
    let mut body = vec![2, 4, 0];
    body.extend_from_slice(&keyframe);
    push_record(&mut raw, t(Action::BusRaw), &body);
    let mut body = vec![5, 0, 0];
    body.extend_from_slice(b"room.m0.8589934593.4294967297\0");
    body.extend_from_slice(&wrapper(
        PacketType::Media,
        media(MediaType::Screen, true, b"s"),
    ));
    push_record(&mut raw, t(Action::BusRaw), &body);
    let mut body = vec![4, 0, 1];
    body.extend_from_slice(&wrapper(
        PacketType::Media,
        media(MediaType::Video, true, b"echo"),
    ));
    push_record(&mut raw, t(Action::BusRaw), &body);
    push_record(&mut raw, t(Action::Join), &[1, 0]);
    push_record(
        &mut raw,
        t(Action::BusWrapped),
        &[1, 2, 0, PacketType::Media as u8, 2],
    );
    seeds.add("subjects", raw);
    seeds
}

fn client_session() -> Seeds {
    use client_driver::{STEPS, Step};
    let t = |s| tag_of(&STEPS, s);
    let mut seeds = Seeds::new("client_session");
    for (name, e2ee) in [("join_clear", 0u8), ("join_e2ee", 1)] {
        let mut s = vec![e2ee];
        push_record(&mut s, t(Step::Transport), &[1]);
        let assigned = packets::encode(&packets::session_assigned(SessionId::new(1, 1)));
        push_record(&mut s, t(Step::PacketRaw), &assigned);
        push_record(
            &mut s,
            t(Step::Meeting),
            &[MeetingEventType::ParticipantJoined as u8, 0, 1, 0, 2],
        );
        push_record(&mut s, t(Step::PublicKey), &[1, 0, 1]);
        push_record(
            &mut s,
            t(Step::SenderKey),
            &[1, 0, 0, 0, 0, 0, 1, 1, 0, 4, 1, 2, 3, 4],
        );
        push_record(&mut s, t(Step::Unwrapped), &[1]);
        let mut media = vec![1, 0, MediaType::Video as u8, 1 | 2];
        media.extend_from_slice(&1000f64.to_bits().to_be_bytes());
        media.extend_from_slice(&[0, 1, 0, 0, 0xaa, 0xbb]);
        push_record(&mut s, t(Step::Media), &media);
        let mut rtt = vec![0, 4, MediaType::Rtt as u8, 0];
        rtt.extend_from_slice(&900f64.to_bits().to_be_bytes());
        push_record(&mut s, t(Step::Media), &rtt);
        push_record(&mut s, t(Step::Time), &[0, 200]);
        push_record(&mut s, t(Step::App), &[2, 0, 1, 2, 3]);
        push_record(&mut s, t(Step::Transport), &[0]);
        push_record(&mut s, t(Step::Time), &[1, 0]);
        seeds.add(name, s);
    }
    let mut keyframe = vec![0];
    let request = packets::encode(&packets::keyframe_request(
        Bytes::from_static(b"me"),
        SessionId::new(1, 1),
    ));
    push_record(&mut keyframe, t(Step::PacketRaw), &request);
    seeds.add("keyframe_request", keyframe);
    seeds
}

fn e2ee_key_packets() -> Seeds {
    use e2ee_driver::{STEPS, Step};
    let t = |s| tag_of(&STEPS, s);
    let mut seeds = Seeds::new("e2ee_key_packets");
    let mut s = Vec::new();
    push_record(&mut s, t(Step::Joined), &[3]);
    push_record(&mut s, t(Step::PeerJoined), &[0, 2]);
    push_record(&mut s, t(Step::PublicKey), &[0, 2, 1]);
    push_record(&mut s, t(Step::PeerMachine), &[0]);
    push_record(
        &mut s,
        t(Step::PeerMachine),
        &[1, MediaType::Video as u8, 1, 0, 0, 1, 2, 3],
    );
    push_record(
        &mut s,
        t(Step::PeerMachine),
        &[1, MediaType::Audio as u8, 0, 0x80, 7, 4, 5],
    );
    push_record(&mut s, t(Step::PeerJoined), &[1, 0]);
    push_record(&mut s, t(Step::PeerLeft), &[1]);
    push_record(&mut s, t(Step::PeerMachine), &[2, 5]);
    seeds.add("exchange", s);

    let mut s = Vec::new();
    push_record(&mut s, t(Step::Joined), &[4]);
    let mut key = vec![1, 0, 2];
    key.extend_from_slice(keys::identity(1).public_key_der());
    push_record(&mut s, t(Step::PublicKey), &key);
    // Version 1, epoch 1, two wraps: a real one for us, garbage for someone else.
    let mut aes = vec![1, 0, 0, 0, 0, 0, 1, 2, 0, 1];
    aes.extend_from_slice(&[7; 36]);
    aes.extend_from_slice(&[1, 0, 3, 9, 9, 9]);
    push_record(&mut s, t(Step::SenderKey), &aes);
    let raw = videocall_types::proto::SenderKeyPacket {
        version: 1,
        epoch: 2,
        keys: vec![],
        signature: Default::default(),
    }
    .encode_to_vec();
    let mut body = vec![1, 0];
    body.extend_from_slice(&raw);
    push_record(&mut s, t(Step::SenderKeyRaw), &body);
    push_record(&mut s, t(Step::Open), &[1, 0x08, 0x01]);
    seeds.add("keys", s);
    seeds
}

fn deframer() -> Seeds {
    let mut seeds = Seeds::new("deframer");
    // Mode 0: packets to frame; chunk sizes 1, 3, 7.
    let mut s = vec![0, 3, 0, 2, 6];
    for p in [&b"\x08\x03\x12\x01a"[..], b"", &[0x5a; 40]] {
        s.push(p.len() as u8);
        s.extend_from_slice(p);
    }
    seeds.add("packets", s);
    // Mode 1: a raw stream; one chunk size (5).
    let mut s = vec![1, 1, 4];
    push_frame(&mut s, b"\x08\x08");
    push_frame(&mut s, &[1; 9]);
    s.extend_from_slice(&[0, 0, 0]); // a header cut short
    seeds.add("stream", s);
    let mut s = vec![1, 0];
    s.extend_from_slice(&u32::MAX.to_be_bytes());
    seeds.add("too_long", s);
    seeds
}

fn bus_batch() -> Seeds {
    let mut seeds = Seeds::new("bus_batch");
    let mut writer = BatchWriter::new();
    for (tail, payload) in [
        ("17", &b"\x08\x03\x12\x01a"[..]),
        ("17.4", b""),
        ("9", &[0x5a; 40]),
    ] {
        assert!(writer.push(tail, payload));
    }
    let good = writer.finish();
    // Mode 1: a batch as received, whole and cut inside its last entry.
    let mut s = vec![1];
    s.extend_from_slice(&good);
    seeds.add("batch", s.clone());
    s.truncate(s.len() - 3);
    seeds.add("truncated", s);
    // Mode 0: packets to write (one-byte lengths), a refused tail among them.
    let mut s = vec![0];
    for (tail, payload) in [
        (&b"17"[..], &b"abc"[..]),
        (b"batch", b"x"),
        (b"3.12", &[7; 20]),
    ] {
        s.push(tail.len() as u8);
        s.extend_from_slice(tail);
        s.push(payload.len() as u8);
        s.extend_from_slice(payload);
    }
    seeds.add("packets", s);
    seeds
}

fn wt_path() -> Seeds {
    let mut seeds = Seeds::new("wt_path");
    seeds.add("ok", b"/lobby/alice%40example.com/m-1?framed=1".to_vec());
    seeds.add("utf8", "/lobby/zo%C3%AB/team_42".as_bytes().to_vec());
    seeds.add("bad", b"/lobby/a%zz/b.c/d".to_vec());
    seeds
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for seeds in [
        relay_client(),
        relay_bus(),
        client_session(),
        e2ee_key_packets(),
        deframer(),
        wt_path(),
        bus_batch(),
    ] {
        let (target, count) = (seeds.target, seeds.files.len());
        seeds.write(&root);
        println!("{target}: {count} seeds");
    }
}
