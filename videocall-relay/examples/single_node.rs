//! A single relay node on the in-process bus with a simulated meeting, printing what it relays
//! once a second until Ctrl-C. This is what `make run` starts until the WebSocket and
//! WebTransport services land; it shows the core and the node driver working end to end.
//!
//! `cargo run --release -p videocall-relay --features nats --example single_node -- [participants] [seconds]`
//!
//! With `NATS_URL=nats://host:4222` the node uses that NATS server as its bus instead of the
//! in-process one (run two of them to see the meeting span both).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use videocall_relay::RelayConfig;
use videocall_relay::bus::{Bus, InProcessBus, NatsBus};
use videocall_relay::node::{NodeHandle, Outbound};
use videocall_types::{MediaPacket, MediaType, MeetingId, PacketType, PacketWrapper, UserId};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let participants: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let seconds: Option<u64> = args.next().map(|a| a.parse()).transpose()?;
    let in_process = InProcessBus::new();
    let bus: Arc<dyn Bus> = match std::env::var("NATS_URL") {
        Ok(url) => {
            println!("connecting to NATS at {url} …");
            Arc::new(NatsBus::connect(&url, true).await?)
        }
        Err(_) => Arc::new(in_process.connect()),
    };
    let bus_kind = bus.kind();
    let config = RelayConfig {
        node_id: std::process::id() & 0xF_FFFF,
        ..RelayConfig::default()
    };
    let node = NodeHandle::spawn(config, bus);
    let meeting = MeetingId::new("demo")?;
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let latency_us = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));

    println!(
        "videocall relay node ({bus_kind} bus): {participants} simulated participants in meeting \
         'demo', each sending 30 video frames/s of 2 KB. Ctrl-C stops."
    );
    for i in 0..participants {
        let mut session = node
            .join(UserId::new(format!("sim-{i}"))?, meeting.clone())
            .await?;
        let delivered = delivered.clone();
        let latency_us = latency_us.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let sent_us = start.elapsed().as_micros() as u64;
                        let mut data = sent_us.to_be_bytes().to_vec();
                        data.resize(2048, 0);
                        let media = MediaPacket {
                            media_type: MediaType::Video as i32,
                            frame_type: "delta".into(),
                            data: data.into(),
                            ..Default::default()
                        };
                        let wrapper = PacketWrapper {
                            packet_type: PacketType::Media as i32,
                            data: media.encode_to_vec().into(),
                            ..Default::default()
                        };
                        if session.send(wrapper.encode_to_vec().into()).await.is_err() {
                            return;
                        }
                    }
                    out = session.recv() => match out {
                        Some(Outbound::Packet(bytes)) => {
                            let _ = session.transmitted(bytes.len()).await;
                            if let Some(sent) = sent_at(bytes) {
                                let now = start.elapsed().as_micros() as u64;
                                delivered.fetch_add(1, Ordering::Relaxed);
                                latency_us.lock().unwrap().push(now.saturating_sub(sent));
                            }
                        }
                        _ => return,
                    },
                }
            }
        });
    }

    let mut report = tokio::time::interval(Duration::from_secs(1));
    report.tick().await;
    let mut elapsed = 0;
    loop {
        tokio::select! {
            _ = report.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        elapsed += 1;
        let count = delivered.swap(0, Ordering::Relaxed);
        let mut lat = std::mem::take(&mut *latency_us.lock().unwrap());
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        println!(
            "[{elapsed:>3}s] delivered {count} packets/s  latency p50 {} µs  p99 {} µs",
            pct(0.50),
            pct(0.99)
        );
        if seconds.is_some_and(|s| elapsed >= s) {
            break;
        }
    }
    let metrics = node.render_metrics().await?;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        println!("  {line}");
    }
    Ok(())
}

fn sent_at(bytes: Bytes) -> Option<u64> {
    let wrapper = PacketWrapper::decode(bytes).ok()?;
    let media = MediaPacket::decode(wrapper.data).ok()?;
    (media.media_type == MediaType::Video as i32 && media.data.len() >= 8)
        .then(|| u64::from_be_bytes(media.data[..8].try_into().expect("length checked")))
}
