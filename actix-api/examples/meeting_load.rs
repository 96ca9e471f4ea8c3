//! A small load client for the relays until `videocall-bot` lands: N WebSocket clients in one
//! meeting, each publishing `--rate` packets/s of `--size` bytes; reports delivered packets/s,
//! hop latency percentiles (send → receive, same clock) and, with `--server-pid`, the relay's
//! CPU use from /proc.
//!
//! `cargo run --release -p actix-api --example meeting_load -- --url ws://127.0.0.1:8080 \
//!     --clients 10 --rate 30 --size 2048 --seconds 10 --server-pid PID`

use std::time::{Duration, Instant};

use videocall_testkit::client::{Incoming, TestClient};
use videocall_testkit::packets::{media, media_of};
use videocall_types::MediaType;

struct Args {
    url: String,
    clients: usize,
    rate: u64,
    size: usize,
    seconds: u64,
    server_pid: Option<u32>,
}

fn parse() -> Args {
    let mut args = Args {
        url: "ws://127.0.0.1:8080".into(),
        clients: 10,
        rate: 30,
        size: 2048,
        seconds: 10,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value,
            "--clients" => args.clients = value.parse().expect("--clients N"),
            "--rate" => args.rate = value.parse().expect("--rate N"),
            "--size" => args.size = value.parse().expect("--size BYTES"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--server-pid" => args.server_pid = Some(value.parse().expect("--server-pid PID")),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[tokio::main]
async fn main() {
    let args = parse();
    let start = Instant::now();
    let mut tasks = Vec::new();
    let meeting = format!("load{}", std::process::id());
    let mut clients = Vec::new();
    for i in 0..args.clients {
        let url = format!("{}/lobby/load-{i}/{meeting}", args.url);
        clients.push(TestClient::websocket(&url).await.expect("connects"));
    }
    let warmup = Duration::from_secs(1);
    let duration = Duration::from_secs(args.seconds);
    let cpu_before = args.server_pid.and_then(cpu_ticks);
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
    let mut all = Vec::new();
    let mut sent = 0;
    for task in tasks {
        let (s, l) = task.await.expect("client task");
        sent += s;
        all.extend(l);
    }
    let cpu = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) => cpu_ticks(pid).map(|after| {
            // Linux reports 100 ticks per second.
            (after - before) as f64 / 100.0 / duration.as_secs_f64() * 100.0
        }),
        _ => None,
    };
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
