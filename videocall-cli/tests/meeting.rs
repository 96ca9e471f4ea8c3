//! `videocall-cli meeting …` as real processes against a real node (actix-api with its SQLite
//! meeting store): a host creates a meeting with a waiting room, a guest waits, the host admits
//! and ends it; only hosts may; bad room tokens are refused before joining.

use std::collections::HashMap;
use std::process::{Command, Output};

use videocall_testkit::process::{binary, single_node};

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
