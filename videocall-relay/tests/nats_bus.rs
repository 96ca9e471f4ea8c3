//! Two relay nodes on a real `nats-server` (started by the test on a free port), including a
//! server restart in the middle of a meeting.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use support::{NatsServer, audio, is_audio, is_joined, recv_until, try_recv_until};
use videocall_relay::RelayConfig;
use videocall_relay::bus::{Bus, BusState, NatsBus};
use videocall_relay::node::NodeHandle;
use videocall_types::{MeetingId, UserId};

async fn node(url: &str, node_id: u32) -> (NodeHandle, tokio::sync::watch::Receiver<BusState>) {
    let bus = NatsBus::connect(url, true).await.expect("NATS reachable");
    let state = bus.state();
    let config = RelayConfig {
        node_id,
        ..RelayConfig::default()
    };
    (NodeHandle::spawn(config, Arc::new(bus)), state)
}

async fn wait_for(state: &mut tokio::sync::watch::Receiver<BusState>, want: BusState) {
    tokio::time::timeout(support::PATIENCE, state.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("bus never became {want:?}"))
        .expect("bus state sender alive");
}

fn ids(user: &str) -> (UserId, MeetingId) {
    (
        UserId::new(user).unwrap(),
        MeetingId::new("standup").unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_nats_form_one_meeting_and_survive_a_server_restart() {
    let mut server = NatsServer::start();
    let (n1, mut s1) = node(&server.url(), 1).await;
    let (n2, mut s2) = node(&server.url(), 2).await;
    assert_eq!(*s1.borrow(), BusState::Connected);

    let (u, m) = ids("alice");
    let mut alice = n1.join(u, m).await.unwrap();
    let (u, m) = ids("carol");
    let mut carol = n1.join(u, m).await.unwrap();
    let (u, m) = ids("bob");
    let mut bob = n2.join(u, m).await.unwrap();
    recv_until(&mut bob, |w| is_joined(w, "alice")).await;
    recv_until(&mut bob, |w| is_joined(w, "carol")).await;
    recv_until(&mut alice, |w| is_joined(w, "bob")).await;

    alice.send(audio("before")).await.unwrap();
    let got = recv_until(&mut bob, |w| is_audio(w, "before")).await;
    assert_eq!(got.user_id, "alice".as_bytes());
    assert_eq!(got.session_id, alice.id().get());
    bob.send(audio("reply")).await.unwrap();
    recv_until(&mut alice, |w| is_audio(w, "reply")).await;

    // NATS goes away: both nodes notice and keep serving their own sessions.
    server.stop();
    wait_for(&mut s1, BusState::Disconnected).await;
    wait_for(&mut s2, BusState::Disconnected).await;
    let metrics = n1.render_metrics().await.unwrap();
    assert!(
        metrics.contains("videocall_bus_connected{bus=\"nats\"} 0"),
        "{metrics}"
    );
    alice.send(audio("local only")).await.unwrap();
    recv_until(&mut carol, |w| is_audio(w, "local only")).await;

    // NATS comes back on the same port: the nodes reconnect and resubscribe by themselves.
    server.restart();
    wait_for(&mut s1, BusState::Connected).await;
    wait_for(&mut s2, BusState::Connected).await;
    // Resubscription completes shortly after the reconnect event; probe until it carries.
    let mut resumed = false;
    for attempt in 0..40 {
        let tag = format!("after-{attempt}");
        alice.send(audio(&tag)).await.unwrap();
        if try_recv_until(&mut bob, Duration::from_millis(250), |w| is_audio(w, &tag))
            .await
            .is_some()
        {
            resumed = true;
            break;
        }
    }
    assert!(resumed, "traffic did not resume after NATS came back");
    bob.send(audio("back again")).await.unwrap();
    recv_until(&mut alice, |w| is_audio(w, "back again")).await;
}

#[tokio::test]
async fn an_unreachable_nats_is_a_clear_error_when_waiting_for_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let err = NatsBus::connect(&url, true).await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn a_bus_started_before_its_server_connects_when_the_server_appears() {
    let mut server = NatsServer::start();
    server.stop();
    let bus = NatsBus::connect(&server.url(), false).await.unwrap();
    let mut state = bus.state();
    assert_eq!(*state.borrow(), BusState::Disconnected);
    server.restart();
    wait_for(&mut state, BusState::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_made_while_nats_is_away_are_dropped_and_counted_never_sent_late() {
    let mut server = NatsServer::start();
    let a = NatsBus::connect(&server.url(), true).await.unwrap();
    let b = NatsBus::connect(&server.url(), true).await.unwrap();
    let (sink, mut heard) = tokio::sync::mpsc::channel(1024);
    let _sub = b.subscribe("room.m.>", sink);
    // The subscription is on the wire once a publication carries.
    let mut probe = 0;
    loop {
        assert!(a.publish("room.m.1", format!("probe {probe}").into()));
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), heard.recv()).await {
            break;
        }
        probe += 1;
        assert!(probe < 100, "the subscription never carried");
    }

    server.stop();
    let (mut sa, mut sb) = (a.state(), b.state());
    wait_for(&mut sa, BusState::Disconnected).await;
    wait_for(&mut sb, BusState::Disconnected).await;
    let before = a.dropped();
    for i in 0..100 {
        assert!(!a.publish("room.m.1", format!("stale {i}").into()));
    }
    assert_eq!(a.dropped() - before, 100, "each one counted");

    server.restart();
    wait_for(&mut sa, BusState::Connected).await;
    wait_for(&mut sb, BusState::Connected).await;
    let mut fresh = 0;
    let got = loop {
        assert!(a.publish("room.m.1", format!("fresh {fresh}").into()));
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(200), heard.recv()).await
        {
            break message;
        }
        fresh += 1;
        assert!(fresh < 100, "traffic never resumed");
    };
    let text = String::from_utf8_lossy(&got.payload).into_owned();
    assert!(
        text.starts_with("fresh") || text.starts_with("probe"),
        "got {text:?} first"
    );
    // Whatever else arrives is fresh too (or a probe sent just before NATS went away, if the
    // connection broke with it still in flight: not a publication made while cut off).
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), heard.recv()).await
    {
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        assert!(
            !text.starts_with("stale"),
            "a stale publication arrived: {text}"
        );
    }
}

