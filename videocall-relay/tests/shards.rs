//! A node of several shards (threads of their own) on the in-process bus: each meeting on the
//! shard its id hashes to, session ids unique across shards, counters summed, limits split,
//! host calls, drain and shutdown reaching every shard.

mod support;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use support::{audio, closed, is_audio, is_joined, recv_until};
use videocall_relay::bus::InProcessBus;
use videocall_relay::node::{NodeError, NodeHandle, shard_index};
use videocall_relay::{CloseReason, JoinError, RelayConfig};
use videocall_types::{MeetingEventType, MeetingId, PacketType, UserId};

fn sharded(bus: &InProcessBus, node_id: u32, shards: usize, config: RelayConfig) -> NodeHandle {
    let config = RelayConfig { node_id, ..config };
    NodeHandle::spawn_sharded(config, Arc::new(bus.connect()), shards).unwrap()
}

/// A meeting id that hashes onto `shard` of `count`.
fn meeting_on(shard: usize, count: usize) -> MeetingId {
    (0..1000)
        .map(|i| MeetingId::new(format!("meeting-{i}")).unwrap())
        .find(|m| shard_index(m, count) == shard)
        .expect("some id hashes onto every shard")
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// The value of the series `series` (a name with its labels) in `text`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn is_event(w: &videocall_types::PacketWrapper, kind: MeetingEventType) -> bool {
    w.packet_type == PacketType::Meeting as i32
        && videocall_types::MeetingPacket::decode(w.data.clone())
            .is_ok_and(|m| m.event_type == kind as i32)
}

#[test]
fn meeting_ids_spread_over_the_shards_and_always_land_on_the_same_one() {
    let ids: Vec<MeetingId> = (0..400)
        .map(|i| MeetingId::new(format!("m{i}")).unwrap())
        .collect();
    for count in [2, 3, 8] {
        let mut per_shard = vec![0; count];
        for m in &ids {
            let shard = shard_index(m, count);
            assert_eq!(shard, shard_index(m, count));
            per_shard[shard] += 1;
        }
        // Uneven but never starved: each shard gets at least half its fair share.
        assert!(
            per_shard.iter().all(|&n| n * count * 2 >= ids.len()),
            "{count} shards: {per_shard:?}"
        );
    }
    // FNV-1a of the id: fixed across runs and builds (nodes of one version agree).
    assert_eq!(shard_index(&MeetingId::new("a").unwrap(), 2), 0);
    assert_eq!(shard_index(&MeetingId::new("b").unwrap(), 2), 1);
    assert_eq!(shard_index(&MeetingId::new("anything").unwrap(), 1), 0);
}

#[tokio::test]
async fn meetings_on_two_shards_both_work_with_unique_session_ids_and_summed_counters() {
    let bus = InProcessBus::new();
    let n = sharded(&bus, 7, 2, RelayConfig::default());
    assert_eq!(n.shard_count(), 2);
    let (m0, m1) = (meeting_on(0, 2), meeting_on(1, 2));
    assert_eq!((n.shard_of(&m0), n.shard_of(&m1)), (0, 1));

    let mut sessions = Vec::new();
    for (m, names) in [(&m0, ["a0", "b0"]), (&m1, ["a1", "b1"])] {
        let mut a = n.join(user(names[0]), m.clone()).await.unwrap();
        let b = n.join(user(names[1]), m.clone()).await.unwrap();
        recv_until(&mut a, |w| is_joined(w, names[1])).await;
        sessions.push((a, b));
    }
    let mut ids: Vec<u64> = sessions
        .iter()
        .flat_map(|(a, b)| [a.id().get(), b.id().get()])
        .collect();
    // Every id carries the node's id, and no two shards assigned the same one.
    assert!(ids.iter().all(|id| (id >> 32) as u32 == 7), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);

    for (i, (a, b)) in sessions.iter_mut().enumerate() {
        let there = format!("to b in meeting {i}");
        a.send(audio(&there)).await.unwrap();
        recv_until(b, |w| is_audio(w, &there)).await;
        let back = format!("to a in meeting {i}");
        b.send(audio(&back)).await.unwrap();
        let got = recv_until(a, |w| is_audio(w, &back)).await;
        assert_eq!(got.session_id, b.id().get());
    }
    // Nothing crossed between the meetings: a0 never hears meeting 1's audio.
    sessions[1].0.send(audio("meeting 1 only")).await.unwrap();
    recv_until(&mut sessions[1].1, |w| is_audio(w, "meeting 1 only")).await;
    sessions[0].1.send(audio("marker")).await.unwrap();
    let next = recv_until(&mut sessions[0].0, |w| {
        w.packet_type == PacketType::Media as i32
    })
    .await;
    assert!(
        is_audio(&next, "marker"),
        "meeting 0 got another meeting's media"
    );

    let text = n.render_metrics().await.unwrap();
    assert_eq!(value(&text, "videocall_sessions"), 4.0);
    assert_eq!(value(&text, "videocall_meetings"), 2.0);
    assert_eq!(value(&text, "videocall_joins_total"), 4.0);
    // 2 × (a, b) audio + the meeting-1 packet + the marker, from both shards.
    assert_eq!(value(&text, "videocall_packets_in_total"), 6.0);
    assert_eq!(value(&text, "videocall_shard_sessions{shard=\"0\"}"), 2.0);
    assert_eq!(value(&text, "videocall_shard_sessions{shard=\"1\"}"), 2.0);
    // Each metric once, whatever the number of shards.
    for name in [
        "videocall_sessions",
        "videocall_packets_in_total",
        "videocall_dropped_packets_total",
    ] {
        let help = format!("# HELP {name} ");
        assert_eq!(text.matches(&help).count(), 1, "{name} in\n{text}");
    }
    assert_eq!(n.health(), Ok(()));
}

