//! A small load client for the relays (`videocall-bot` is the full one): N WebSocket clients in one
//! meeting, each publishing `--rate` packets/s of `--size` bytes; reports delivered packets/s,
//! hop latency percentiles (send → receive, same clock) and, with `--server-pid`, the relay's
//! CPU use (from /proc, through `videocall_bot::proc`).
//!
//! `cargo run --release -p actix-api --example meeting_load -- --url ws://127.0.0.1:8080 \
//!     --clients 10 --rate 30 --size 2048 --seconds 10 --server-pid PID`

use std::time::{Duration, Instant};

use clap::Parser;
use videocall_bot::proc::CpuMeter;
use videocall_testkit::client::{Incoming, TestClient};
use videocall_testkit::packets::{media, media_of};
use videocall_types::lobby::LobbyPath;
use videocall_types::{MediaType, MeetingId, UserId};

/// N WebSocket clients in one meeting, each publishing video-sized packets.
#[derive(Debug, Parser)]
struct Args {
    /// WebSocket base address of the relay.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    /// Clients in the meeting (each publishes and receives everyone else).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Packets a second each client sends.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
    /// Bytes of each packet's payload (at least the 8-byte send time).
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Seconds measured, after one second of warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Process id of the relay, whose CPU use is reported.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let start = Instant::now();
    let mut tasks = Vec::new();
    let meeting =
        MeetingId::new(format!("load{}", std::process::id())).expect("a valid meeting id");
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let user = UserId::new(format!("load-{i}")).expect("a valid user id");
        let url = format!("{}{}", args.url, LobbyPath::open(user, meeting.clone()));
        clients.push(TestClient::websocket(&url).await.expect("connects"));
    }
    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(args.seconds);
    let measure_from = Instant::now() + warmup;
    for mut client in clients {
        let (rate, size) = (args.rate, args.size);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            let end = measure_from + duration;
            let mut latencies_us = Vec::new();
            let mut sent = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if Instant::now() >= end {
                            break;
                        }
                        let mut payload = (start.elapsed().as_micros() as u64).to_be_bytes().to_vec();
                        payload.resize(size, 0);
                        client.send(media(MediaType::Video, "delta", payload));
                        if Instant::now() >= measure_from {
                            sent += 1;
                        }
                    }
                    event = client.next(Duration::from_secs(5)) => match event {
                        Some(Incoming::Packet(packet)) => {
                            let Some(m) = media_of(&packet) else { continue };
                            if m.media_type != MediaType::Video as i32 || m.data.len() < 8 {
                                continue;
                            }
                            let sent_us = u64::from_be_bytes(m.data[..8].try_into().unwrap());
                            let now_us = start.elapsed().as_micros() as u64;
                            if Instant::now() >= measure_from {
                                latencies_us.push(now_us.saturating_sub(sent_us));
                            }
                        }
                        Some(other) => panic!("client ended: {other:?}"),
                        None => {}
                    },
                }
            }
            (sent, latencies_us)
        }));
    }
    // The relay's CPU over the measured span only, not the warm-up.
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_meter = args.server_pid.map(|pid| CpuMeter::new(pid.to_string()));
    let mut all = Vec::new();
    let mut sent = 0;
    for task in tasks {
        let (s, l) = task.await.expect("client task");
        sent += s;
        all.extend(l);
    }
    let cpu = cpu_meter
        .as_ref()
        .and_then(CpuMeter::read)
        .map(|(percent, _rss)| percent);
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    let expected = sent * (args.clients as u64 - 1);
    println!(
        "{} clients x {} pkt/s x {} B, {} s: sent {sent}, delivered {} of {expected} ({:.0}/s), \
         latency p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms{}",
        args.clients,
        args.rate,
        args.size,
        args.seconds,
        all.len(),
        all.len() as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999),
        cpu.map(|c| format!(", relay CPU {c:.1}% of one core"))
            .unwrap_or_default()
    );
}
