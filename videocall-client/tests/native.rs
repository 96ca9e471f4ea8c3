//! The native driver against a real single node (actix-api --webtransport) on real sockets.
#![cfg(feature = "native")]

use std::time::Duration;

use bytes::Bytes;
use videocall_client::native::{
    Client, NativeConfig, RelayUrls, ServerVerification, TransportKind, Update,
};
use videocall_client::{ClientConfig, Event, TransportError};
use videocall_testkit::process::{Service, certificate_hash};
use videocall_testkit::{PATIENCE, free_tcp_port, free_udp_port};
use videocall_types::{MediaPacket, MediaType, MeetingId, UserId};

fn single_node() -> (Service, u16, u16) {
    videocall_testkit::process::single_node(&[])
}

fn config(user: &str, meeting: &str) -> ClientConfig {
    ClientConfig::new(
        UserId::new(user).expect("valid user"),
        MeetingId::new(meeting).expect("valid meeting"),
    )
}

/// Collects updates until one satisfies `want`, returning everything seen.
async fn until(client: &mut Client, want: impl Fn(&Update) -> bool) -> Vec<Update> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let update = tokio::time::timeout_at(deadline, client.next_update())
            .await
            .unwrap_or_else(|_| panic!("update never came; saw {seen:?}"))
            .expect("the driver runs");
        let done = want(&update);
        seen.push(update);
        if done {
            return seen;
        }
    }
}

fn is_joined(update: &Update) -> bool {
    matches!(update, Update::Session(Event::Joined { .. }))
}

/// The link is announced before the session joins on it (what the session sends on joining
/// needs the link).
fn connected_before_joined(seen: &[Update], kind: TransportKind) {
    let connected = seen.iter().position(|u| *u == Update::Connected(kind));
    let joined = seen.iter().position(is_joined);
    assert!(
        connected.is_some() && connected < joined,
        "expected Connected({kind}) before Joined: {seen:?}"
    );
}

#[tokio::test]
async fn webtransport_falls_back_to_websocket_when_quic_is_unreachable() {
    let (_node, http, _udp) = single_node();
    let mut native = NativeConfig::new(
        Some(format!("https://127.0.0.1:{}", free_udp_port())),
        Some(format!("http://127.0.0.1:{http}")),
    );
    native.verification = ServerVerification::Insecure;
    native.webtransport_timeout = Duration::from_secs(1);
    let mut client = Client::start(config("a", "fallback"), native);
    let seen = until(&mut client, is_joined).await;
    assert!(
        matches!(
            seen.first(),
            Some(Update::TransportFailed {
                transport: TransportKind::WebTransport,
                error,
            }) if !error.is_certificate()
        ),
        "{seen:?}"
    );
    connected_before_joined(&seen, TransportKind::WebSocket);
    assert_eq!(client.status().transport, Some(TransportKind::WebSocket));
    client.handle().leave().await;
}

#[tokio::test]
async fn a_client_given_several_relays_joins_through_the_first_that_answers() {
    let (_node, http, _udp) = single_node();
    let relay = |port: u16| RelayUrls {
        webtransport_url: None,
        websocket_url: Some(format!("http://127.0.0.1:{port}")),
    };
    // Nothing listens on the first.
    let native = NativeConfig::with_relays(vec![relay(free_tcp_port()), relay(http)]);
    let mut client = Client::start(config("a", "several"), native);
    let seen = until(&mut client, is_joined).await;
    assert!(
        matches!(
            seen.first(),
            Some(Update::TransportFailed {
                transport: TransportKind::WebSocket,
                ..
            })
        ),
        "{seen:?}"
    );
    connected_before_joined(&seen, TransportKind::WebSocket);
    assert_eq!(client.status().relay, Some(1));
    client.handle().leave().await;
}