/// Polls the server's `/connz` until the node's connection holds exactly `want` (the server
/// tells nobody when a subscription arrives).
async fn wait_for_subscriptions(server: &NatsServer, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    loop {
        let got = server.subscriptions_of("videocall-relay");
        if got.len() == 1 && got[0] == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node's subscriptions are {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_one_subscription_per_meeting_whatever_its_sessions_and_reconnects() {
    let mut server = NatsServer::start();
    let bus = NatsBus::connect(&server.url(), true).await.unwrap();
    let mut state = bus.state();
    let config = RelayConfig {
        node_id: 1,
        reconnect_grace: Duration::from_millis(50),
        ..RelayConfig::default()
    };
    let node = NodeHandle::spawn(config, Arc::new(bus));
    let mut sessions = Vec::new();
    for (user, meeting) in [("a", "standup"), ("b", "standup"), ("c", "standup")] {
        let ids = (UserId::new(user).unwrap(), MeetingId::new(meeting).unwrap());
        sessions.push(node.join(ids.0, ids.1).await.unwrap());
    }
    let mut retro = Vec::new();
    for user in ["d", "e"] {
        let ids = (UserId::new(user).unwrap(), MeetingId::new("retro").unwrap());
        retro.push(node.join(ids.0, ids.1).await.unwrap());
    }
    wait_for_subscriptions(&server, &["room.retro.>", "room.standup.>"]).await;

    // A fresh connection after NATS comes back subscribes once again, not once more.
    server.stop();
    wait_for(&mut state, BusState::Disconnected).await;
    server.restart();
    wait_for(&mut state, BusState::Connected).await;
    wait_for_subscriptions(&server, &["room.retro.>", "room.standup.>"]).await;

    // The last of a meeting's sessions gone (after the reconnect grace), its subscription goes.
    drop(retro);
    wait_for_subscriptions(&server, &["room.standup.>"]).await;
    drop(sessions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meetings_packets_travel_in_batches_and_a_damaged_batch_is_dropped_and_counted() {
    let server = NatsServer::start();
    let a = NatsBus::connect(&server.url(), true).await.unwrap();
    let b = NatsBus::connect(&server.url(), true).await.unwrap();
    let (sink, mut heard) = tokio::sync::mpsc::channel(4096);
    let _sub = b.subscribe("room.m.>", sink);
    // Someone else on the bus: a raw client that sends what a broken or hostile node might.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut raw_sub = raw.subscribe("room.m.>").await.unwrap();
    raw.flush().await.unwrap();
    let mut probe = 0;
    loop {
        assert!(a.publish("room.m.1", format!("probe {probe}").into()));
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), heard.recv()).await {
            break;
        }
        probe += 1;
        assert!(probe < 100, "the subscription never carried");
    }
    while tokio::time::timeout(Duration::from_millis(100), heard.recv())
        .await
        .is_ok()
    {}
    while tokio::time::timeout(Duration::from_millis(100), raw_sub.next())
        .await
        .is_ok()
    {}

    // 200 packets published back to back: they arrive in order with their subjects, in fewer
    // NATS messages than packets.
    for i in 0..200 {
        let subject = if i % 2 == 0 { "room.m.1" } else { "room.m.1.2" };
        assert!(a.publish(subject, format!("p{i}").into()));
    }
    for i in 0..200 {
        let got = tokio::time::timeout(support::PATIENCE, heard.recv())
            .await
            .expect("every packet arrives")
            .unwrap();
        let subject = if i % 2 == 0 { "room.m.1" } else { "room.m.1.2" };
        assert_eq!(
            (got.subject.as_str(), got.payload.as_ref()),
            (subject, format!("p{i}").as_bytes())
        );
    }
    let mut messages = 0;
    while tokio::time::timeout(Duration::from_millis(300), raw_sub.next())
        .await
        .is_ok()
    {
        messages += 1;
    }
    assert!(
        (1..200).contains(&messages),
        "200 packets took {messages} NATS messages"
    );

    // Damaged batches are refused whole and counted; a single packet from a node of an earlier
    // version still arrives.
    let before = b.dropped();
    raw.publish("room.m.batch", vec![9, 9, 9].into())
        .await
        .unwrap();
    raw.publish("room.m.batch", vec![1, 1, b'1', 200, 0, 0, 0].into())
        .await
        .unwrap();
    raw.publish("room.m.7", "old style".into()).await.unwrap();
    raw.flush().await.unwrap();
    let got = tokio::time::timeout(support::PATIENCE, heard.recv())
        .await
        .expect("the single packet arrives")
        .unwrap();
    assert_eq!(
        (got.subject.as_str(), got.payload.as_ref()),
        ("room.m.7", &b"old style"[..])
    );
    assert_eq!(b.dropped() - before, 2, "each damaged batch counted");
}
