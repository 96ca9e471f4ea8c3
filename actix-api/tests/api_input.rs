//! Hostile input to the meeting API gets a 4xx JSON error with a code, never a 500 (on
//! PostgreSQL and on SQLite); the OpenAPI file describes every route; unknown API paths and
//! methods are JSON errors too; a wrong database stops a relay at start-up with one clear error.

mod api_support;

use std::collections::BTreeSet;

use actix_web::http::Method;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::TestRequest;
use api_support::{Kind, api, call, guest, send, service};
use serde_json::json;

on_both_backends!(hostile_input_gets_a_json_error_with_a_code_and_never_a_500);

async fn hostile_input_gets_a_json_error_with_a_code_and_never_a_500(kind: Kind) {
    let (api, _relay, _db) = api(kind).await;
    let app = service(api).await;
    let (host, _) = guest(&app, "Host").await;
    let created = send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"id": "safe"})),
    )
    .await;
    assert_eq!(created.status, 201);

    // Ids that are not ids: SQL, Unicode, too long, path tricks.
    let drop_table = "%27%3B%20DROP%20TABLE%20meetings%3B--";
    for (path, code) in [
        (
            format!("/api/v1/meetings/{drop_table}"),
            "invalid_meeting_id",
        ),
        (
            "/api/v1/meetings/%E4%BC%9A%E8%AD%B0".to_owned(),
            "invalid_meeting_id",
        ),
        (
            format!("/api/v1/meetings/{}", "a".repeat(65)),
            "invalid_meeting_id",
        ),
        ("/api/v1/meetings/%00".to_owned(), "invalid_meeting_id"),
    ] {
        let r = send(&app, Method::GET, &path, None, None).await;
        assert_eq!((r.status, r.code()), (400, code), "{path}: {r:?}");
    }
    let r = send(
        &app,
        Method::POST,
        "/api/v1/meetings",
        Some(&host),
        Some(json!({"id": "'; DROP TABLE meetings;--"})),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_meeting_id"));
    let r = send(
        &app,
        Method::POST,
        "/api/v1/meetings/safe/waiting/%07bell/admit",
        Some(&host),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_user_id"), "{r:?}");
    // A user id that is SQL is only an id that nobody has.
    let r = send(
        &app,
        Method::POST,
        "/api/v1/meetings/safe/waiting/x%27%20OR%20%271%27%3D%271/admit",
        Some(&host),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{r:?}");

    // Bodies: too large, not JSON, wrong type, missing or unknown fields, out of range.
    let huge = TestRequest::post()
        .uri("/api/v1/login/guest")
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload(vec![b' '; 10 << 20]);
    let r = call(&app, huge).await;
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    let text = TestRequest::post()
        .uri("/api/v1/login/guest")
        .insert_header((CONTENT_TYPE, "text/plain"))
        .set_payload("display_name=x");
    let r = call(&app, text).await;
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
    let broken = TestRequest::post()
        .uri("/api/v1/login/guest")
        .insert_header((CONTENT_TYPE, "application/json"))
        .set_payload("{\"display_name\": ");
    let r = call(&app, broken).await;
    assert_eq!((r.status, r.code()), (400, "invalid_json"));
    for (path, body, code) in [
        ("/api/v1/login/guest", json!({}), "invalid_json"),
        (
            "/api/v1/login/guest",
            json!({"display_name": 42}),
            "invalid_json",
        ),
        (
            "/api/v1/login/guest",
            json!({"display_name": ""}),
            "invalid_input",
        ),
        (
            "/api/v1/login/guest",
            json!({"display_name": "x".repeat(5000)}),
            "invalid_input",
        ),
        (
            "/api/v1/login/guest",
            json!({"display_name": "a\u{0}b"}),
            "invalid_input",
        ),
        (
            "/api/v1/login/guest",
            json!({"display_name": "x", "admin": true}),
            "invalid_json",
        ),
        (
            "/api/v1/meetings",
            json!({"max_participants": 0}),
            "invalid_input",
        ),
        (
            "/api/v1/meetings",
            json!({"max_participants": 1_000_000_000_000_i64}),
            "invalid_input",
        ),
        (
            "/api/v1/meetings",
            json!({"max_participants": "ten"}),
            "invalid_json",
        ),
        (
            "/api/v1/meetings",
            json!({"access": "everyone"}),
            "invalid_json",
        ),
        ("/api/v1/meetings", json!([1, 2, 3]), "invalid_json"),
        (
            "/api/v1/meetings/safe/join",
            json!({"observer": "yes"}),
            "invalid_json",
        ),
    ] {
        let r = send(&app, Method::POST, path, Some(&host), Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (400, code), "{path} {body}: {r:?}");
        assert!(r.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = send(
        &app,
        Method::POST,
        "/api/v1/meetings/safe/join",
        Some(&host),
        None,
    )
    .await;
    assert!(
        r.status == 400 || r.status == 415,
        "a join needs a JSON body: {r:?}"
    );

    // Cookies that are not ours.
    for cookie in ["", "garbage", "a.b.c", &"x".repeat(10_000)] {
        let r = send(&app, Method::GET, "/api/v1/me", Some(cookie), None).await;
        assert_eq!((r.status, r.code()), (401, "login_required"));
    }
    // A room token is not a login cookie.
    let joined = send(
        &app,
        Method::POST,
        "/api/v1/meetings/safe/join",
        Some(&host),
        Some(json!({})),
    )
    .await;
    let token = joined.json["token"].as_str().unwrap().to_owned();
    let r = send(&app, Method::GET, "/api/v1/me", Some(&token), None).await;
    assert_eq!(r.status, 401);

    // The table is still there and the meeting intact.
    let r = send(&app, Method::GET, "/api/v1/meetings/safe", None, None).await;
    assert_eq!(
        (r.status, &r.json["meeting"]["state"]),
        (200, &json!("active"))
    );
}

#[test]
fn the_openapi_file_describes_every_route_and_only_those() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml"))
            .expect("docs/openapi.yaml exists");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("openapi.yaml is YAML");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut described = BTreeSet::new();
    let paths = doc["paths"].as_mapping().expect("paths is a map");
    for (path, item) in paths {
        let path = path.as_str().expect("paths are text");
        for (method, _) in item.as_mapping().expect("a path item is a map") {
            let method = method.as_str().unwrap();
            if method != "parameters" {
                described.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    let served: BTreeSet<(String, String)> = actix_api::api::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    assert!(served.len() >= 18, "{served:?}");
    let undocumented: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi.yaml but not served: {unserved:?}"
    );
}

#[test]
fn an_unreachable_or_wrong_database_stops_the_start_with_one_clear_error() {
    let port = videocall_testkit::free_tcp_port();
    let unreachable = format!("postgres://app:hunter2@127.0.0.1:{port}/meet");
    let shown = format!("postgres://app:***@127.0.0.1:{port}/meet");
    for (bin, url, expected) in [
        (
            "actix-api",
            unreachable.clone(),
            format!("cannot open the meeting database {shown}"),
        ),
        (
            // The standalone WebTransport relay opens the same store (DATABASE_URL).
            "webtransport-server",
            unreachable.clone(),
            format!("cannot open the meeting database {shown}"),
        ),
        (
            "actix-api",
            "mysql://app:hunter2@127.0.0.1/meet".to_owned(),
            "is not supported: use postgres://… or sqlite://path".to_owned(),
        ),
        (
            "actix-api",
            "sqlite:///proc/no-such-dir/meetings.db?mode=rwc".to_owned(),
            "cannot create its directory".to_owned(),
        ),
    ] {
        let out = std::process::Command::new(videocall_testkit::process::binary(bin))
            .args(if bin == "actix-api" {
                vec![
                    "--listen".to_owned(),
                    format!("127.0.0.1:{}", videocall_testkit::free_tcp_port()),
                ]
            } else {
                vec![
                    "--health-listen".to_owned(),
                    format!("127.0.0.1:{}", videocall_testkit::free_tcp_port()),
                    "--webtransport-listen".to_owned(),
                    format!("127.0.0.1:{}", videocall_testkit::free_udp_port()),
                ]
            })
            .env("DATABASE_URL", &url)
            .env("JWT_SECRET", "0123456789abcdef0123")
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} {url}: {stderr}");
        assert!(stderr.contains(&expected), "{bin} {url}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{bin} {url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bin} {url}: {stderr}");
    }
}

/// One request to a real node: status, content type, JSON body (Null when not JSON).
fn http(port: u16, method: &str, path: &str) -> (u16, String, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/json")
        .body("{}".to_owned())
        .expect("a valid request");
    let mut response = agent.run(request).expect("the node answers");
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (response.status().as_u16(), kind, json)
}

#[test]
fn unknown_api_paths_and_methods_get_a_json_error_on_a_real_node() {
    let (_node, port, _udp) = videocall_testkit::process::single_node(&[]);
    for (method, path, status, code) in [
        ("GET", "/api/v1/nope", 404, "no_such_route"),
        (
            "POST",
            "/api/v1/meetings/m1/join/extra",
            404,
            "no_such_route",
        ),
        ("GET", "/api/v1", 404, "no_such_route"),
        ("PUT", "/api/v1/meetings", 405, "method_not_allowed"),
        ("DELETE", "/api/v1/meetings/m1", 405, "method_not_allowed"),
        ("GET", "/api/v1/meetings/m1/join", 405, "method_not_allowed"),
    ] {
        let (got, kind, json) = http(port, method, path);
        assert_eq!(
            (got, json["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {kind} {json}"
        );
        assert!(
            kind.starts_with("application/json"),
            "{method} {path}: {kind}"
        );
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The node's own /api/v1 routes still answer.
    let (got, _, json) = http(port, "GET", "/api/v1/config");
    assert_eq!(got, 200, "{json}");
    let (got, _, json) = http(port, "GET", "/api/v1/meetings/m1");
    assert_eq!((got, &json["meeting_id"]), (200, &json!("m1")));
}