#[tokio::test]
async fn clients_on_both_transports_exchange_media_and_measure_rtt() {
    let (_node, http, udp) = single_node();
    let mut over_wt = NativeConfig::new(Some(format!("https://127.0.0.1:{udp}")), None);
    over_wt.verification = ServerVerification::CertHash(certificate_hash(http));
    let over_ws = NativeConfig::new(None, Some(format!("http://127.0.0.1:{http}")));
    let mut a = Client::start(config("a", "both"), over_wt);
    let mut b = Client::start(config("b", "both"), over_ws);
    connected_before_joined(&until(&mut a, is_joined).await, TransportKind::WebTransport);
    connected_before_joined(&until(&mut b, is_joined).await, TransportKind::WebSocket);
    assert_eq!(a.status().transport, Some(TransportKind::WebTransport));
    // b is in the meeting once a hears of it.
    until(
        &mut a,
        |u| matches!(u, Update::Session(Event::PeerJoined { user, .. }) if user == "b"),
    )
    .await;

    let frame = Bytes::from_static(b"not really h264");
    a.handle().send_media(MediaPacket {
        media_type: MediaType::Video as i32,
        data: frame.clone(),
        frame_type: "key".into(),
        ..Default::default()
    });
    let seen = until(&mut b, |u| {
        matches!(u, Update::Session(Event::Media(m))
            if m.user == "a" && m.packet.media_type == MediaType::Video as i32)
    })
    .await;
    let Some(Update::Session(Event::Media(media))) = seen.last() else {
        unreachable!("until returns on a match")
    };
    assert_eq!(media.packet.data, frame);

    until(&mut a, |u| matches!(u, Update::Session(Event::Rtt(_)))).await;
    let rtt = a.status().rtt.expect("an RTT after an RTT event");
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");

    a.handle().leave().await;
    until(
        &mut b,
        |u| matches!(u, Update::Session(Event::PeerLeft { user, .. }) if user == "a"),
    )
    .await;
}

#[tokio::test]
async fn a_refused_certificate_is_a_certificate_error_and_websocket_is_not_tried() {
    let (_node, http, udp) = single_node();
    let mut native = NativeConfig::new(
        Some(format!("https://127.0.0.1:{udp}")),
        Some(format!("http://127.0.0.1:{http}")),
    );
    // Not the node's certificate: someone else answering at its address.
    native.verification = ServerVerification::CertHash([7; 32]);
    let mut cfg = config("a", "wrong-cert");
    cfg.reconnect = false;
    let mut client = Client::start(cfg, native);
    let seen = until(&mut client, |u| {
        matches!(u, Update::Session(Event::Disconnected { .. }))
    })
    .await;
    assert!(
        matches!(
            seen.first(),
            Some(Update::TransportFailed {
                transport: TransportKind::WebTransport,
                error: TransportError::Certificate(_),
            })
        ),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|u| matches!(
            u,
            Update::Connected(_)
                | Update::TransportFailed {
                    transport: TransportKind::WebSocket,
                    ..
                }
        )),
        "WebSocket was tried after the certificate was refused: {seen:?}"
    );
}

#[tokio::test]
async fn user_ids_with_slashes_queries_and_spaces_arrive_whole_over_both_transports() {
    let (_node, http, udp) = single_node();
    let mut over_wt = NativeConfig::new(Some(format!("https://127.0.0.1:{udp}")), None);
    over_wt.verification = ServerVerification::CertHash(certificate_hash(http));
    let over_ws = NativeConfig::new(None, Some(format!("http://127.0.0.1:{http}")));
    let (wt_user, ws_user) = ("ops/Zoë Smith?framed=0", "100% #2 ü/..");
    let mut a = Client::start(config(wt_user, "odd-ids"), over_wt);
    let mut b = Client::start(config(ws_user, "odd-ids"), over_ws);
    until(&mut a, is_joined).await;
    until(&mut b, is_joined).await;
    // Each hears of the other under the exact id it joined with.
    until(
        &mut a,
        |u| matches!(u, Update::Session(Event::PeerJoined { user, .. }) if user == ws_user),
    )
    .await;
    until(
        &mut b,
        |u| matches!(u, Update::Session(Event::PeerJoined { user, .. }) if user == wt_user),
    )
    .await;
    a.handle().leave().await;
    b.handle().leave().await;
}

