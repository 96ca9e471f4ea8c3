//! Admission through both relays on real sockets: room tokens (also the original's form and
//! claim set, plus `e2ee`), refusals with their status, observers, no takeover, and host removal across two
//! nodes on a real nats-server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use videocall_auth::{Grants, RoomClaims, TokenKey};
use videocall_testkit::client::TestClient;
use videocall_testkit::free_tcp_port;
use videocall_testkit::nats::NatsServer;
use videocall_testkit::packets::{audio, is_audio, is_joined};
use videocall_testkit::process::{
    Service, binary, certificate_hash, http_get, single_node, wait_for_status,
};
use videocall_types::{
    MeetingEventType, MeetingId, MeetingPacket, PacketType, PacketWrapper, UserId,
};

const SECRET: &str = "a-test-secret-of-32-bytes-length";
const ALL: Grants = Grants {
    publish: true,
    subscribe: true,
    host: false,
};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(user: &str, meeting: &str, grants: Grants, exp: i64) -> RoomClaims {
    RoomClaims::new(
        &UserId::new(user).unwrap(),
        &MeetingId::new(meeting).unwrap(),
        format!("{user} (display)"),
        grants,
        false,
        exp,
    )
}

fn token(user: &str, meeting: &str, grants: Grants) -> String {
    TokenKey::new(SECRET.as_bytes())
        .unwrap()
        .sign(&claims(user, meeting, grants, now() + 600))
}

fn secured(extra: &[&str]) -> (Service, u16, u16) {
    let mut args = vec!["--jwt-secret", SECRET];
    args.extend_from_slice(extra);
    single_node(&args)
}

