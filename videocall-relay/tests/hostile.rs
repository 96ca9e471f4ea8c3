//! Hostile input to the sans-IO core: every client-controlled input does bounded work, every
//! queue has a budget, and offenders are cut off and counted.

mod harness;

use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::{Cluster, media, wrapper};
use prost::Message;
use videocall_relay::{CloseReason, DropReason, InboundError, Relay, RelayConfig};
use videocall_types::{
    MediaType, MeetingId, NoticeReason, PacketType, RelayNotice, SessionId, SubscriptionPacket,
    UserId,
};

fn subscription(video: Vec<u64>, all: bool) -> Bytes {
    let sub = SubscriptionPacket {
        video,
        screen: vec![],
        all,
    };
    wrapper(PacketType::Subscription, sub.encode_to_vec())
}

fn notices(c: &Cluster, s: SessionId) -> Vec<RelayNotice> {
    c.of_type(s, PacketType::RelayNotice)
        .iter()
        .map(|r| RelayNotice::decode(r.wrapper.data.clone()).unwrap())
        .collect()
}

fn video(key: bool, len: usize) -> Bytes {
    media(
        MediaType::Video,
        if key { "key" } else { "delta" },
        vec![7; len],
    )
}

#[test]
fn a_million_id_subscription_is_refused_without_decoding_and_the_meeting_goes_on() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let attacker = c.join(0, "mallory", "storm");
    let other = c.join(0, "bob", "storm");
    c.send(attacker, subscription(vec![], false)).unwrap();
    // ≈ 3 MB: under the frame limit, far over what a meeting of two can name.
    let ids: Vec<u64> = (1..=1_000_000u64).map(|i| (1 << 20) | i).collect();
    let packet = subscription(ids, false);
    assert!(packet.len() > 2_000_000 && packet.len() < 4 * 1024 * 1024);
    let t = Instant::now();
    let result = c.send(attacker, packet);
    let took = t.elapsed();
    assert!(matches!(
        result,
        Err(InboundError::SubscriptionTooLarge { .. })
    ));
    // Refused before decoding: no work grows with the list. (A generous bound for a loaded
    // debug build; the quadratic path took minutes.)
    assert!(took < Duration::from_millis(200), "took {took:?}");
    assert_eq!(
        c.nodes[0].metrics().drops(DropReason::SubscriptionTooLarge),
        1
    );
    let told = notices(&c, attacker);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].reason, NoticeReason::Oversize as i32);
    assert_eq!(told[0].packet_type, PacketType::Subscription as i32);
    // Both still talk.
    c.send(other, media(MediaType::Audio, "key", vec![1]))
        .unwrap();
    assert_eq!(c.media(attacker).len(), 1);
}

#[test]
fn subscription_ids_of_nobody_in_the_meeting_are_ignored_and_counted() {
    let mut c = Cluster::new(1, RelayConfig::default());
    let viewer = c.join(0, "viewer", "m1");
    let shown = c.join(0, "shown", "m1");
    let hidden = c.join(0, "hidden", "m1");
    let stranger = c.join(0, "stranger", "m2");
    // As many ids as the cap allows for a meeting of three (plus its slack), almost none real.
    let mut ids: Vec<u64> = (0..40u64).map(|i| (7 << 20) | (i + 1)).collect();
    ids.push(shown.get());
    ids.push(stranger.get());
    ids.push(viewer.get());
    c.send(viewer, subscription(ids, false)).unwrap();
    assert_eq!(c.nodes[0].metrics().subscription_ids_ignored, 42);
    c.send(shown, video(true, 10)).unwrap();
    c.send(hidden, video(true, 10)).unwrap();
    let from: Vec<u64> = c
        .media(viewer)
        .iter()
        .filter(|(_, m)| m.media_type == MediaType::Video as i32)
        .map(|(r, _)| r.wrapper.session_id)
        .collect();
    assert_eq!(from, [shown.get()]);
}

/// Time of the worst subscription input for a meeting of `n`: alternately subscribing to all
/// `n` participants' video and to none (every id fresh each time, so each switch asks keyframes
/// and marks `n` streams), `rounds` times. The best of three runs, to shed scheduler noise.
fn worst_subscription_time(n: usize, rounds: usize) -> Duration {
    let mut relay = Relay::new(RelayConfig::default());
    let t0 = Instant::now();
    let meeting = MeetingId::new("big").unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let user = UserId::new(format!("u{i}")).unwrap();
        ids.push(relay.handle_join(t0, user, meeting.clone()).unwrap().get());
        while relay.poll_output().is_some() {}
    }
    let me = SessionId::from_wire(ids[0]).unwrap();
    let full = subscription(ids.clone(), false);
    let none = subscription(vec![], false);
    let mut now = t0;
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for round in 0..rounds {
                now += Duration::from_secs(1);
                let packet = if round % 2 == 0 { &none } else { &full };
                relay.handle_inbound(now, me, packet.clone()).unwrap();
                while relay.poll_output().is_some() {}
            }
            start.elapsed()
        })
        .min()
        .expect("three runs")
}