#[tokio::test]
async fn the_node_states_its_certificate_hash_and_meeting_settings_and_refusals_say_why() {
    use videocall_client::http::{get, meeting_settings, served_certificate_hash};
    let (_node, http, _udp) = single_node();
    let base = format!("http://127.0.0.1:{http}");
    assert_eq!(
        served_certificate_hash(&base).await,
        Some(certificate_hash(http))
    );
    let meeting = MeetingId::new("settings").unwrap();
    assert_eq!(
        meeting_settings(&base, &meeting).await.map(|s| s.e2ee),
        Ok(true)
    );
    let missing = get(&base, "/no/such/page").await.unwrap_err();
    assert!(missing.contains("404"), "{missing}");
    let nobody = get(&format!("http://127.0.0.1:{}", free_tcp_port()), "/").await;
    assert!(nobody.is_err());
    let tls = get("https://127.0.0.1:1", "/").await.unwrap_err();
    assert!(tls.contains("only http://"), "{tls}");
}

/// The relay and the client each ask the other for sparse acknowledgements (ACK_FREQUENCY):
/// a client taking in a stream of media acknowledges a small share of the relay's packets
/// (QUIC's default is every 2nd), and the relay, asked by the sender, acknowledges less too.
#[tokio::test]
async fn webtransport_peers_ask_each_other_for_sparse_acknowledgements() {
    use prost::Message;
    use std::sync::Arc;
    use videocall_client::native::{connect_webtransport, spawn_stream_writer};
    use videocall_types::framing::UniStreamReader;
    use videocall_types::{PacketType, PacketWrapper};

    const FRAMES: usize = 300;
    let (_node, http, udp) = single_node();
    let mut native = NativeConfig::new(Some(format!("https://127.0.0.1:{udp}")), None);
    native.verification = ServerVerification::CertHash(certificate_hash(http));
    let url = |user: &str| format!("https://127.0.0.1:{udp}/lobby/{user}/acks?framed=1");
    // Admitted (in the meeting) once connected.
    let receiver = connect_webtransport(&native, &url("b")).await.expect("b");
    let sender = Arc::new(connect_webtransport(&native, &url("a")).await.expect("a"));
    let (outgoing, _writer) = spawn_stream_writer(sender.clone(), Duration::from_secs(1));
    let send = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(2));
        for _ in 0..FRAMES {
            pace.tick().await;
            let media = MediaPacket {
                media_type: MediaType::Video as i32,
                data: vec![7; 3000].into(),
                frame_type: "key".into(),
                ..Default::default()
            };
            outgoing
                .send(videocall_testkit::packets::wrap(&media))
                .expect("writer runs");
        }
        outgoing
    });

    let mut stream = receiver.accept_uni().await.expect("the relay's stream");
    let mut reader = UniStreamReader::default();
    let mut chunk = vec![0; 64 * 1024];
    let mut media = 0;
    tokio::time::timeout(PATIENCE, async {
        while media < FRAMES {
            let n = stream.read(&mut chunk).await.expect("read").expect("open");
            reader.handle_chunk(&chunk[..n]).expect("framing");
            while let Some(packet) = reader.poll_packet().expect("framing") {
                let wrapper = PacketWrapper::decode(packet).expect("a wrapper");
                if wrapper.packet_type == PacketType::Media as i32 {
                    media += 1;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{media} of {FRAMES} frames arrived"));
    let _outgoing = send.await.expect("sender");

    let stats = receiver.quic_connection().stats();
    assert!(
        stats.frame_rx.ack_frequency >= 1,
        "the relay asked: {stats:?}"
    );
    assert!(
        stats.frame_tx.ack_frequency >= 1,
        "the client asked: {stats:?}"
    );
    assert!(
        stats.frame_tx.acks * 4 < stats.udp_rx.datagrams,
        "{} ACKs for {} datagrams",
        stats.frame_tx.acks,
        stats.udp_rx.datagrams
    );
    let stats = sender.quic_connection().stats();
    assert!(
        stats.frame_rx.acks * 4 < stats.udp_tx.datagrams,
        "the relay sent {} ACKs for {} datagrams",
        stats.frame_rx.acks,
        stats.udp_tx.datagrams
    );
}
