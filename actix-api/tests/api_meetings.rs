//! The meeting API over a real store, each body on PostgreSQL and on SQLite: the lifecycle,
//! the waiting room, host checks, room tokens, the participant cap under concurrency.

mod api_support;

use actix_web::http::Method;
use api_support::{Kind, api, guest, send, service};
use serde_json::json;
use videocall_auth::TokenKey;

on_both_backends!(
    a_meeting_goes_from_creation_through_joins_to_its_end,
    a_waiting_joiner_gets_in_only_when_a_host_admits_them,
    an_attendee_cannot_act_as_host,
    a_hundred_concurrent_joins_to_a_meeting_of_fifty_admit_exactly_fifty,
);

async fn a_meeting_goes_from_creation_through_joins_to_its_end(kind: Kind) {
    let (api, relay, _db) = api(kind).await;
    let app = service(api).await;
    let (host, host_id) = guest(&app, "Ada").await;
    let me = send(&app, Method::GET, "/api/v1/me", Some(&host), None).await;
    assert_eq!(
        (me.status, me.json["display_name"].as_str()),
        (200, Some("Ada"))
    );

    let created = send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"id": "standup", "max_participants": 5})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json["meeting"]["owner_id"], host_id.as_str());
    assert_eq!(created.json["meeting"]["access"], "protected");
    assert_eq!(created.json["e2ee"], true);
    let got = send(&app, Method::GET, "/api/v1/meetings/standup", None, None).await;
    assert_eq!(
        (got.status, &got.json["meeting"]["state"]),
        (200, &json!("idle"))
    );
    let patched = send(
        &app,
        Method::PATCH,
        "/api/v1/meetings/standup",
        Some(&host),
        Some(json!({"e2ee_required": false, "max_participants": 3})),
    )
    .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["e2ee"], false);
    assert_eq!(patched.json["meeting"]["max_participants"], 3);

    let keys = TokenKey::new(api_support::SECRET).unwrap();
    let joined = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/join",
        Some(&host),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (joined.status, &joined.json["status"]),
        (200, &json!("admitted"))
    );
    let token = keys
        .verify(joined.json["token"].as_str().unwrap(), Some("standup"))
        .expect("the room token verifies for its meeting");
    assert_eq!(token.user.as_str(), host_id);
    assert!(token.grants.host && token.grants.publish);
    assert!(token.claims.is_guest);
    assert!(
        token.claims.e2ee == Some(false),
        "the token carries the meeting's E2EE setting (patched to clear above), signed"
    );
    assert!(
        keys.verify(joined.json["token"].as_str().unwrap(), Some("other"))
            .is_err(),
        "a token opens its own meeting only"
    );

    let encrypted = send(
        &app,
        Method::PATCH,
        "/api/v1/meetings/standup",
        Some(&host),
        Some(json!({"e2ee_required": true})),
    )
    .await;
    assert_eq!(encrypted.status, 200, "{encrypted:?}");
    let (viewer, viewer_id) = guest(&app, "Vic").await;
    let watching = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/join",
        Some(&viewer),
        Some(json!({"observer": true, "display_name": "Vic (watching)"})),
    )
    .await;
    assert_eq!(watching.status, 200, "{watching:?}");
    let token = keys
        .verify(watching.json["token"].as_str().unwrap(), Some("standup"))
        .unwrap();
    assert!(!token.grants.publish && token.grants.subscribe && !token.grants.host);
    assert_eq!(token.claims.display_name, "Vic (watching)");
    assert!(
        token.claims.e2ee == Some(true),
        "tokens issued after the change say encrypted"
    );

    let list = send(
        &app,
        Method::GET,
        "/api/v1/meetings/standup/participants",
        Some(&viewer),
        None,
    )
    .await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(2), "{list:?}");
    let mute = format!("/api/v1/meetings/standup/participants/{viewer_id}/mute");
    assert_eq!(
        send(&app, Method::POST, &mute, Some(&host), None)
            .await
            .status,
        202
    );
    let remove = format!("/api/v1/meetings/standup/participants/{viewer_id}");
    let removed = send(&app, Method::DELETE, &remove, Some(&host), None).await;
    assert_eq!(
        (removed.status, &removed.json["status"]),
        (200, &json!("rejected"))
    );
    let back = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/join",
        Some(&viewer),
        Some(json!({})),
    )
    .await;
    assert_eq!((back.status, back.code()), (403, "rejected"));

    let left = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/leave",
        Some(&host),
        None,
    )
    .await;
    assert_eq!((left.status, &left.json["status"]), (200, &json!("left")));
    let ended = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/end",
        Some(&host),
        None,
    )
    .await;
    assert_eq!(
        (ended.status, &ended.json["meeting"]["state"]),
        (200, &json!("ended"))
    );
    let late = send(
        &app,
        Method::POST,
        "/api/v1/meetings/standup/join",
        Some(&host),
        Some(json!({})),
    )
    .await;
    assert_eq!((late.status, late.code()), (410, "meeting_ended"));
    assert_eq!(
        relay.calls(),
        [
            format!("mute standup {viewer_id}"),
            format!("remove standup {viewer_id}"),
            "end standup".to_owned()
        ]
    );

    let out = send(&app, Method::POST, "/api/v1/logout", Some(&host), None).await;
    assert_eq!(out.status, 204);
    let me = send(&app, Method::GET, "/api/v1/me", Some(&host), None).await;
    assert_eq!(
        (me.status, me.code()),
        (401, "login_required"),
        "logout ends the session"
    );
}

