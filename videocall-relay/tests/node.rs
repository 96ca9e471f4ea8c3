//! Real nodes (tokio tasks) on the in-process bus.

mod support;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use support::{audio, closed, is_audio, is_joined, recv_until};
use videocall_relay::bus::InProcessBus;
use videocall_relay::node::{NodeError, NodeHandle, Outbound};
use videocall_relay::{CloseReason, JoinError, RelayConfig};
use videocall_types::{MeetingId, PacketType, UserId};

fn node(bus: &InProcessBus, node_id: u32) -> NodeHandle {
    let config = RelayConfig {
        node_id,
        ..RelayConfig::default()
    };
    NodeHandle::spawn(config, Arc::new(bus.connect()))
}

fn ids(user: &str) -> (UserId, MeetingId) {
    (UserId::new(user).unwrap(), MeetingId::new("m1").unwrap())
}

#[tokio::test]
async fn sessions_on_one_node_exchange_stamped_packets() {
    let bus = InProcessBus::new();
    let n = node(&bus, 1);
    let (u, m) = ids("alice");
    let mut alice = n.join(u, m).await.unwrap();
    let first = recv_until(&mut alice, |_| true).await;
    assert_eq!(first.packet_type, PacketType::SessionAssigned as i32);
    assert_eq!(first.session_id, alice.id().get());
    let (u, m) = ids("bob");
    let mut bob = n.join(u, m).await.unwrap();
    recv_until(&mut alice, |w| is_joined(w, "bob")).await;

    bob.send(audio("hello")).await.unwrap();
    let got = recv_until(&mut alice, |w| is_audio(w, "hello")).await;
    assert_eq!(got.user_id, "bob".as_bytes());
    assert_eq!(got.session_id, bob.id().get());

    let metrics = n.render_metrics().await.unwrap();
    assert!(metrics.contains("videocall_sessions 2\n"), "{metrics}");
    assert!(metrics.contains("videocall_bus_connected{bus=\"in-process\"} 1"));
    // Bob's own packet never came back to him; his next packet is alice's.
    alice.send(audio("hi bob")).await.unwrap();
    let next = recv_until(&mut bob, |w| w.packet_type == PacketType::Media as i32).await;
    assert!(is_audio(&next, "hi bob"));
}

#[tokio::test]
async fn two_nodes_on_the_in_process_bus_share_a_meeting() {
    let bus = InProcessBus::new();
    let (n1, n2) = (node(&bus, 1), node(&bus, 2));
    let (u, m) = ids("alice");
    let mut alice = n1.join(u, m).await.unwrap();
    let (u, m) = ids("bob");
    let mut bob = n2.join(u, m).await.unwrap();
    // Bob is told alice is there by her node's roster reply: the subscription is live.
    recv_until(&mut bob, |w| is_joined(w, "alice")).await;
    recv_until(&mut alice, |w| is_joined(w, "bob")).await;

    alice.send(audio("over the bus")).await.unwrap();
    let got = recv_until(&mut bob, |w| is_audio(w, "over the bus")).await;
    assert_eq!(got.user_id, "alice".as_bytes());
    bob.send(audio("and back")).await.unwrap();
    recv_until(&mut alice, |w| is_audio(w, "and back")).await;
}

