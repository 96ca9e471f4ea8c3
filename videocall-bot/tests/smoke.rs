//! The bot against a real single node: a 5-second run (1 s of joins, 4 s of media) delivers
//! frames over WebSocket and WebTransport (a check that it works, not a timing assertion).

use std::process::Command;

use videocall_testkit::process::single_node;

fn run_bot(http: u16, udp: u16, transport: &str, extra: &[&str]) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!(
        "bot-{}-{transport}-{}.json",
        std::process::id(),
        extra.len()
    ));
    let status = Command::new(env!("CARGO_BIN_EXE_videocall-bot"))
        .args(["--url", &format!("http://127.0.0.1:{http}")])
        .args(["--wt-url", &format!("https://127.0.0.1:{udp}")])
        .args(["--transport", transport, "--duration", "4s", "--ramp", "1s"])
        .args(["--publishers", "2", "--subscribers", "2"])
        .args(extra)
        .arg("--json")
        .arg(&json)
        .status()
        .expect("the bot runs");
    assert!(status.success(), "bot exited with {status}");
    let text = std::fs::read_to_string(&json).expect("the bot wrote its JSON report");
    std::fs::remove_file(&json).ok();
    serde_json::from_str(&text).expect("the report is JSON")
}

#[test]
fn a_short_run_delivers_frames_over_both_transports() {
    let (_node, http, udp) = single_node(&[]);
    for transport in ["ws", "wt"] {
        let report = run_bot(http, udp, transport, &[]);
        assert_eq!(report["joined"], 4, "{transport}: {report}");
        let delivered = report["delivered_frames"].as_u64().unwrap();
        let expected = report["expected_frames"].as_u64().unwrap();
        assert!(delivered > 0 && expected > 0, "{transport}: {report}");
        assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn muted_publishers_send_no_audio_and_a_throttled_subscriber_joins_beside_the_others() {
    let (_node, http, udp) = single_node(&[]);
    let report = run_bot(
        http,
        udp,
        "ws",
        &[
            "--unmuted",
            "1",
            "--throttled",
            "1",
            "--throttle-bytes-per-sec",
            "20000",
        ],
    );
    assert_eq!(report["unmuted"], 1, "{report}");
    assert_eq!(report["joined"], 4, "{report}");
    assert_eq!(report["throttled"]["joined"], 1, "{report}");
    assert!(
        report["throttled"]["packets"].as_u64().unwrap() > 0,
        "{report}"
    );
    // One publisher's audio (50/s) reaches the 3 others: well under what two would send.
    let audio = report["audio_expected_per_sec"].as_f64().unwrap();
    assert!(audio > 0.0 && audio < 200.0, "{report}");
    assert!(
        report["audio_delivered_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["delivered_frames"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn an_encrypted_run_delivers_frames_that_open() {
    let (_node, http, udp) = single_node(&[]);
    let report = run_bot(http, udp, "ws", &["--e2ee", "on"]);
    assert_eq!(report["e2ee"]["on"], true, "{report}");
    assert_eq!(report["joined"], 4, "{report}");
    // Delivered frames are counted after they opened: the payload header is inside.
    assert!(report["delivered_frames"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["e2ee"]["refused_in_clear"], 0, "{report}");
}
