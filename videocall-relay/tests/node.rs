//! Real nodes (tokio tasks) on the in-process bus.

mod support;

use std::sync::Arc;

use support::{audio, is_audio, is_joined, recv_until};
use videocall_relay::RelayConfig;
use videocall_relay::bus::InProcessBus;
use videocall_relay::node::NodeHandle;
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