#[tokio::test]
async fn a_meeting_spans_a_sharded_node_and_another_node_and_host_calls_reach_it() {
    let bus = InProcessBus::new();
    let sharded_node = sharded(&bus, 1, 2, RelayConfig::default());
    let single = NodeHandle::spawn(
        RelayConfig {
            node_id: 2,
            ..RelayConfig::default()
        },
        Arc::new(bus.connect()),
    );
    for shard in 0..2 {
        let m = meeting_on(shard, 2);
        let mut alice = sharded_node.join(user("alice"), m.clone()).await.unwrap();
        let mut bob = single.join(user("bob"), m.clone()).await.unwrap();
        recv_until(&mut alice, |w| is_joined(w, "bob")).await;
        recv_until(&mut bob, |w| is_joined(w, "alice")).await;
        alice.send(audio("over the bus")).await.unwrap();
        recv_until(&mut bob, |w| is_audio(w, "over the bus")).await;
        bob.send(audio("and back")).await.unwrap();
        recv_until(&mut alice, |w| is_audio(w, "and back")).await;

        // The API's call on the sharded node reaches the meeting's shard and the other node.
        sharded_node
            .remove_participant(m.clone(), user("bob"))
            .await
            .unwrap();
        assert_eq!(closed(&mut bob).await, CloseReason::Removed);
        recv_until(&mut alice, |w| {
            is_event(w, MeetingEventType::ParticipantLeft)
        })
        .await;
        assert_eq!(
            sharded_node.join(user("bob"), m.clone()).await.unwrap_err(),
            NodeError::Join(JoinError::Removed)
        );
        single.end_meeting(m).await.unwrap();
        assert_eq!(closed(&mut alice).await, CloseReason::MeetingEnded);
    }
}

#[tokio::test]
async fn drain_and_shutdown_cover_every_shard() {
    let bus = InProcessBus::new();
    let n = sharded(&bus, 1, 2, RelayConfig::default());
    let mut a = n.join(user("a"), meeting_on(0, 2)).await.unwrap();
    let mut b = n.join(user("b"), meeting_on(1, 2)).await.unwrap();
    let draining = tokio::spawn({
        let n = n.clone();
        async move { n.drain(support::PATIENCE).await }
    });
    recv_until(&mut a, |w| is_event(w, MeetingEventType::NodeDraining)).await;
    recv_until(&mut b, |w| is_event(w, MeetingEventType::NodeDraining)).await;
    assert_eq!(n.health(), Err("draining".to_owned()));
    for shard in 0..2 {
        let late = n.join(user("late"), meeting_on(shard, 2)).await;
        assert!(matches!(
            late,
            Err(NodeError::Join(JoinError::ShuttingDown))
        ));
    }
    // Done only once both shards' sessions have gone.
    drop(a);
    tokio::task::yield_now().await;
    assert!(
        !draining.is_finished(),
        "done while shard 1 still has a session"
    );
    assert!(n.shutdown(Duration::from_secs(2)).await);
    assert_eq!(closed(&mut b).await, CloseReason::Shutdown);
    assert!(
        draining.await.unwrap(),
        "the drain finished once the shutdown closed b"
    );
}

#[tokio::test]
async fn node_wide_limits_are_split_between_shards() {
    let bus = InProcessBus::new();
    let config = RelayConfig {
        max_meetings: 2,
        ..RelayConfig::default()
    };
    let n = sharded(&bus, 1, 2, config.clone());
    let split = videocall_relay::node::shard_config(&config, 2);
    assert_eq!(split.max_meetings, 1);
    assert_eq!(
        split.max_node_queued_bytes,
        config.max_node_queued_bytes / 2
    );
    // One meeting per shard: the node as a whole holds two, as configured.
    let _a = n.join(user("a"), meeting_on(0, 2)).await.unwrap();
    let _b = n.join(user("b"), meeting_on(1, 2)).await.unwrap();
    let other = (0..1000)
        .map(|i| MeetingId::new(format!("other-{i}")).unwrap())
        .find(|m| shard_index(m, 2) == 0)
        .unwrap();
    let refused = n.join(user("c"), other).await.unwrap_err();
    assert!(
        matches!(refused, NodeError::Join(JoinError::NodeFull { max: 1 })),
        "{refused:?}"
    );
}
