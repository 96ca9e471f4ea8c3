//! `videocall-cli` as a real process against a real single node (actix-api --webtransport):
//! stream → node → receive over both transports, keyframe requests, a server restart, bad input.

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Via, cli, connect_args, line_until, node_on, number_after, out_dir, single_node};
use prost::Message;
use videocall_cli::{pattern, y4m};
use videocall_testkit::client::TestClient;
use videocall_testkit::process::binary;
use videocall_testkit::{PATIENCE, free_tcp_port, free_udp_port};
use videocall_types::{MediaPacket, MediaType, PacketType, PacketWrapper};

const FRAMES: u64 = 150;

/// Streams 5 s of the test pattern at 320x240 and checks what the receiver recorded.
fn streamed_pattern_is_received_intact(via: Via) {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir(&format!("{via:?}"));
    let mut receiver_args = connect_args(via, http, udp, "rec", &meeting);
    receiver_args.extend([
        "--out".into(),
        out.display().to_string(),
        "--print-frames".into(),
    ]);
    let mut receiver = cli("receive", receiver_args);
    let mut streamer_args = connect_args(via, http, udp, "pi", &meeting);
    streamer_args.extend(
        [
            "--test-pattern",
            "--resolution",
            "320x240",
            "--fps",
            "30",
            "--frames",
            &FRAMES.to_string(),
        ]
        .map(String::from),
    );
    let mut streamer = cli("stream", streamer_args);

    let status = streamer
        .wait_exit(Duration::from_secs(20))
        .expect("the streamer stops after --frames");
    assert!(status.success(), "streamer exit {status:?}");
    let sent_line = line_until(&streamer.stdout, "sent", |l| l.starts_with("sent "));
    let sent = number_after(&sent_line, "sent ");
    assert!(sent >= FRAMES * 9 / 10, "{sent_line}");
    // The last frame (sequences number sent frames without gaps), or the streamer's leave if
    // the last frame was lost.
    line_until(&receiver.stdout, "with the last frame or leave", |l| {
        l.starts_with(&format!("frame pi {} ", sent - 1)) || l.starts_with("left pi")
    });
    receiver.terminate();
    let status = receiver
        .wait_exit(PATIENCE)
        .expect("the receiver exits on SIGTERM");
    assert!(status.success(), "receiver exit {status:?}");
    let summary = line_until(&receiver.stdout, "with the count", |l| {
        l.starts_with("received from pi:")
    });
    let received = number_after(&summary, "received from pi: ");
    assert!(
        received * 10 >= sent * 9,
        "{via:?}: decoded {received} of {sent} frames"
    );

    let pictures = y4m::read_all(&out.join("pi.y4m")).expect("a readable pi.y4m");
    assert_eq!(pictures.len() as u64, received);
    let mut worst = f64::INFINITY;
    let mut counters = std::collections::HashSet::new();
    for picture in &pictures {
        let counter = pattern::read_counter(picture.y(), picture.width).expect("a counter");
        assert!(counter < FRAMES, "counter {counter} was never sent");
        counters.insert(counter);
        let reference = pattern::frame(320, 240, counter).expect("valid size");
        worst = worst.min(pattern::psnr(reference.y(), picture.y()));
    }
    assert_eq!(
        counters.len(),
        pictures.len(),
        "every picture is a distinct frame"
    );
    assert!(worst > 30.0, "{via:?}: worst PSNR {worst:.1} dB");
    eprintln!("{via:?}: {received}/{sent} frames decoded, worst PSNR {worst:.1} dB");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn streamed_test_pattern_is_decoded_intact_over_webtransport() {
    streamed_pattern_is_received_intact(Via::WebTransport);
}

#[test]
fn streamed_test_pattern_is_decoded_intact_over_websocket() {
    streamed_pattern_is_received_intact(Via::WebSocket);
}

/// Where a video frame is in its stream: the sealed frame counter (E2EE, the default) or the
/// sequence of a frame in clear.
fn position(media: &MediaPacket) -> u64 {
    match &media.sealed {
        Some(sealed) => sealed.counter,
        None => media
            .video_metadata
            .map(|m| m.sequence)
            .expect("video metadata"),
    }
}

fn video_from(wrapper: &PacketWrapper, user: &str) -> Option<MediaPacket> {
    if wrapper.packet_type != PacketType::Media as i32 || wrapper.user_id != user.as_bytes() {
        return None;
    }
    MediaPacket::decode(wrapper.data.clone())
        .ok()
        .filter(|m| m.media_type == MediaType::Video as i32)
}

#[tokio::test]
async fn keyframe_request_produces_an_idr_within_200_ms() {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let mut streamer_args = connect_args(Via::WebSocket, http, udp, "pi", &meeting);
    streamer_args.extend(
        [
            "--test-pattern",
            "--resolution",
            "640x480",
            "--keyframe-interval",
            "0",
        ]
        .map(String::from),
    );
    let _streamer = cli("stream", streamer_args);
    let mut viewer = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/kf/{meeting}"))
        .await
        .expect("WebSocket connects");
    let is_key = |w: &PacketWrapper| video_from(w, "pi").is_some_and(|m| m.frame_type == "key");
    for round in 0..3 {
        // A run of deltas first, and no keyframe kept from before (the stream's first one):
        // the next keyframe can only be the answer. 20 frames (0.67 s) also keep the requests
        // under the relay's limit of 2 per second.
        let mut last_delta = 0;
        for _ in 0..20 {
            let delta = viewer
                .recv_until(|w| video_from(w, "pi").is_some_and(|m| m.frame_type == "delta"))
                .await;
            let sequence = video_from(&delta, "pi").map(|m| position(&m));
            last_delta = last_delta.max(sequence.expect("a video frame"));
        }
        while viewer
            .try_recv_until(Duration::ZERO, is_key)
            .await
            .is_some()
        {}
        let request = MediaPacket {
            media_type: MediaType::KeyframeRequest as i32,
            user_id: "pi".into(),
            ..Default::default()
        };
        let wrapper = PacketWrapper {
            packet_type: PacketType::Media as i32,
            data: request.encode_to_vec().into(),
            ..Default::default()
        };
        let asked = Instant::now();
        viewer.send(wrapper.encode_to_vec().into());
        let key = viewer.recv_until(is_key).await;
        let took = asked.elapsed();
        let sequence = video_from(&key, "pi")
            .map(|m| position(&m))
            .expect("a video frame");
        assert!(
            sequence > last_delta,
            "round {round}: a keyframe from before"
        );
        eprintln!("round {round}: keyframe after {took:?}");
        assert!(took < Duration::from_millis(200), "round {round}: {took:?}");
    }
}

#[test]
fn streamer_and_receiver_reconnect_after_the_server_restarts() {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let node = node_on(http, udp);
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("restart");
    // The restarted node has a new certificate: the receiver uses WebTransport without
    // verification, the streamer WebSocket.
    let mut receiver_args = vec![
        "--user-id".into(),
        "rec".into(),
        "--meeting-id".into(),
        meeting.clone(),
        "--url".into(),
        format!("https://127.0.0.1:{udp}"),
        "--websocket-url".into(),
        format!("http://127.0.0.1:{http}"),
        "--insecure".into(),
    ];
    receiver_args.extend([
        "--out".into(),
        out.display().to_string(),
        "--print-frames".into(),
    ]);
    let receiver = cli("receive", receiver_args);
    let mut streamer_args = connect_args(Via::WebSocket, http, udp, "pi", &meeting);
    streamer_args.extend(["--test-pattern", "--resolution", "320x240"].map(String::from));
    let streamer = cli("stream", streamer_args);
    line_until(&receiver.stdout, "with a first frame", |l| {
        l.starts_with("frame pi ")
    });

    drop(node);
    let _node = node_on(http, udp);
    line_until(&streamer.stdout, "saying the streamer reconnected", |l| {
        l.starts_with("reconnected as session")
    });
    line_until(&receiver.stdout, "saying the receiver reconnected", |l| {
        l.starts_with("reconnected as session")
    });
    let first = line_until(&receiver.stdout, "with a frame after the restart", |l| {
        l.starts_with("frame pi ")
    });
    let later = line_until(&receiver.stdout, "with more frames", |l| {
        l.starts_with("frame pi ") && l != first
    });
    assert_ne!(first, later);
    // Ctrl-C (here SIGTERM) leaves cleanly: exit 0 and a summary.
    for (name, mut process) in [("streamer", streamer), ("receiver", receiver)] {
        process.terminate();
        let status = process.wait_exit(PATIENCE).expect("exits on SIGTERM");
        assert!(status.success(), "{name}: {status:?}");
    }
    let _ = std::fs::remove_dir_all(out);
}

/// Runs the CLI to completion (killed after 15 s): (exit success, stderr, elapsed).
fn run_to_end(args: &[String]) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary("videocall-cli"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("videocall-cli starts");
    let deadline = started + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("videocall-cli {args:?} did not exit within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("stderr readable");
    (status.success(), stderr, started.elapsed())
}

fn assert_one_clear_error(args: Vec<String>, expected: &str) {
    let (success, stderr, took) = run_to_end(&args);
    assert!(!success, "{args:?} succeeded");
    assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(expected), "{stderr}");
}

/// This machine has no sound card (and may lack arecord): either way, one line naming the
/// device, before joining (no node is needed).
#[test]
fn a_missing_audio_device_is_one_clear_error() {
    let args = [
        "stream",
        "--test-pattern",
        "--user-id",
        "pi",
        "--meeting-id",
        "m1",
        "--audio-device",
        "hw:7,0",
    ]
    .map(String::from)
    .to_vec();
    assert_one_clear_error(args, "--audio-device hw:7,0: ");
}

#[test]
fn unreachable_server_is_one_clear_error_within_10_s() {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let mut args = vec!["stream".to_owned(), "--test-pattern".to_owned()];
    args.extend([
        "--user-id".into(),
        "pi".into(),
        "--meeting-id".into(),
        "m1".into(),
        "--url".into(),
        format!("https://127.0.0.1:{udp}"),
        "--websocket-url".into(),
        format!("http://127.0.0.1:{http}"),
        "--insecure".into(),
    ]);
    assert_one_clear_error(args, "cannot join meeting m1");
}

#[test]
fn wrong_certificate_hash_is_one_clear_error_without_fallback() {
    let (_node, http, udp) = single_node();
    let mut args = vec!["stream".to_owned(), "--test-pattern".to_owned()];
    args.extend(connect_args(Via::WebTransport, http, udp, "pi", "m1"));
    let at = args
        .iter()
        .position(|a| a == "--cert-hash")
        .expect("flag present");
    args[at + 1] = "00".repeat(32);
    assert_one_clear_error(args, "certificate");
}

/// A peer that sends a (3-byte, not decodable) keyframe of `codec` in clear, as an original
/// videocall-rs browser would.
async fn send_keyframe(http: u16, meeting: &str, codec: videocall_types::VideoCodec) -> TestClient {
    let mut browser =
        TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/browser/{meeting}"))
            .await
            .expect("WebSocket connects");
    browser
        .recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await;
    let vp8 = MediaPacket {
        media_type: MediaType::Video as i32,
        data: vec![0x9d, 0x01, 0x2a].into(),
        frame_type: "key".into(),
        video_metadata: Some(videocall_types::VideoMetadata {
            sequence: 0,
            codec: codec as i32,
        }),
        ..Default::default()
    };
    let wrapper = PacketWrapper {
        packet_type: PacketType::Media as i32,
        data: vp8.encode_to_vec().into(),
        ..Default::default()
    };
    browser.send(wrapper.encode_to_vec().into());
    browser
}

// Multi-threaded: the test thread blocks on the receiver's lines while the client's tasks write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_in_clear_is_refused_in_an_encrypted_meeting_and_said() {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("clear");
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", &meeting);
    receiver_args.extend(["--out".into(), out.display().to_string()]);
    // Returns once the receiver has joined.
    let mut receiver = cli("receive", receiver_args);
    let _browser = send_keyframe(http, &meeting, videocall_types::VideoCodec::Vp8).await;
    line_until(&receiver.stdout, "refusing the clear stream", |l| {
        l == "refusing media of browser: it is not end-to-end encrypted"
    });
    receiver.terminate();
    assert!(receiver.wait_exit(PATIENCE).expect("exits").success());
    assert!(!out.join("browser.y4m").exists());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn e2ee_off_cannot_join_an_encrypted_meeting_and_says_why() {
    let (_node, http, udp) = single_node();
    let mut args = vec!["stream".to_owned(), "--test-pattern".to_owned()];
    args.extend(connect_args(Via::WebSocket, http, udp, "pi", "m1"));
    args.extend(["--e2ee".into(), "off".into()]);
    assert_one_clear_error(args, "meeting m1 is end-to-end encrypted");
}

#[test]
fn the_relay_forwards_the_streamers_video_sealed() {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let mut args = connect_args(Via::WebSocket, http, udp, "pi", &meeting);
    args.extend(["--test-pattern", "--resolution", "320x240"].map(String::from));
    let _streamer = cli("stream", args);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut viewer =
            TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/spy/{meeting}"))
                .await
                .expect("WebSocket connects");
        for _ in 0..10 {
            let frame = viewer.recv_until(|w| video_from(w, "pi").is_some()).await;
            let media = video_from(&frame, "pi").expect("a video frame");
            let sealed = media.sealed.expect("video is sealed");
            assert!(media.data.is_empty() && media.video_metadata.is_none());
            assert!(sealed.ciphertext.len() > 16);
        }
    });
}