#[tokio::test]
async fn a_node_task_that_stops_answering_fails_its_health_check_and_recovers() {
    let bus = InProcessBus::new();
    let n = node(&bus, 1);
    // Wait for a first answered probe (polling the watchdog's own view, which is the event).
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while n.since_last_answer() > Duration::from_millis(300) {
        assert!(std::time::Instant::now() < deadline, "never answered");
        tokio::task::yield_now().await;
    }
    assert!(n.responsive());
    // What a core stuck in one input does to its thread: nothing else runs on it. (This test's
    // runtime has one thread, shared with the node task.)
    std::thread::sleep(videocall_relay::node::RESPONSE_LIMIT + Duration::from_millis(300));
    assert!(!n.responsive(), "a stuck node task must fail health checks");
    assert!(n.render_metrics().await.is_ok(), "answers again once free");
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while !n.responsive() {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stopping_node_closes_its_sessions_and_its_leaves_reach_other_nodes_at_once() {
    let bus = InProcessBus::new();
    let config = |node_id| RelayConfig {
        node_id,
        // Without the shutdown's own leaves, others would wait this long.
        reconnect_grace: Duration::from_secs(600),
        ..RelayConfig::default()
    };
    let n1 = NodeHandle::spawn(config(1), Arc::new(bus.connect()));
    let n2 = NodeHandle::spawn(config(2), Arc::new(bus.connect()));
    let (u, m) = ids("alice");
    let mut alice = n1.join(u, m).await.unwrap();
    let (u, m) = ids("bob");
    let mut bob = n2.join(u, m).await.unwrap();
    recv_until(&mut bob, |w| is_joined(w, "alice")).await;

    assert!(n1.shutdown(Duration::from_secs(2)).await);
    let left = recv_until(&mut bob, |w| {
        w.packet_type == PacketType::Meeting as i32
            && videocall_types::MeetingPacket::decode(w.data.clone()).is_ok_and(|e| {
                e.event_type == videocall_types::MeetingEventType::ParticipantLeft as i32
            })
    })
    .await;
    let event = videocall_types::MeetingPacket::decode(left.data).unwrap();
    assert_eq!(event.target_user_id, "alice".as_bytes());
    loop {
        match alice.recv().await {
            Some(Outbound::Packet(_)) => continue,
            Some(Outbound::Close(reason)) => {
                assert_eq!(reason, CloseReason::Shutdown);
                break;
            }
            None => panic!("closed without a reason"),
        }
    }
    let (u, m) = ids("late");
    assert!(matches!(
        n1.join(u, m).await,
        Err(NodeError::Join(JoinError::ShuttingDown))
    ));
    let metrics = n1.render_metrics().await.unwrap();
    assert!(metrics.contains("videocall_closed_sessions_total{reason=\"shutdown\"} 1"));
}

fn is_event(w: &videocall_types::PacketWrapper, kind: videocall_types::MeetingEventType) -> bool {
    w.packet_type == PacketType::Meeting as i32
        && videocall_types::MeetingPacket::decode(w.data.clone())
            .is_ok_and(|m| m.event_type == kind as i32)
}

#[tokio::test]
async fn the_meeting_apis_host_calls_reach_sessions_on_every_node() {
    use videocall_types::MeetingEventType as E;
    let bus = InProcessBus::new();
    // The API's node serves nobody in the meeting: the calls go out on the bus all the same.
    let (n1, n2, api) = (node(&bus, 1), node(&bus, 2), node(&bus, 3));
    let (a, m) = ids("alice");
    let mut alice = n1.join(a, m.clone()).await.unwrap();
    let (b, _) = ids("bob");
    let mut bob = n2.join(b.clone(), m.clone()).await.unwrap();
    recv_until(&mut alice, |w| is_joined(w, "bob")).await;

    api.ask_to_mute(m.clone(), b.clone()).await.unwrap();
    recv_until(&mut bob, |w| is_event(w, E::MuteRequested)).await;
    api.remove_participant(m.clone(), b.clone()).await.unwrap();
    assert_eq!(closed(&mut bob).await, CloseReason::Removed);
    recv_until(&mut alice, |w| is_event(w, E::ParticipantLeft)).await;
    let again = n2.join(b, m.clone()).await.unwrap_err();
    assert_eq!(again, NodeError::Join(JoinError::Removed));
    api.end_meeting(m).await.unwrap();
    assert_eq!(closed(&mut alice).await, CloseReason::MeetingEnded);
}

#[tokio::test]
async fn a_draining_node_fails_its_health_check_and_is_done_once_its_sessions_have_gone() {
    let bus = InProcessBus::new();
    let n = node(&bus, 1);
    assert_eq!(n.health(), Ok(()));
    let (u, m) = ids("alice");
    let mut alice = n.join(u, m).await.unwrap();

    let draining = tokio::spawn({
        let n = n.clone();
        async move { n.drain(support::PATIENCE).await }
    });
    recv_until(&mut alice, |w| {
        is_event(w, videocall_types::MeetingEventType::NodeDraining)
    })
    .await;
    assert_eq!(n.health(), Err("draining".to_owned()));
    let (u, m) = ids("late");
    assert!(matches!(
        n.join(u, m).await,
        Err(NodeError::Join(JoinError::ShuttingDown))
    ));
    assert!(
        !draining.is_finished(),
        "done while a session is still there"
    );
    // The client moves away: nobody else could hear its leave, so the drain is over.
    drop(alice);
    assert!(draining.await.unwrap(), "the drain finished");
}

#[tokio::test]
async fn a_drain_gives_up_at_its_limit_when_a_session_stays() {
    let bus = InProcessBus::new();
    let n = node(&bus, 1);
    let (u, m) = ids("stays");
    let _stays = n.join(u, m).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(!n.drain(Duration::from_millis(300)).await);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The shutdown then closes it as before.
    assert!(n.shutdown(Duration::from_secs(2)).await);
}