async fn a_waiting_joiner_gets_in_only_when_a_host_admits_them(kind: Kind) {
    let (api, _relay, _db) = api(kind).await;
    let app = service(api).await;
    let (host, _) = guest(&app, "Host").await;
    let created = send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"waiting_room": true})),
    )
    .await;
    let id = created.json["meeting_id"].as_str().unwrap().to_owned();
    let join = format!("/api/v1/meetings/{id}/join");
    let (a, a_id) = guest(&app, "A").await;
    let (b, b_id) = guest(&app, "B").await;
    let (c, _) = guest(&app, "C").await;
    for who in [&a, &b, &c] {
        let r = send(&app, Method::POST, &join, Some(who), Some(json!({}))).await;
        assert_eq!(
            (r.status, &r.json["status"]),
            (202, &json!("waiting")),
            "{r:?}"
        );
        assert!(r.json.get("token").is_none(), "no token while waiting");
    }
    let waiting = send(
        &app,
        Method::GET,
        &format!("/api/v1/meetings/{id}/waiting"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(waiting.json.as_array().map(Vec::len), Some(3));

    let admit = format!("/api/v1/meetings/{id}/waiting/{a_id}/admit");
    assert_eq!(
        send(&app, Method::POST, &admit, Some(&host), None)
            .await
            .status,
        200
    );
    let r = send(&app, Method::POST, &join, Some(&a), Some(json!({}))).await;
    assert_eq!((r.status, &r.json["status"]), (200, &json!("admitted")));

    let reject = format!("/api/v1/meetings/{id}/waiting/{b_id}/reject");
    assert_eq!(
        send(&app, Method::POST, &reject, Some(&host), None)
            .await
            .status,
        200
    );
    let r = send(&app, Method::POST, &join, Some(&b), Some(json!({}))).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "rejected"),
        "a rejected joiner stays out"
    );

    let all = send(
        &app,
        Method::POST,
        &format!("/api/v1/meetings/{id}/waiting/admit_all"),
        Some(&host),
        None,
    )
    .await;
    assert_eq!(
        all.json["admitted"].as_array().map(Vec::len),
        Some(1),
        "{all:?}"
    );
    assert_eq!(all.json["still_waiting"], 0);
    let r = send(&app, Method::POST, &join, Some(&c), Some(json!({}))).await;
    assert_eq!(r.status, 200);
}

async fn an_attendee_cannot_act_as_host(kind: Kind) {
    let (api, relay, _db) = api(kind).await;
    let app = service(api).await;
    let (host, host_id) = guest(&app, "Host").await;
    let (attendee, _) = guest(&app, "Att").await;
    let (waiter, waiter_id) = guest(&app, "Wai").await;
    send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"id": "m1"})),
    )
    .await;
    send(
        &app,
        Method::POST,
        "/api/v1/meetings/m1/join",
        Some(&attendee),
        Some(json!({})),
    )
    .await;
    send(
        &app,
        Method::PATCH,
        "/api/v1/meetings/m1",
        Some(&host),
        Some(json!({"waiting_room": true})),
    )
    .await;
    let w = send(
        &app,
        Method::POST,
        "/api/v1/meetings/m1/join",
        Some(&waiter),
        Some(json!({})),
    )
    .await;
    assert_eq!(w.status, 202);
    for (method, path, body) in [
        (
            Method::PATCH,
            "/api/v1/meetings/m1".to_owned(),
            Some(json!({"waiting_room": false})),
        ),
        (Method::POST, "/api/v1/meetings/m1/end".to_owned(), None),
        (Method::GET, "/api/v1/meetings/m1/waiting".to_owned(), None),
        (
            Method::POST,
            format!("/api/v1/meetings/m1/waiting/{waiter_id}/admit"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/m1/waiting/{waiter_id}/reject"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/meetings/m1/waiting/admit_all".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/meetings/m1/participants/{host_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/meetings/m1/participants/{host_id}/mute"),
            None,
        ),
    ] {
        let r = send(&app, method.clone(), &path, Some(&attendee), body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden"),
            "{method} {path}: {r:?}"
        );
        let anonymous = send(&app, method.clone(), &path, None, body).await;
        assert_eq!(
            (anonymous.status, anonymous.code()),
            (401, "login_required"),
            "{method} {path}"
        );
    }
    assert!(relay.calls().is_empty(), "nothing reached the relays");
    let still = send(&app, Method::GET, "/api/v1/meetings/m1", None, None).await;
    assert_eq!(still.json["meeting"]["state"], "active");
}

async fn a_hundred_concurrent_joins_to_a_meeting_of_fifty_admit_exactly_fifty(kind: Kind) {
    let (api, _relay, _db) = api(kind).await;
    let metrics = api.metrics.clone();
    let app = service(api).await;
    let (host, _) = guest(&app, "Host").await;
    let created = send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"id": "crowd", "max_participants": 50})),
    )
    .await;
    assert_eq!(created.status, 201);
    let mut cookies = Vec::new();
    for i in 0..100 {
        cookies.push(guest(&app, &format!("joiner {i}")).await.0);
    }
    let joins = cookies.iter().map(|cookie| {
        send(
            &app,
            Method::POST,
            "/api/v1/meetings/crowd/join",
            Some(cookie),
            Some(json!({})),
        )
    });
    let replies = futures_util::future::join_all(joins).await;
    let admitted = replies.iter().filter(|r| r.status == 200).count();
    let full = replies
        .iter()
        .filter(|r| (r.status, r.code()) == (409, "meeting_full"))
        .count();
    assert_eq!((admitted, full), (50, 50));
    let list = send(
        &app,
        Method::GET,
        "/api/v1/meetings/crowd/participants",
        Some(&host),
        None,
    )
    .await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(50));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(metrics.joins_admitted.load(Relaxed), 50);
    assert_eq!(metrics.joins_full.load(Relaxed), 50);
}