#[test]
fn unknown_camera_index_is_one_clear_error() {
    let index = videocall_cli::camera::devices().len() + 3;
    let args = [
        "stream",
        "--user-id",
        "pi",
        "--meeting-id",
        "m1",
        "--video-device-index",
        &index.to_string(),
    ]
    .map(String::from)
    .to_vec();
    assert_one_clear_error(args, &format!("no camera with index {index}"));
}

#[test]
fn info_says_clearly_which_cameras_exist() {
    let output = Command::new(binary("videocall-cli"))
        .args(["info", "--list-cameras"])
        .output()
        .expect("videocall-cli runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    if videocall_cli::camera::devices().is_empty() {
        assert!(stdout.contains("no camera found"), "{stdout}");
    } else {
        assert!(stdout.contains("camera 0:"), "{stdout}");
    }
}

#[test]
fn webtransport_without_a_cert_hash_trusts_the_hash_the_node_serves() {
    let (_node, http, udp) = single_node();
    let mut child = Command::new(binary("videocall-cli"))
        .args(["stream", "--test-pattern", "--resolution", "320x240"])
        .args(["--user-id", "pi", "--meeting-id", "served"])
        .args(["--url", &format!("https://127.0.0.1:{udp}")])
        .args(["--websocket-url", &format!("http://127.0.0.1:{http}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("videocall-cli starts");
    let stdout = child.stdout.take().expect("piped");
    let joined = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find(|l| l.starts_with("joined meeting"));
    let _ = child.kill();
    let _ = child.wait();
    let joined = joined.expect("the streamer joins");
    assert!(joined.ends_with("via webtransport"), "{joined}");
}

// Multi-threaded: the test blocks on the receiver's stdout while the client's tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_in_codecs_it_cannot_decode_are_reported() {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let meeting = format!("m{}", free_tcp_port());
    let _node = videocall_testkit::process::single_node_on(
        http,
        udp,
        &["--plaintext-meeting", meeting.as_str()],
    );
    let out = out_dir("av1");
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", &meeting);
    receiver_args.extend(["--out".into(), out.display().to_string()]);
    let mut receiver = cli("receive", receiver_args);
    // AV1: the one codec of the wire contract this build does not decode.
    let _browser = send_keyframe(http, &meeting, videocall_types::VideoCodec::Av1).await;
    line_until(&receiver.stdout, "reporting the AV1 stream", |l| {
        l == "cannot decode AV1 video from browser: not recorded"
    });
    receiver.terminate();
    assert!(receiver.wait_exit(PATIENCE).expect("exits").success());
    let summary = line_until(&receiver.stdout, "counting it", |l| {
        l.starts_with("not decoded from browser:")
    });
    assert_eq!(summary, "not decoded from browser: 1 AV1 frames");
    assert!(!out.join("browser.y4m").exists());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn unsupported_resolution_is_one_clear_error() {
    let args = [
        "stream",
        "--test-pattern",
        "--user-id",
        "pi",
        "--meeting-id",
        "m1",
        "--resolution",
        "1281x720",
    ]
    .map(String::from)
    .to_vec();
    assert_one_clear_error(args, "resolution 1281x720 is not supported");
}

#[tokio::test]
async fn a_room_token_lets_the_streamer_into_a_protected_meeting_as_the_tokens_user() {
    use videocall_auth::{Grants, RoomClaims, TokenKey};
    use videocall_types::{MeetingId, UserId};
    const SECRET: &str = "a-test-secret-of-32-bytes-length";
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let _node = videocall_testkit::process::single_node_on(
        http,
        udp,
        &["--jwt-secret", SECRET, "--require-tokens"],
    );
    let key = TokenKey::new(SECRET.as_bytes()).unwrap();
    let token = |user: &str| {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 600;
        let grants = Grants {
            publish: true,
            subscribe: true,
            host: false,
        };
        let claims = RoomClaims::new(
            &UserId::new(user).unwrap(),
            &MeetingId::new("protected").unwrap(),
            user,
            grants,
            false,
            exp,
        );
        key.sign(&claims)
    };
    // Without a token the protected meeting stays shut, with one clear error.
    let mut args = vec!["stream".to_owned(), "--test-pattern".to_owned()];
    args.extend(connect_args(Via::WebSocket, http, udp, "pi", "protected"));
    let (ok, stderr, _) = run_to_end(&args);
    assert!(!ok && stderr.contains("403"), "{stderr}");
    // With one (and no --user-id / --meeting-id), it streams as the token's user.
    let streamer_args = vec![
        "--token".to_owned(),
        token("pi-device"),
        "--transport".to_owned(),
        "websocket".to_owned(),
        "--websocket-url".to_owned(),
        format!("http://127.0.0.1:{http}"),
        "--test-pattern".to_owned(),
    ];
    let _streamer = cli("stream", streamer_args);
    let url = format!("ws://127.0.0.1:{http}/lobby?token={}", token("viewer"));
    let mut viewer = TestClient::websocket(&url)
        .await
        .expect("WebSocket connects");
    viewer
        .recv_until(|w| video_from(w, "pi-device").is_some())
        .await;
}

/// The first `safety code` line followed by `want` `key holder <user> <fingerprint>` lines:
/// the code and the holders (user, fingerprint) in the order printed.
fn code_with_holders(
    lines: &mpsc::Receiver<String>,
    want: usize,
) -> (String, Vec<(String, String)>) {
    let deadline = Instant::now() + PATIENCE;
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no code with {want} key holders: {e}"));
        if let Some(code) = line.strip_prefix("safety code ") {
            current = Some((code.to_owned(), Vec::new()));
        } else if let (Some(rest), Some((_, holders))) =
            (line.strip_prefix("key holder "), current.as_mut())
        {
            let (user, fingerprint) = rest.split_once(' ').expect("user and fingerprint");
            holders.push((user.to_owned(), fingerprint.to_owned()));
            if holders.len() == want {
                return current.expect("set above");
            }
        } else {
            current = None;
        }
    }
}

/// Issue #16: the CLI lists every key holder (user + fingerprint) under its safety code, and
/// two participants see the same code over the same holders.
#[test]
fn the_cli_prints_the_key_holders_under_the_safety_code_and_both_sides_agree() {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("holders");
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", &meeting);
    receiver_args.extend(["--out".to_owned(), out.display().to_string()]);
    let receiver = cli("receive", receiver_args);
    let mut streamer_args = connect_args(Via::WebSocket, http, udp, "pi", &meeting);
    streamer_args.extend(["--test-pattern", "--resolution", "320x240"].map(String::from));
    let streamer = cli("stream", streamer_args);
    let (code_r, holders_r) = code_with_holders(&receiver.stdout, 2);
    let (code_s, holders_s) = code_with_holders(&streamer.stdout, 2);
    assert_eq!(code_r, code_s, "both sides show the same safety code");
    assert_eq!(holders_r[0].0, "rec", "ourselves first: {holders_r:?}");
    assert_eq!(holders_s[0].0, "pi", "ourselves first: {holders_s:?}");
    let (mut r, mut s) = (holders_r.clone(), holders_s.clone());
    r.sort();
    s.sort();
    assert_eq!(r, s, "the same holders with the same fingerprints");
    assert_ne!(r[0].1, r[1].1, "each holder has its own fingerprint");
    // A 16-byte fingerprint in hex groups: 32 hex digits.
    let digits = r[0].1.chars().filter(char::is_ascii_hexdigit).count();
    assert_eq!(digits, 32, "{:?}", r[0].1);
    let _ = std::fs::remove_dir_all(out);
}