#[test]
fn the_worst_subscription_costs_time_linear_in_the_meeting_size() {
    let rounds = 40;
    let t1 = worst_subscription_time(250, rounds);
    let t2 = worst_subscription_time(500, rounds);
    let t4 = worst_subscription_time(1000, rounds);
    eprintln!("n=250: {t1:?}, n=500: {t2:?}, n=1000: {t4:?}");
    // Linear work gives ratios of 2 and 4, quadratic 4 and 16. Allow noise, cache effects and
    // n log n sorting (measured here: ≈ 2.7 and 5.0), while still failing anything quadratic.
    let r2 = t2.as_secs_f64() / t1.as_secs_f64();
    let r4 = t4.as_secs_f64() / t1.as_secs_f64();
    assert!(r4 < 10.0, "4n took {r4:.1}x as long as n (2n: {r2:.1}x)");
    assert!(
        r4 > r2,
        "more participants cannot cost less: {r2:.1}x then {r4:.1}x"
    );
}

#[test]
fn junk_control_traffic_cannot_push_video_into_congestion() {
    let config = RelayConfig {
        queue_video_bytes: 64 * 1024,
        queue_control_bytes: 16 * 1024,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let junk = c.join(0, "junk", "m1");
    let publisher = c.join(0, "pub", "m1");
    let receiver = c.join(0, "rx", "m1");
    c.stalled.insert(receiver);
    // 40 KiB of DIAGNOSTICS junk: more than the control budget, within the control rate.
    for _ in 0..40 {
        let _ = c.send(junk, wrapper(PacketType::Diagnostics, vec![0; 1024]));
    }
    c.send(publisher, video(true, 30 * 1024)).unwrap();
    c.send(publisher, video(false, 30 * 1024)).unwrap();
    let m = c.nodes[0].metrics();
    assert!(
        m.drops(DropReason::ControlOverflow) > 0,
        "control was capped"
    );
    assert_eq!(
        m.drops(DropReason::Congestion),
        0,
        "video was not pushed out"
    );
    assert!(c.of_type(publisher, PacketType::Congestion).is_empty());
    let frames = c
        .media(receiver)
        .iter()
        .filter(|(_, m)| m.media_type == MediaType::Video as i32)
        .count();
    assert_eq!(frames, 2);
}

#[test]
fn control_traffic_over_its_rate_is_refused_and_counted() {
    let config = RelayConfig {
        max_control_bytes_per_sec: 10_000,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let junk = c.join(0, "junk", "m1");
    let _rx = c.join(0, "rx", "m1");
    let mut refused = 0;
    for _ in 0..100 {
        if c.send(junk, wrapper(PacketType::Diagnostics, vec![0; 1000]))
            == Err(InboundError::RateLimited)
        {
            refused += 1;
        }
    }
    // A burst of four seconds' worth (40 KB, 39 packets with their headers), then refused.
    assert!((55..=65).contains(&refused), "refused {refused}");
    assert_eq!(
        c.nodes[0].metrics().drops(DropReason::ControlRateLimited),
        refused
    );
}

#[test]
fn a_frame_larger_than_the_receivers_queue_is_refused_at_ingress_with_a_reason() {
    let config = RelayConfig {
        queue_video_bytes: 64 * 1024,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let sender = c.join(0, "big", "m1");
    let rx = c.join(0, "rx", "m1");
    let result = c.send(sender, video(true, 100 * 1024));
    assert!(matches!(result, Err(InboundError::FrameTooLarge { max, .. }) if max == 64 * 1024));
    assert_eq!(c.nodes[0].metrics().drops(DropReason::FrameTooLarge), 1);
    assert!(c.media(rx).is_empty());
    assert_eq!(c.nodes[0].metrics().keyframe_requests_sent, 0);
    let told = notices(&c, sender);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].reason, NoticeReason::FrameTooLarge as i32);
    assert_eq!(told[0].limit, 64 * 1024);
    assert!(told[0].message.contains("exceeds"));
}

#[test]
fn a_sender_over_its_rate_for_longer_than_the_grace_is_cut_off() {
    let config = RelayConfig {
        max_inbound_packets_per_sec: 100,
        rate_limit_grace: Duration::from_secs(3),
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let flooder = c.join(0, "flood", "m1");
    let calm = c.join(0, "calm", "m1");
    let listener = c.join(0, "listener", "m1");
    // 10x the limit: 1000 packets a second, in 10 ms steps.
    let mut step = 0;
    while c.closed.is_empty() && step < 1000 {
        for _ in 0..10 {
            let _ = c.send(flooder, media(MediaType::Audio, "key", vec![1]));
        }
        if step % 2 == 0 {
            c.send(calm, media(MediaType::Audio, "key", vec![2]))
                .unwrap();
        }
        c.advance(Duration::from_millis(10));
        step += 1;
    }
    assert_eq!(c.closed, [(flooder, CloseReason::RateLimited)]);
    // The burst allowance (2 s) lasts ≈ 0.2 s at 10x; then 3 s of grace.
    let cut_after = Duration::from_millis(10 * step);
    assert!(
        cut_after >= Duration::from_secs(3) && cut_after <= Duration::from_secs(4),
        "cut off after {cut_after:?}"
    );
    assert_eq!(c.nodes[0].metrics().closes(CloseReason::RateLimited), 1);
    assert!(notices(&c, flooder).len() >= 3, "told why, once a second");
    // The calm one was never refused and reached the listener every time.
    let from_calm = c
        .media(listener)
        .iter()
        .filter(|(r, _)| r.wrapper.session_id == calm.get())
        .count();
    assert_eq!(from_calm as u64, step.div_ceil(2));
}

#[test]
fn a_short_burst_over_the_rate_is_not_cut_off() {
    let config = RelayConfig {
        max_inbound_packets_per_sec: 100,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let bursty = c.join(0, "bursty", "m1");
    let _rx = c.join(0, "rx", "m1");
    // Over the limit for a second, then back under it, twice.
    for _ in 0..2 {
        for _ in 0..100 {
            for _ in 0..5 {
                let _ = c.send(bursty, media(MediaType::Audio, "key", vec![1]));
            }
            c.advance(Duration::from_millis(10));
        }
        for _ in 0..300 {
            let _ = c.send(bursty, media(MediaType::Audio, "key", vec![1]));
            c.advance(Duration::from_millis(20));
        }
    }
    assert!(c.nodes[0].metrics().drops(DropReason::RateLimited) > 0);
    assert!(c.closed.is_empty(), "closed: {:?}", c.closed);
}

#[test]
fn a_reader_that_stalls_is_closed_and_one_that_reads_slowly_is_not() {
    let config = RelayConfig {
        queue_video_bytes: 64 * 1024,
        stall_timeout: Duration::from_secs(10),
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let publisher = c.join(0, "pub", "m1");
    let stalled = c.join(0, "stalled", "m1");
    let slow = c.join(0, "slow", "m1");
    c.stalled.insert(stalled);
    c.stalled.insert(slow);
    for tick in 0..200u32 {
        let _ = c.send(publisher, video(tick % 30 == 0, 4 * 1024));
        if tick % 10 == 0 {
            c.drain(slow); // reads, a little late
        }
        c.advance(Duration::from_millis(100));
    }
    assert_eq!(c.closed, [(stalled, CloseReason::Stalled)]);
    assert_eq!(c.nodes[0].metrics().closes(CloseReason::Stalled), 1);
    assert!(c.nodes[0].session_info(slow).is_some());
    assert!(c.nodes[0].session_info(stalled).is_none());
}

#[test]
fn the_node_bounds_the_bytes_queued_across_all_its_sessions() {
    let config = RelayConfig {
        queue_video_bytes: 64 * 1024,
        max_node_queued_bytes: 256 * 1024,
        stall_timeout: Duration::from_secs(3600),
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let publisher = c.join(0, "pub", "m1");
    let readers: Vec<_> = (0..20).map(|i| c.join(0, &format!("r{i}"), "m1")).collect();
    let reader = c.join(0, "reads", "m1");
    for &r in &readers {
        c.stalled.insert(r);
    }
    for _ in 0..40 {
        c.send(publisher, video(true, 8 * 1024)).unwrap();
    }
    let total: usize = readers
        .iter()
        .map(|r| c.nodes[0].session_info(*r).unwrap().queued_bytes)
        .sum();
    // Twenty stalled readers could hold 20 × 64 KiB; the node keeps them to its bound.
    assert!(total <= 256 * 1024 + 256 * 1024 / 8, "queued {total}");
    assert!(c.nodes[0].metrics().drops(DropReason::NodeQueueFull) > 0);
    assert!(c.nodes[0].metrics().queued_bytes <= 256 * 1024 + 256 * 1024 / 8);
    // Everything written is freed: a reading session is unaffected by the bound once the
    // stalled ones go.
    for &r in &readers {
        c.leave(r);
    }
    assert_eq!(c.nodes[0].metrics().queued_bytes, 0);
    let before = c.media(reader).len();
    c.send(publisher, video(true, 8 * 1024)).unwrap();
    assert_eq!(c.media(reader).len(), before + 1);
}

#[test]
fn a_bus_flood_of_invented_participants_is_capped() {
    let config = RelayConfig {
        max_remote_per_meeting: 10,
        ..RelayConfig::default()
    };
    let mut c = Cluster::new(1, config);
    let local = c.join(0, "local", "m1");
    for seq in 1..=50u32 {
        let origin = SessionId::new(9, seq);
        let subject = format!("room.m1.{}", origin.get());
        let packet = media(MediaType::Heartbeat, "", vec![]);
        c.nodes[0].handle_bus(c.now, &subject, packet);
    }
    c.drive();
    assert_eq!(c.nodes[0].metrics().drops(DropReason::RemotePeersFull), 40);
    let joined = c
        .events(local)
        .iter()
        .filter(|e| e.event_type == videocall_types::MeetingEventType::ParticipantJoined as i32)
        .count();
    // It heard of the ten it has room for (and of nobody else).
    assert_eq!(joined, 10);
}
