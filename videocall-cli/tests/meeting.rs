//! `videocall-cli meeting …` as real processes against a real node (actix-api with its SQLite
//! meeting store): a host creates a meeting with a waiting room, a guest waits, the host admits
//! and ends it; only hosts may; bad room tokens are refused before joining. A headless device
//! runs a protected meeting end to end: create, stream and receive with the room tokens the API
//! returned, end (both leave at once).

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use videocall_testkit::PATIENCE;
use videocall_testkit::process::{Service, binary, certificate_hash, single_node};

/// Runs `videocall-cli meeting <args>` against the node on `http`.
fn meeting(http: u16, args: &[&str]) -> Output {
    Command::new(binary("videocall-cli"))
        .arg("meeting")
        .args(["--api-url", &format!("http://127.0.0.1:{http}")])
        .args(args)
        .env_remove("VIDEOCALL_SESSION")
        .output()
        .expect("videocall-cli runs")
}

/// The `key=value` lines of a successful run.
fn values(output: &Output) -> HashMap<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {stdout} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "it should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_host_creates_admits_a_waiting_guest_and_ends_the_meeting() {
    let (_node, http, _udp) = single_node(&[]);
    let created = values(&meeting(
        http,
        &["--name", "Pi", "create", "--waiting-room"],
    ));
    let (host, id) = (&created["session"], &created["meeting_id"]);
    assert_eq!(created["status"], "admitted", "the owner joins as host");
    assert_eq!(created["token"].split('.').count(), 3, "a JWT");

    let asked = values(&meeting(
        http,
        &["--name", "Ada", "join", "--meeting-id", id],
    ));
    assert_eq!(asked["status"], "waiting");
    let (guest, guest_id) = (&asked["session"], &asked["user_id"]);
    let waiting = values(&meeting(
        http,
        &["--session", host, "waiting", "--meeting-id", id],
    ));
    assert_eq!(waiting.get("waiting"), Some(guest_id));

    // Only a host may admit or end.
    let refused = failure(&meeting(
        http,
        &["--session", guest, "end", "--meeting-id", id],
    ));
    assert!(refused.contains("forbidden"), "{refused}");

    let admitted = values(&meeting(
        http,
        &[
            "--session",
            host,
            "admit",
            "--meeting-id",
            id,
            "--user",
            guest_id,
        ],
    ));
    assert_eq!(admitted.get("admitted"), Some(guest_id));
    let joined = values(&meeting(
        http,
        &["--session", guest, "join", "--meeting-id", id],
    ));
    assert_eq!(joined["status"], "admitted");
    assert_eq!(joined["token"].split('.').count(), 3);

    let ended = values(&meeting(
        http,
        &["--session", host, "end", "--meeting-id", id],
    ));
    assert_eq!(ended.get("ended"), Some(id));
    let after = failure(&meeting(
        http,
        &["--session", guest, "join", "--meeting-id", id],
    ));
    assert!(after.contains("meeting_ended"), "{after}");
}

#[test]
fn an_unreachable_api_and_a_malformed_token_are_clear_errors() {
    let port = videocall_testkit::free_tcp_port();
    let error = failure(&meeting(port, &["create"]));
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    let output = Command::new(binary("videocall-cli"))
        .args([
            "stream",
            "--user-id",
            "pi",
            "--meeting-id",
            "m",
            "--test-pattern",
        ])
        .args(["--token", "not a token"])
        .output()
        .expect("videocall-cli runs");
    let error = failure(&output);
    assert!(error.contains("a room token is a JWT"), "{error}");
}

/// Reads lines until one satisfies `want` (panics after `PATIENCE`).
fn line_until(lines: &mpsc::Receiver<String>, what: &str, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return,
            Ok(_) => {}
            Err(e) => panic!("no line {what}: {e}"),
        }
    }
}

#[test]
fn a_headless_device_runs_a_protected_meeting_with_the_tokens_the_api_returns() {
    let (_node, http, udp) = single_node(&[]);
    let created = values(&meeting(http, &["--name", "Pi", "create"]));
    let (host, id, pi) = (
        &created["session"],
        &created["meeting_id"],
        &created["user_id"],
    );
    let viewer = values(&meeting(
        http,
        &["--name", "Screen", "join", "--meeting-id", id],
    ));
    assert_eq!(viewer["status"], "admitted");

    let out = std::env::temp_dir().join(format!("videocall-cli-protected-{}", std::process::id()));
    // Without a token the protected meeting stays shut to the CLI.
    let refused = Command::new(binary("videocall-cli"))
        .args([
            "receive",
            "--print-frames",
            "--user-id",
            "lurker",
            "--meeting-id",
            id,
            "--out",
        ])
        .arg(&out)
        .args(["--transport", "websocket", "--websocket-url"])
        .arg(format!("http://127.0.0.1:{http}"))
        .output()
        .expect("videocall-cli runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The viewer receives over WebSocket, the device streams over WebTransport, each with the
    // room token its join returned (no --user-id / --meeting-id).
    let ws_url = format!("http://127.0.0.1:{http}");
    let receiver = Service::start(
        &binary("videocall-cli"),
        &[
            "receive",
            "--token",
            &viewer["token"],
            "--transport",
            "websocket",
            "--websocket-url",
            &ws_url,
            "--print-frames",
            "--out",
            &out.display().to_string(),
        ]
        .map(String::from),
        &[],
        "joined meeting",
    );
    let hash: String = certificate_hash(http)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut streamer = Service::start(
        &binary("videocall-cli"),
        &[
            "stream",
            "--token",
            &created["token"],
            "--transport",
            "webtransport",
            "--url",
            &format!("https://127.0.0.1:{udp}"),
            "--cert-hash",
            &hash,
            "--websocket-url",
            &ws_url,
            "--test-pattern",
            "--resolution",
            "320x240",
            "--fps",
            "15",
        ]
        .map(String::from),
        &[],
        "joined meeting",
    );
    line_until(&receiver.stdout, "a frame from the device", |l| {
        l.starts_with(&format!("frame {pi} "))
    });

    // The host ends the meeting from the CLI: streamer and receiver are closed at once.
    let mut receiver = receiver;
    let asked = Instant::now();
    let ended = values(&meeting(
        http,
        &["--session", host, "end", "--meeting-id", id],
    ));
    assert_eq!(ended.get("ended"), Some(id));
    for (name, process) in [("streamer", &mut streamer), ("receiver", &mut receiver)] {
        let status = process
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("the {name} is still running after the end"));
        assert!(
            !status.success(),
            "the {name} says the meeting ended: {status:?}"
        );
    }
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "ending took {took:?}");
    let _ = std::fs::remove_dir_all(out);
}
