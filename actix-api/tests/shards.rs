//! A node of two relay shards (`--relay-shards 2`) on real sockets: meetings hash onto
//! different shards and both work (roster, media every way over WebSocket and WebTransport),
//! `/metrics` sums the shards, and a host's removal through the API reaches the meeting's shard.

use serde_json::json;
use videocall_relay::node::shard_index;
use videocall_testkit::client::TestClient;
use videocall_testkit::packets::{audio, is_audio, is_joined, video, video_seq};
use videocall_testkit::process::{api_call, certificate_hash, http_get, single_node};
use videocall_types::MeetingId;

const SECRET: &str = "a-test-secret-of-32-bytes-length";

/// A meeting id with `prefix` that hashes onto `shard` of two.
fn meeting_on(prefix: &str, shard: usize) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|m| shard_index(&MeetingId::new(m.as_str()).unwrap(), 2) == shard)
        .expect("some id hashes onto each shard")
}

/// The value of the series `series` (a name with its labels) in `text`, each metric once.
fn value(text: &str, series: &str) -> f64 {
    let mut found = text
        .lines()
        .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok());
    let value = found
        .next()
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert!(found.next().is_none(), "{series} twice in\n{text}");
    value
}

/// A guest logs in (creating `meeting` if asked) and takes a room token for it: (token, user
/// id, login cookie).
fn token(http: u16, name: &str, meeting: &str, create: bool) -> (String, String, String) {
    let login = api_call(
        http,
        "POST",
        "/api/v1/login/guest",
        None,
        Some(json!({ "display_name": name })),
    );
    assert_eq!(login.status, 200, "{}", login.json);
    let cookie = login.cookie.expect("a login cookie");
    let login = login.json;
    if create {
        let created = api_call(
            http,
            "POST",
            "/api/v1/meetings",
            Some(&cookie),
            Some(json!({ "id": meeting })),
        );
        assert_eq!(created.status, 201, "{}", created.json);
    }
    let joined = api_call(
        http,
        "POST",
        &format!("/api/v1/meetings/{meeting}/join"),
        Some(&cookie),
        Some(json!({ "display_name": name })),
    );
    assert_eq!(joined.status, 200, "{}", joined.json);
    let joined = joined.json;
    let token = joined["token"].as_str().expect("a room token").to_owned();
    let id = login["id"].as_str().expect("a user id").to_owned();
    (token, id, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_on_both_shards_of_a_node_work_and_its_metrics_sum_them() {
    let (_node, http, udp) = single_node(&["--relay-shards", "2", "--jwt-secret", SECRET]);
    let hash = certificate_hash(http);
    let ws = |user: String, meeting: String| async move {
        TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/{user}/{meeting}"))
            .await
            .expect("WebSocket connects")
    };
    let mut meetings = Vec::new();
    for shard in 0..2 {
        let m = meeting_on("open", shard);
        let mut alice = ws(format!("alice{shard}"), m.clone()).await;
        let alice_id = alice.session_assigned().await;
        let mut bob = TestClient::webtransport(
            &format!("https://127.0.0.1:{udp}/lobby/bob{shard}/{m}"),
            hash,
        )
        .await
        .expect("WebTransport connects");
        let bob_id = bob.session_assigned().await;
        let mut carol = ws(format!("carol{shard}"), m.clone()).await;
        let carol_id = carol.session_assigned().await;
        // Roster: everyone hears of the others.
        alice
            .recv_until(|w| is_joined(w, &format!("bob{shard}")))
            .await;
        alice
            .recv_until(|w| is_joined(w, &format!("carol{shard}")))
            .await;
        bob.recv_until(|w| is_joined(w, &format!("carol{shard}")))
            .await;
        carol
            .recv_until(|w| is_joined(w, &format!("alice{shard}")))
            .await;
        carol
            .recv_until(|w| is_joined(w, &format!("bob{shard}")))
            .await;
        meetings.push([(alice, alice_id), (bob, bob_id), (carol, carol_id)]);
    }
    // Media every way in both meetings: each participant's audio reaches the two others with
    // its sender's session; a video frame over WebTransport reaches both WebSocket clients.
    for (shard, clients) in meetings.iter_mut().enumerate() {
        for from in 0..3 {
            let tag = format!("audio {shard} {from}");
            clients[from].0.send(audio(&tag));
            for to in (0..3).filter(|&to| to != from) {
                let got = clients[to].0.recv_until(|w| is_audio(w, &tag)).await;
                assert_eq!(got.session_id, clients[from].1, "{tag} to {to}");
            }
        }
        let seq = 10 + shard as u32;
        clients[1].0.send(video(seq, true, 20_000));
        for to in [0, 2] {
            let got = clients[to]
                .0
                .recv_until(|w| video_seq(w) == Some(seq))
                .await;
            assert_eq!(got.session_id, clients[1].1);
        }
    }
    // Session ids are unique across the shards.
    let mut ids: Vec<u64> = meetings.iter().flatten().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);

    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(value(&text, "videocall_sessions"), 6.0);
    assert_eq!(value(&text, "videocall_meetings"), 2.0);
    assert_eq!(value(&text, "videocall_shard_sessions{shard=\"0\"}"), 3.0);
    assert_eq!(value(&text, "videocall_shard_sessions{shard=\"1\"}"), 3.0);
    // 3 audio + 1 video per meeting, at least (heartbeats may add to it), from both shards.
    assert!(value(&text, "videocall_packets_in_total") >= 8.0);
    assert_eq!(
        text.matches("# HELP videocall_packets_in_total ").count(),
        1
    );
    assert_eq!(
        text.matches("# TYPE videocall_dropped_packets_total ")
            .count(),
        1
    );
    let (status, body) = http_get(http, "/healthz");
    assert_eq!(status, 200, "{body}");

    // A host removes a guest through the API, in a meeting on each shard: the removal reaches
    // the meeting's shard, the guest's connection closes and the others see it leave.
    for shard in 0..2 {
        let m = meeting_on("hosted", shard);
        let (host_token, _, host_cookie) = token(http, "Host", &m, true);
        let (guest_token, guest_id, _) = token(http, "Guest", &m, false);
        let lobby = |token: &str| format!("ws://127.0.0.1:{http}/lobby?token={token}");
        let mut host = TestClient::websocket(&lobby(&host_token)).await.unwrap();
        let mut guest = TestClient::websocket(&lobby(&guest_token)).await.unwrap();
        // (Meetings made through the API are end-to-end encrypted: clear test audio would be
        // dropped, so the roster shows the guest is in.)
        host.recv_until(|w| is_joined(w, &guest_id)).await;
        let removed = api_call(
            http,
            "DELETE",
            &format!("/api/v1/meetings/{m}/participants/{guest_id}"),
            Some(&host_cookie),
            None,
        );
        assert!(removed.status < 300, "{} {}", removed.status, removed.json);
        let reason = guest.closed().await;
        assert!(reason.contains("removed"), "{reason}");
        host.recv_until(|w| is_left(w, &guest_id)).await;
    }
}

/// A MEETING PARTICIPANT_LEFT about `user`.
fn is_left(w: &videocall_types::PacketWrapper, user: &str) -> bool {
    use prost::Message;
    w.packet_type == videocall_types::PacketType::Meeting as i32
        && videocall_types::MeetingPacket::decode(w.data.clone()).is_ok_and(|m| {
            m.event_type == videocall_types::MeetingEventType::ParticipantLeft as i32
                && m.target_user_id == user.as_bytes()
        })
}
