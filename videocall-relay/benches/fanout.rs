//! Fan-out cost in the core, no sockets: one publisher, 100 subscribers in one meeting.
//! The figure to read is time per iteration / 99 deliveries = ns per delivered packet.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use videocall_relay::{Output, Relay, RelayConfig};
use videocall_types::{MediaPacket, MediaType, MeetingId, PacketType, PacketWrapper, UserId};

fn frame(size: usize, key: bool) -> Bytes {
    let media = MediaPacket {
        media_type: MediaType::Video as i32,
        frame_type: if key { "key" } else { "delta" }.into(),
        data: vec![0xAB; size].into(),
        ..Default::default()
    };
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        data: media.encode_to_vec().into(),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

fn fanout(c: &mut Criterion) {
    const SUBSCRIBERS: usize = 100;
    let config = RelayConfig {
        // The bench measures routing, not the rate limiter.
        max_inbound_packets_per_sec: u64::MAX / 4,
        max_inbound_bytes_per_sec: u64::MAX / 4,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(config);
    let mut now = Instant::now();
    let meeting = MeetingId::new("bench").unwrap();
    let publisher = relay
        .handle_join(now, UserId::new("publisher").unwrap(), meeting.clone())
        .unwrap();
    for i in 1..SUBSCRIBERS {
        relay
            .handle_join(now, UserId::new(format!("s{i}")).unwrap(), meeting.clone())
            .unwrap();
    }
    while relay.poll_output().is_some() {}

    let mut group = c.benchmark_group("fanout_1_to_99");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64 - 1));
    for (name, size) in [("delta_1900B", 1900), ("key_7500B", 7500)] {
        let packet = frame(size, size > 2000);
        group.bench_function(name, |b| {
            b.iter(|| {
                now += Duration::from_micros(10);
                relay
                    .handle_inbound(now, publisher, packet.clone())
                    .unwrap();
                let mut delivered = 0;
                while let Some(output) = relay.poll_output() {
                    if let Output::Transmit { session, packet } = output {
                        // What a socket task does once the packet is written.
                        relay.handle_transmitted(session, packet.len());
                        delivered += 1;
                    }
                }
                assert_eq!(delivered, SUBSCRIBERS - 1);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
