//! Relay nodes (real actix-api processes) on a 3-server NATS cluster joined by routes: a meeting
//! spanning nodes on different servers, and the loss of one server.

use std::time::Duration;

use videocall_testkit::PATIENCE;
use videocall_testkit::client::TestClient;
use videocall_testkit::free_tcp_port;
use videocall_testkit::nats::{NatsCluster, NatsServer};
use videocall_testkit::packets::{audio, is_audio, is_joined, media, video, video_seq};
use videocall_testkit::process::{Service, binary, wait_for_status};
use videocall_types::{MediaType, PacketType};

/// An actix-api node with `NATS_URL` = `urls`: (process, http port).
fn node(urls: &str) -> (Service, u16) {
    let http = free_tcp_port();
    let args = vec!["--listen".to_owned(), format!("127.0.0.1:{http}")];
    let service = Service::start(
        &binary("actix-api"),
        &args,
        &[("NATS_URL", urls.to_owned())],
        "Ctrl-C stops.",
    );
    wait_for_status(http, "/healthz", 200);
    (service, http)
}

/// The one cluster member holding a relay node's connection (the servers tell nobody when a
/// client arrives: their monitoring endpoints are asked until one has it).
async fn server_of_the_node(cluster: &NatsCluster) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let holding: Vec<usize> = (0..cluster.servers.len())
            .filter(|&i| {
                !cluster.servers[i]
                    .subscriptions_of("videocall-relay")
                    .is_empty()
            })
            .collect();
        if let [one] = holding[..] {
            return one;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node is connected to servers {holding:?}, not to one"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(http: u16, user: &str) -> TestClient {
    let mut client = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/{user}/span"))
        .await
        .expect("WebSocket connects");
    client
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await;
    client
}

/// How often [`until_heard`] sends: the resolution of the measured gap.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The longest the meeting may stay cut between the roaming node and the others after its
/// server is lost (the node notices the closed socket at once and tries every listed server).
const MAX_GAP: Duration = Duration::from_secs(10);

/// Sends tagged audio from `from` (and heartbeats from everyone, as real clients do) every
/// [`PROBE_EVERY`] until `to` hears it, and returns when it did: interest travels between
/// cluster members on its own time, so the first packets after a subscription or a reconnect
/// may find no route yet.
async fn until_heard(
    clients: &mut [TestClient],
    from: usize,
    to: usize,
    what: &str,
) -> tokio::time::Instant {
    for attempt in 0..200 {
        let tag = format!("{what} {attempt}");
        clients[from].send(audio(&tag));
        for client in clients.iter() {
            client.send(media(MediaType::Heartbeat, "", vec![]));
        }
        if clients[to]
            .try_recv_until(PROBE_EVERY, |w| is_audio(w, &tag))
            .await
            .is_some()
        {
            return tokio::time::Instant::now();
        }
    }
    panic!("{what}: client {to} never heard client {from}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_spans_three_nats_servers_and_survives_losing_one() {
    let mut cluster = NatsCluster::start(3);
    // The node given the whole cluster goes where the client library's shuffle takes it; the
    // others are each pinned to one of the remaining servers, so every server carries a node.
    let (_roaming, http_c) = node(&cluster.urls());
    let lost = server_of_the_node(&cluster).await;
    let others: Vec<&NatsServer> = (0..3)
        .filter(|&i| i != lost)
        .map(|i| &cluster.servers[i])
        .collect();
    let (_a, http_a) = node(&others[0].url());
    let (_b, http_b) = node(&others[1].url());

    let names = ["ann", "ben", "cat"];
    let mut clients = vec![
        join(http_a, names[0]).await,
        join(http_b, names[1]).await,
        join(http_c, names[2]).await,
    ];
    for (i, client) in clients.iter_mut().enumerate() {
        for other in names.iter().filter(|o| **o != names[i]) {
            client.recv_until(|w| is_joined(w, other)).await;
        }
    }
    // Media every way, a video frame larger than a batch's usual packet among it.
    for from in 0..3 {
        for to in (0..3).filter(|&to| to != from) {
            until_heard(&mut clients, from, to, &format!("{from}->{to}")).await;
        }
    }
    clients[1].send(video(5, true, 20_000));
    for to in [0, 2] {
        let got = clients[to].recv_until(|w| video_seq(w) == Some(5)).await;
        assert_eq!(got.user_id, &b"ben"[..]);
    }

    // The roaming node's server dies. The nodes on the other two keep exchanging at once...
    cluster.servers[lost].stop();
    let lost_at = tokio::time::Instant::now();
    clients[0].send(audio("still here"));
    clients[1].recv_until(|w| is_audio(w, "still here")).await;
    clients[1].send(audio("me too"));
    clients[0].recv_until(|w| is_audio(w, "me too")).await;
    // ...and the roaming node reconnects to a surviving server and is heard both ways again,
    // within a bounded gap (measured from the kill to the later of the two directions).
    let heard_out = until_heard(&mut clients, 2, 0, "after the loss, cat to ann").await;
    let heard_in = until_heard(&mut clients, 0, 2, "after the loss, ann to cat").await;
    let gap = heard_out.max(heard_in) - lost_at;
    eprintln!(
        "[nats_cluster] media between the roaming node and the others flowed again {} ms after its server was killed (probes every {} ms)",
        gap.as_millis(),
        PROBE_EVERY.as_millis()
    );
    assert!(gap < MAX_GAP, "the meeting was cut for {gap:?}");
    let back = server_of_the_node_among(&cluster, lost).await;
    assert_ne!(back, lost);
    wait_for_status(http_c, "/healthz", 200);
    until_heard(&mut clients, 1, 2, "after the loss, ben to cat").await;
}

/// Which surviving member (not `dead`) holds the roaming node's connection, once it has moved.
async fn server_of_the_node_among(cluster: &NatsCluster, dead: usize) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let holding: Vec<usize> = (0..cluster.servers.len())
            .filter(|&i| i != dead)
            .filter(|&i| cluster.servers[i].subscriptions_of("videocall-relay").len() == 2)
            .collect();
        if let [one] = holding[..] {
            return one;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the roaming node did not move to a surviving server ({holding:?} hold two nodes)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