/// The HTTP status and body of a refused WebSocket upgrade (panics if it is accepted).
async fn ws_refusal(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            (response.status().as_u16(), body.unwrap_or_default())
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

/// How a WebTransport session to `url` was refused: the CONNECT error, or the close after it.
async fn wt_refusal(url: &str, hash: [u8; 32]) -> String {
    match TestClient::webtransport(url, hash).await {
        Err(e) => format!("{e:#}"),
        Ok(mut client) => client.closed().await,
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

fn meeting_event(w: &PacketWrapper, kind: MeetingEventType) -> Option<MeetingPacket> {
    (w.packet_type == PacketType::Meeting as i32)
        .then(|| MeetingPacket::decode(w.data.clone()).ok())
        .flatten()
        .filter(|m| m.event_type == kind as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_their_status_on_both_relays_and_counted() {
    let (_node, http, udp) = secured(&["--require-tokens"]);
    let hash = certificate_hash(http);
    let key = TokenKey::new(SECRET.as_bytes()).unwrap();
    let other = TokenKey::new(b"another-secret-of-enough-length").unwrap();
    let expired = key.sign(&claims("alice", "m1", ALL, now() - 600));
    let forged = other.sign(&claims("alice", "m1", ALL, now() + 600));
    let mut no_join = claims("alice", "m1", ALL, now() + 600);
    no_join.room_join = false;
    let no_join = key.sign(&no_join);
    let good = token("alice", "m1", ALL);
    for (path, status) in [
        (format!("/lobby?token={expired}"), 401),
        (format!("/lobby?token={forged}"), 401),
        (format!("/lobby/alice/m2?token={good}"), 403),
        (format!("/lobby?token={no_join}"), 403),
        ("/lobby/alice/m1".to_owned(), 403),
    ] {
        let (got, body) = ws_refusal(&format!("ws://127.0.0.1:{http}{path}")).await;
        assert_eq!(got, status, "WebSocket {path:.40}: {body}");
        let wt = wt_refusal(&format!("https://127.0.0.1:{udp}{path}"), hash).await;
        let expected = if status == 403 {
            "403".to_owned()
        } else {
            format!("4{status}")
        };
        assert!(wt.contains(&expected), "WebTransport {path:.40}: {wt}");
    }
    let (_, metrics) = http_get(http, "/metrics");
    for (reason, n) in [
        ("token_expired", 2),
        ("token_bad_signature", 2),
        ("token_wrong_meeting", 2),
        ("token_missing_grant", 2),
        ("token_required", 2),
    ] {
        let name = format!("videocall_join_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&metrics, &name), n, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_claim_set_opens_a_protected_meeting_and_names_its_user_from_the_token() {
    let (_node, http, udp) = secured(&["--require-tokens"]);
    let hash = certificate_hash(http);
    // The payload the original videocall-rs meeting backend signs: no `typ`, no `observer`, no
    // `e2ee` (its clients do not use ours; no setting is enforced for such a join).
    let original = format!(
        r#"{{"sub":"bob@example.com","room":"m1","room_join":true,"is_host":false,
            "display_name":"Bob","exp":{},"iss":"videocall-meeting-backend"}}"#,
        now() + 600
    );
    let original: RoomClaims = serde_json::from_str(&original).unwrap();
    let bob_token = TokenKey::new(SECRET.as_bytes()).unwrap().sign(&original);
    let url = format!("ws://127.0.0.1:{http}/lobby?token={bob_token}");
    let mut bob = TestClient::websocket(&url)
        .await
        .expect("the original's token opens the meeting");
    let alice_url = format!(
        "https://127.0.0.1:{udp}/lobby?token={}",
        token("alice", "m1", ALL)
    );
    let mut alice = TestClient::webtransport(&alice_url, hash).await.unwrap();
    let joined = alice.recv_until(|w| is_joined(w, "bob@example.com")).await;
    let event = MeetingPacket::decode(joined.data).unwrap();
    assert_eq!(event.display_name, "Bob".as_bytes());
    bob.recv_until(|w| is_joined(w, "alice")).await;
    bob.send(audio("from-bob"));
    let got = alice.recv_until(|w| is_audio(w, "from-bob")).await;
    assert_eq!(got.user_id, "bob@example.com".as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observers_packets_never_reach_the_others() {
    let (_node, http, udp) = secured(&[]);
    let hash = certificate_hash(http);
    let observer = Grants {
        publish: false,
        ..ALL
    };
    for (transport, url) in [
        (
            "ws",
            format!(
                "ws://127.0.0.1:{http}/lobby?token={}",
                token("viewer", "obs", observer)
            ),
        ),
        (
            "wt",
            format!(
                "https://127.0.0.1:{udp}/lobby?token={}",
                token("viewer2", "obs", observer)
            ),
        ),
    ] {
        let mut viewer = if transport == "ws" {
            TestClient::websocket(&url).await.unwrap()
        } else {
            TestClient::webtransport(&url, hash).await.unwrap()
        };
        let mut speaker = TestClient::websocket(&format!(
            "ws://127.0.0.1:{http}/lobby/speaker-{transport}/obs"
        ))
        .await
        .unwrap();
        speaker
            .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
            .await;
        viewer
            .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
            .await;
        for i in 0..20 {
            viewer.send(audio(&format!("observer-{i}")));
        }
        speaker.send(audio("to-viewer"));
        viewer.recv_until(|w| is_audio(w, "to-viewer")).await;
        let leaked = speaker
            .try_recv_until(Duration::from_millis(500), |w| {
                w.packet_type == PacketType::Media as i32 && w.user_id.starts_with(b"viewer")
            })
            .await;
        assert!(
            leaked.is_none(),
            "an observer's media reached another participant ({transport})"
        );
    }
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"observer_media\"}"
        ) >= 40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_attempt_is_refused_and_the_real_participant_keeps_its_tile_and_keys() {
    let (_node, http, udp) = single_node(&[]);
    let hash = certificate_hash(http);
    let mut alice = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/alice/open1"))
        .await
        .unwrap();
    let mut bob = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/bob/open1"))
        .await
        .unwrap();
    let alice_id = alice
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await
        .session_id;
    let secret = alice
        .recv_until(|w| meeting_event(w, MeetingEventType::ReconnectSecret).is_some())
        .await;
    let secret = MeetingPacket::decode(secret.data).unwrap().room_token;
    bob.recv_until(|w| is_joined(w, "alice")).await;
    alice.send(Bytes::from(
        PacketWrapper {
            packet_type: PacketType::RsaPubKey as i32,
            data: Bytes::from_static(b"alice-key"),
            ..Default::default()
        }
        .encode_to_vec(),
    ));
    bob.recv_until(|w| w.packet_type == PacketType::RsaPubKey as i32)
        .await;

    // Mallory claims alice's id, on both transports, with and without a made-up secret.
    let (status, body) = ws_refusal(&format!("ws://127.0.0.1:{http}/lobby/alice/open1")).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = ws_refusal(&format!(
        "ws://127.0.0.1:{http}/lobby/alice/open1?reconnect=1.00"
    ))
    .await;
    assert_eq!(status, 409);
    let wt = wt_refusal(&format!("https://127.0.0.1:{udp}/lobby/alice/open1"), hash).await;
    assert!(wt.contains("4409"), "{wt}");

    // Bob never saw alice leave or be replaced, and still gets her media under her session.
    alice.send(audio("still-alice"));
    let got = bob
        .recv_until(|w| {
            assert!(
                meeting_event(w, MeetingEventType::ParticipantLeft).is_none(),
                "alice left"
            );
            assert!(!is_joined(w, "alice"), "someone replaced alice");
            is_audio(w, "still-alice")
        })
        .await;
    assert_eq!(got.session_id, alice_id);
    let (_, metrics) = http_get(http, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "videocall_join_refused_total{reason=\"user_present\"}"
        ),
        3
    );

    // Alice herself, with her secret, replaces her session without a leave.
    let url = format!("ws://127.0.0.1:{http}/lobby/alice/open1?reconnect={secret}");
    let mut alice2 = TestClient::websocket(&url)
        .await
        .expect("the secret proves it is alice");
    let alice2_id = alice2
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await
        .session_id;
    assert!(alice.closed().await.contains("replaced"));
    let joined = bob.recv_until(|w| is_joined(w, "alice")).await;
    assert_eq!(
        MeetingPacket::decode(joined.data).unwrap().session_id,
        alice2_id
    );
}

/// Two actix-api nodes on `nats` sharing [`SECRET`]: their HTTP ports, and the processes.
fn two_nodes(nats: &NatsServer) -> ((u16, u16), Vec<Service>) {
    let (a, b) = (free_tcp_port(), free_tcp_port());
    let mut nodes = Vec::new();
    for http in [a, b] {
        let args = vec![
            "--listen".to_owned(),
            format!("127.0.0.1:{http}"),
            "--nats-url".to_owned(),
            nats.url(),
            "--jwt-secret".to_owned(),
            SECRET.to_owned(),
        ];
        nodes.push(Service::start(
            &binary("actix-api"),
            &args,
            &[],
            "Ctrl-C stops.",
        ));
        wait_for_status(http, "/healthz", 200);
    }
    ((a, b), nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_removes_a_participant_on_another_node_within_a_second() {
    let nats = NatsServer::start();
    let ((a, b), nodes) = two_nodes(&nats);
    let host_grants = Grants { host: true, ..ALL };
    let mut host = TestClient::websocket(&format!(
        "ws://127.0.0.1:{a}/lobby?token={}",
        token("host", "rm", host_grants)
    ))
    .await
    .unwrap();
    let mut mallory = TestClient::websocket(&format!("ws://127.0.0.1:{b}/lobby/mallory/rm"))
        .await
        .unwrap();
    let mut bob = TestClient::websocket(&format!("ws://127.0.0.1:{b}/lobby/bob/rm"))
        .await
        .unwrap();
    host.recv_until(|w| is_joined(w, "mallory")).await;
    host.recv_until(|w| is_joined(w, "bob")).await;
    mallory.recv_until(|w| is_joined(w, "host")).await;

    // Bob is no host: his removal request does nothing.
    let request = |target: &str| {
        Bytes::from(
            PacketWrapper {
                packet_type: PacketType::Meeting as i32,
                data: MeetingPacket {
                    event_type: MeetingEventType::ParticipantRemoved as i32,
                    target_user_id: Bytes::copy_from_slice(target.as_bytes()),
                    ..Default::default()
                }
                .encode_to_vec()
                .into(),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    };
    bob.send(request("mallory"));
    let early = mallory.next(Duration::from_millis(500)).await;
    assert!(!matches!(
        early,
        Some(videocall_testkit::client::Incoming::Closed(_))
    ));

    let asked = Instant::now();
    host.send(request("mallory"));
    let reason = mallory.closed().await;
    let took = asked.elapsed();
    assert!(reason.contains("removed"), "{reason}");
    assert!(took < Duration::from_secs(1), "removal took {took:?}");
    // Everyone hears the leave; the removed user cannot come back.
    bob.recv_until(|w| {
        meeting_event(w, MeetingEventType::ParticipantLeft)
            .is_some_and(|m| m.target_user_id == b"mallory".as_slice())
    })
    .await;
    let (status, _) = ws_refusal(&format!("ws://127.0.0.1:{b}/lobby/mallory/rm")).await;
    assert_eq!(status, 403);
    let (_, metrics) = http_get(b, "/metrics");
    assert_eq!(
        metric(
            &metrics,
            "videocall_dropped_packets_total{reason=\"not_host\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &metrics,
            "videocall_closed_sessions_total{reason=\"removed\"}"
        ),
        1
    );
    drop(nodes);
}

/// Tokens that are not tokens and ids that are not ids: each refused before the upgrade with its
/// 4xx (WebTransport: the session closed with 4000 + status), never accepted, never a 5xx; a
/// user id that reads like SQL is only a name; the node carries on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_and_ids_on_the_lobby_get_a_4xx_on_both_relays_and_the_node_carries_on() {
    let (_node, http, udp) = secured(&[]);
    let hash = certificate_hash(http);
    let long = "x".repeat(6000);
    for (path, status) in [
        ("/lobby?token=".to_owned(), 401),
        ("/lobby?token=garbage".to_owned(), 401),
        ("/lobby?token=a.b.c".to_owned(), 401),
        ("/lobby?token=%00%FF%FE".to_owned(), 401),
        (format!("/lobby?token={long}"), 401),
        ("/lobby".to_owned(), 401),
        ("/lobby/alice/%E4%BC%9A%E8%AD%B0".to_owned(), 400),
        (format!("/lobby/alice/{}", "m".repeat(65)), 400),
        ("/lobby/al%00ice/m1".to_owned(), 400),
        (format!("/lobby/{}/m1", "u".repeat(300)), 400),
    ] {
        let (got, body) = ws_refusal(&format!("ws://127.0.0.1:{http}{path}")).await;
        assert_eq!(got, status, "WebSocket {path:.60}: {body}");
        let wt = wt_refusal(&format!("https://127.0.0.1:{udp}{path}"), hash).await;
        if path.len() > 4096 {
            // A CONNECT this large is turned away by HTTP/3 itself (H3_EXCESSIVE_LOAD).
            assert!(wt.contains("closed"), "WebTransport {path:.60}: {wt}");
        } else if status == 400 {
            // A bad path is answered on the CONNECT itself (404: wtransport has no 400).
            assert!(wt.contains("rejected"), "WebTransport {path:.60}: {wt}");
        } else {
            assert!(
                wt.contains(&format!("4{status}")),
                "WebTransport {path:.60}: {wt}"
            );
        }
    }
    // A user id that reads like SQL is a printable name like any other.
    let sql = "'; DROP TABLE meetings;--";
    let mut watcher = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/watcher/m1"))
        .await
        .unwrap();
    let _odd = TestClient::webtransport(
        &format!("https://127.0.0.1:{udp}/lobby/%27%3B%20DROP%20TABLE%20meetings%3B--/m1"),
        hash,
    )
    .await
    .unwrap();
    watcher.recv_until(|w| is_joined(w, sql)).await;
    // Still serving, the meeting store included: a token join and a new open meeting meet.
    let mut a = TestClient::websocket(&format!(
        "ws://127.0.0.1:{http}/lobby?token={}",
        token("alice", "fine", ALL)
    ))
    .await
    .unwrap();
    let _b = TestClient::webtransport(&format!("https://127.0.0.1:{udp}/lobby/bob/fine"), hash)
        .await
        .unwrap();
    a.recv_until(|w| is_joined(w, "bob")).await;
}

/// An audio envelope carrying `tag`: `sealed` set, as the E2EE core sends (the relay never opens
/// it; the tag only identifies it here).
fn sealed_audio(tag: &str) -> Bytes {
    use videocall_types::proto::SealedMedia;
    PacketWrapper {
        packet_type: PacketType::Media as i32,
        data: videocall_types::MediaPacket {
            media_type: videocall_types::MediaType::Audio as i32,
            data: Bytes::copy_from_slice(tag.as_bytes()),
            sealed: Some(SealedMedia::default()),
            ..Default::default()
        }
        .encode_to_vec()
        .into(),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// The next audio packet `client` receives (other packets skipped).
async fn next_audio(client: &mut TestClient) -> PacketWrapper {
    client
        .recv_until(|w| {
            videocall_testkit::packets::media_of(w)
                .is_some_and(|m| m.media_type == videocall_types::MediaType::Audio as i32)
        })
        .await
}

/// Issue #16, no downgrade: a meeting whose room tokens say `e2ee` is enforced by the relay on
/// every node: media in clear (from a token holder, or from a plain join that gets into the same
/// meeting) is dropped at ingress and counted as `cleartext_in_e2ee_meeting`; sealed media flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_drop_clear_media_in_a_meeting_whose_tokens_say_e2ee_and_count_it() {
    let nats = NatsServer::start();
    let ((a, b), _nodes) = two_nodes(&nats);
    let key = TokenKey::new(SECRET.as_bytes()).unwrap();
    let encrypted = |user: &str| {
        let mut c = claims(user, "secret-m", ALL, now() + 600);
        c.e2ee = Some(true);
        key.sign(&c)
    };
    let mut alice = TestClient::websocket(&format!(
        "ws://127.0.0.1:{a}/lobby?token={}",
        encrypted("alice")
    ))
    .await
    .unwrap();
    let mut bob = TestClient::websocket(&format!(
        "ws://127.0.0.1:{b}/lobby?token={}",
        encrypted("bob")
    ))
    .await
    .unwrap();
    alice.recv_until(|w| is_joined(w, "bob")).await;
    // A plain join (no token, no stored record) into the same meeting on node b.
    let mut carol = TestClient::websocket(&format!("ws://127.0.0.1:{b}/lobby/carol/secret-m"))
        .await
        .unwrap();
    alice.recv_until(|w| is_joined(w, "carol")).await;
    bob.recv_until(|w| is_joined(w, "carol")).await;

    // Clear first, then sealed, on one connection: the first audio each receiver gets is the
    // sealed one, so the clear packet was dropped (not merely late).
    alice.send(audio("clear-from-alice"));
    alice.send(sealed_audio("sealed-from-alice"));
    for receiver in [&mut bob, &mut carol] {
        let got = next_audio(receiver).await;
        assert!(is_audio(&got, "sealed-from-alice"));
    }
    carol.send(audio("clear-from-carol"));
    carol.send(sealed_audio("sealed-from-carol"));
    for receiver in [&mut alice, &mut bob] {
        let got = next_audio(receiver).await;
        assert!(is_audio(&got, "sealed-from-carol"));
    }
    let name = "videocall_dropped_packets_total{reason=\"cleartext_in_e2ee_meeting\"}";
    for http in [a, b] {
        let (_, metrics) = http_get(http, "/metrics");
        assert_eq!(metric(&metrics, name), 1, "node {http}: {name}");
    }

    // A meeting whose tokens say clear is not touched: clear audio flows.
    let mut dave = TestClient::websocket(&format!(
        "ws://127.0.0.1:{a}/lobby?token={}",
        token("dave", "clear-m", ALL)
    ))
    .await
    .unwrap();
    let mut erin = TestClient::websocket(&format!(
        "ws://127.0.0.1:{b}/lobby?token={}",
        token("erin", "clear-m", ALL)
    ))
    .await
    .unwrap();
    dave.recv_until(|w| is_joined(w, "erin")).await;
    dave.send(audio("clear-from-dave"));
    assert!(is_audio(&next_audio(&mut erin).await, "clear-from-dave"));
}
