//! Presence cost in the core, no sockets (issue #17): one second of a 200-participant meeting in
//! which everyone heartbeats once and nobody's state changes, with clients of the original
//! (every heartbeat to everyone: N·(N−1) deliveries) and with clients that take PRESENCE digests
//! (no heartbeat delivered; a digest chunk per period, shared). Time per iteration = relay time
//! per meeting-second; the deliveries per second are printed once per mode.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use videocall_relay::{Join, Output, Relay, RelayConfig};
use videocall_testkit::packets::heartbeat;
use videocall_types::{MeetingId, SessionId, UserId};

const PARTICIPANTS: usize = 200;

/// A meeting of [`PARTICIPANTS`] sessions, each taking digests or not.
fn meeting(presence: bool) -> (Relay, Vec<SessionId>, Instant) {
    let mut relay = Relay::new(RelayConfig::default());
    let now = Instant::now();
    let meeting = MeetingId::new("bench").unwrap();
    let sessions = (0..PARTICIPANTS)
        .map(|i| {
            let join = Join {
                presence,
                ..Join::trusted(UserId::new(format!("u{i}")).unwrap(), meeting.clone())
            };
            relay.handle_admit(now, join).unwrap()
        })
        .collect();
    while relay.poll_output().is_some() {}
    (relay, sessions, now)
}

/// One second of the meeting; returns the packets delivered.
fn one_second(relay: &mut Relay, sessions: &[SessionId], now: &mut Instant, beat: &Bytes) -> usize {
    *now += Duration::from_secs(1);
    relay.handle_timeout(*now);
    for s in sessions {
        relay.handle_inbound(*now, *s, beat.clone()).unwrap();
    }
    let mut delivered = 0;
    while let Some(output) = relay.poll_output() {
        if let Output::Transmit { session, packet } = output {
            relay.handle_transmitted(session, packet.len());
            delivered += 1;
        }
    }
    delivered
}

fn presence(c: &mut Criterion) {
    let beat = heartbeat(true);
    let mut group = c.benchmark_group("presence_200_one_second");
    group.sample_size(20);
    for (name, digests) in [("original_clients", false), ("presence_digests", true)] {
        let (mut relay, sessions, mut now) = meeting(digests);
        // Warm up: every state heard once (the first heartbeat of each is news).
        one_second(&mut relay, &sessions, &mut now, &beat);
        let per_second: usize = (0..6)
            .map(|_| one_second(&mut relay, &sessions, &mut now, &beat))
            .sum::<usize>()
            / 6;
        eprintln!("{name}: {per_second} packets delivered per meeting-second");
        group.bench_function(name, |b| {
            b.iter(|| one_second(&mut relay, &sessions, &mut now, &beat))
        });
    }
    group.finish();
}

criterion_group!(benches, presence);
criterion_main!(benches);
