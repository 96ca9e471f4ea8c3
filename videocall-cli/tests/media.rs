//! Audio and recording, with real processes against a real node: `stream` sends its test tone
//! (Opus) with the test pattern, `receive` records `<user>.wav` and `<user>.webm` (and with
//! `--mix` the meeting); malformed media from a peer is counted, never fatal. The files are
//! checked by decoding: the WAV with hound and a Goertzel filter, the WebM with ffprobe (Debian's
//! ffmpeg, installed by `scripts/ensure-deps.sh ffmpeg`; a verifier only). The WebM files and the
//! VP8/VP9 decoding need libvpx: these tests run with the `vpx` feature (a default).
#![cfg(feature = "vpx")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Via, cli, connect_args, line_until, number_after, out_dir, single_node};
use prost::Message;
use videocall_cli::audio::{SAMPLE_RATE, goertzel};
use videocall_testkit::client::TestClient;
use videocall_testkit::packets::wrap;
use videocall_testkit::{PATIENCE, free_tcp_port, free_udp_port};
use videocall_types::{MediaPacket, MediaType, PacketType, PacketWrapper, VideoCodec};

const FRAMES: u64 = 150;
const TONE_HZ: f32 = 660.0;

/// What ffprobe says of a file: (streams as (type, codec, frames decoded), duration in s).
fn probe(path: &Path) -> (Vec<(String, String, u64)>, f64) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args([
            "stream=codec_type,codec_name,nb_read_frames:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/ensure-deps.sh ffmpeg)");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("ffprobe json");
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let streams = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            let frames = text(s, "nb_read_frames").parse().unwrap_or(0);
            (text(s, "codec_type"), text(s, "codec_name"), frames)
        })
        .collect();
    let duration = text(&json["format"], "duration").parse().unwrap_or(0.0);
    (streams, duration)
}

/// Streams the pattern and `audio` (the streamer's audio flags) for `FRAMES` frames; returns
/// (receiver's stdout lines after SIGTERM, video frames sent, audio frames sent, how long the
/// receiver ran).
fn stream_and_record(
    meeting: &str,
    out: &Path,
    receiver_extra: &[&str],
    audio: &[&str],
) -> (Vec<String>, u64, u64, Duration) {
    let (_node, http, udp) = single_node();
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", meeting);
    receiver_args.extend(["--out".into(), out.display().to_string()]);
    receiver_args.extend(receiver_extra.iter().map(|a| a.to_string()));
    let mut receiver = cli("receive", receiver_args);
    // From the receiver's join (its mix starts there) to SIGTERM.
    let started = Instant::now();
    let mut streamer_args = connect_args(Via::WebSocket, http, udp, "pi", meeting);
    streamer_args.extend(
        [
            "--test-pattern",
            "--resolution",
            "320x240",
            "--frames",
            &FRAMES.to_string(),
        ]
        .map(String::from),
    );
    streamer_args.extend(audio.iter().map(|a| a.to_string()));
    let mut streamer = cli("stream", streamer_args);
    let status = streamer
        .wait_exit(Duration::from_secs(20))
        .expect("the streamer stops after --frames");
    assert!(status.success(), "streamer exit {status:?}");
    let sent = number_after(
        &line_until(&streamer.stdout, "sent", |l| l.starts_with("sent ")),
        "sent ",
    );
    let audio_line = line_until(&streamer.stdout, "sent audio", |l| {
        l.contains("audio frames")
    });
    let audio_sent = number_after(&audio_line, "sent ");
    line_until(&receiver.stdout, "with the streamer's leave", |l| {
        l.starts_with("left pi")
    });
    receiver.terminate();
    let ran = started.elapsed();
    let status = receiver
        .wait_exit(PATIENCE)
        .expect("the receiver exits on SIGTERM");
    assert!(status.success(), "receiver exit {status:?}");
    let mut lines = Vec::new();
    while let Ok(line) = receiver.stdout.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    (lines, sent, audio_sent, ran)
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {lines:#?}"))
}

#[test]
fn streamed_tone_is_recorded_at_its_frequency_for_the_time_it_was_sent() {
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("tone");
    let (lines, sent, audio_sent, _) =
        stream_and_record(&meeting, &out, &[], &["--tone-hz", &TONE_HZ.to_string()]);
    assert!(
        audio_sent >= FRAMES * 20 / 30 * 9 / 10,
        "{audio_sent} audio frames for 5 s"
    );

    let mut reader = hound::WavReader::open(out.join("pi.wav")).expect("a readable pi.wav");
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (1, SAMPLE_RATE));
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("a sample")) / 32768.0)
        .collect();
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    let expected = audio_sent as f64 * 0.020;
    eprintln!(
        "pi.wav: {seconds:.2} s for {expected:.2} s sent; {}",
        line(&lines, "audio from pi:")
    );
    assert!(
        // Above: a streamer stalled by a busy machine skips ahead, and the gap is silence.
        seconds >= 0.9 * expected && seconds <= 1.5 * expected,
        "{seconds:.2} s recorded of {expected:.2} s sent"
    );
    // The strongest frequency from 100 Hz to 4 kHz (10 Hz steps) over the middle of the file.
    let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
    let (peak_hz, peak) = (10..=400)
        .map(|step| step as f32 * 10.0)
        .map(|hz| (hz, goertzel(middle, hz)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("frequencies");
    eprintln!("dominant frequency {peak_hz} Hz (strength {peak:.3})");
    assert_eq!(peak_hz, TONE_HZ, "dominant frequency");
    assert!(peak > 0.1, "the tone is there: {peak}");

    // The participant's WebM: H.264 re-encoded as VP8, the Opus frames as sent.
    let (streams, duration) = probe(&out.join("pi.webm"));
    eprintln!("pi.webm: {streams:?}, {duration:.2} s");
    let video = streams
        .iter()
        .find(|s| s.0 == "video")
        .expect("a video stream");
    let audio = streams
        .iter()
        .find(|s| s.0 == "audio")
        .expect("an audio stream");
    assert_eq!((video.1.as_str(), audio.1.as_str()), ("vp8", "opus"));
    assert!(
        video.2 * 10 >= sent * 9,
        "{} of {sent} frames in the WebM",
        video.2
    );
    assert!(
        audio.2 * 10 >= audio_sent * 9,
        "{} of {audio_sent} audio frames",
        audio.2
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn mix_is_one_webm_with_video_and_audio_as_long_as_the_recording() {
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("mix");
    let (lines, _, _, ran) = stream_and_record(
        &meeting,
        &out,
        &["--mix", "--mix-size", "320x180"],
        &["--tone-hz", &TONE_HZ.to_string()],
    );
    let mixed = line(&lines, "mixed ");
    eprintln!("{mixed}; the receiver ran {ran:?}");
    let (streams, duration) = probe(&out.join("meeting.webm"));
    eprintln!("meeting.webm: {streams:?}, {duration:.2} s");
    let kinds: Vec<(&str, &str)> = streams
        .iter()
        .map(|s| (s.0.as_str(), s.1.as_str()))
        .collect();
    assert_eq!(kinds, [("video", "vp8"), ("audio", "opus")]);
    // The mix runs from joining to SIGTERM: a little less than the receiver process ran.
    let ran = ran.as_secs_f64();
    assert!(
        (duration - ran).abs() <= 0.1 * ran,
        "{duration:.2} s mixed, the receiver ran {ran:.2} s"
    );
    let video_frames = streams[0].2 as f64;
    assert!(
        video_frames >= 0.9 * 15.0 * duration,
        "{video_frames} frames at 15 fps"
    );
    // The tone is in the mix.
    let audio = number_after(mixed, "video frames, ");
    assert!(audio as f64 >= 0.9 * duration * 50.0, "{mixed}");
    let _ = std::fs::remove_dir_all(out);
}

// Multi-threaded: the test blocks on the receiver's stdout while the client's tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_opus_and_vp8_are_counted_and_the_recorder_goes_on() {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let meeting = format!("m{}", free_tcp_port());
    let _node = videocall_testkit::process::single_node_on(
        http,
        udp,
        &["--plaintext-meeting", meeting.as_str()],
    );
    let out = out_dir("malformed");
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", &meeting);
    receiver_args.extend(["--out".into(), out.display().to_string()]);
    let mut receiver = cli("receive", receiver_args);
    let mut peer = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/evil/{meeting}"))
        .await
        .expect("WebSocket connects");
    peer.recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
        .await;
    let mut encoder = videocall_cli::audio::OpusEncoder::new().expect("encoder");
    for n in 0..20u64 {
        // Garbage Opus (a code-3 packet asking for no frames), then a good frame.
        let mut bad =
            videocall_cli::audio::audio_packet(vec![0xfb, 0x00].into(), n as f64 * 40.0, 2 * n);
        peer.send(wrap(&bad));
        let good = encoder
            .encode(&[0.1; 960], n as f64 * 40.0 + 20.0)
            .expect("encodes");
        let mut good = good;
        good.audio_metadata.as_mut().expect("metadata").sequence = 2 * n + 1;
        peer.send(wrap(&good));
        // Garbage VP8 and VP9 keyframes, and a changing size of nonsense.
        for codec in [VideoCodec::Vp8, VideoCodec::Vp9Profile0Level108bit] {
            bad = MediaPacket {
                media_type: MediaType::Video as i32,
                data: vec![n as u8; 10 + n as usize * 50].into(),
                frame_type: "key".into(),
                video_metadata: Some(videocall_types::VideoMetadata {
                    sequence: n,
                    codec: codec as i32,
                }),
                ..Default::default()
            };
            peer.send(wrap(&bad));
        }
    }
    line_until(&receiver.stdout, "with the good audio", |l| {
        l.starts_with("audio evil session")
    });
    receiver.terminate();
    let status = receiver.wait_exit(PATIENCE).expect("exits on SIGTERM");
    assert!(status.success(), "the receiver survives: {status:?}");
    // The summary: video, then audio.
    let video = line_until(&receiver.stdout, "with the video summary", |l| {
        l.starts_with("received from evil:")
    });
    assert!(number_after(&video, "decode errors ") >= 1, "{video}");
    let audio = line_until(&receiver.stdout, "with the audio summary", |l| {
        l.starts_with("audio from evil:")
    });
    assert!(number_after(&audio, "decode errors ") >= 1, "{audio}");
    assert!(number_after(&audio, "audio from evil: ") >= 1, "{audio}");
    let _ = std::fs::remove_dir_all(out);
}

// Multi-threaded: the test blocks on the receiver's stdout while the client's tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_past_the_cap_are_named_once_and_not_recorded() {
    use videocall_cli::receive::MAX_PARTICIPANTS;
    let (http, udp) = (free_tcp_port(), free_udp_port());
    let meeting = format!("m{}", free_tcp_port());
    let _node = videocall_testkit::process::single_node_on(
        http,
        udp,
        &[
            "--plaintext-meeting",
            meeting.as_str(),
            "--max-connections-per-ip",
            "200",
        ],
    );
    let out = out_dir("cap");
    let mut receiver_args = connect_args(Via::WebSocket, http, udp, "rec", &meeting);
    receiver_args.extend(["--out".into(), out.display().to_string()]);
    let mut receiver = cli("receive", receiver_args);
    let mut encoder = videocall_cli::audio::OpusEncoder::new().expect("encoder");
    let packet = encoder.encode(&[0.0; 960], 0.0).expect("encodes");
    let peers = MAX_PARTICIPANTS + 6;
    let mut clients = Vec::new();
    for n in 0..peers {
        let url = format!("ws://127.0.0.1:{http}/lobby/p{n:03}/{meeting}");
        let mut peer = TestClient::websocket(&url)
            .await
            .expect("WebSocket connects");
        peer.recv_until(|w| w.packet_type == PacketType::SessionAssigned as i32)
            .await;
        // Twice: a participant past the cap is named once.
        peer.send(wrap(&packet));
        peer.send(wrap(&packet));
        clients.push(peer);
    }
    // Six participants past the cap: each is named once its first packet is handled (by then
    // the 64 recorded ones have their files: a participant is past the cap only after them).
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while lines
        .iter()
        .filter(|l| l.starts_with("not recording "))
        .count()
        < 6
    {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(
            receiver
                .stdout
                .recv_timeout(left)
                .expect("six refused participants named"),
        );
    }
    receiver.terminate();
    assert!(receiver.wait_exit(PATIENCE).expect("exits").success());
    while let Ok(line) = receiver.stdout.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    let refused = line(&lines, "not recording ");
    assert!(
        refused.ends_with(&format!(
            "already recording {MAX_PARTICIPANTS} participants"
        )),
        "{refused}"
    );
    let named = lines
        .iter()
        .filter(|l| l.starts_with("not recording "))
        .count();
    assert_eq!(named, 6, "each participant past the cap named once");
    // Each sent two packets; the second may still be on its way at SIGTERM.
    let summary = line(&lines, "not recorded: ");
    let packets = number_after(summary, "not recorded: ");
    assert!((6..=12).contains(&packets), "{summary}");
    assert!(
        summary.ends_with(&format!(
            "from 6 participant(s) past the cap of {MAX_PARTICIPANTS}"
        )),
        "{summary}"
    );
    let wavs = std::fs::read_dir(&out)
        .expect("the out dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wav"))
        })
        .count();
    assert_eq!(wavs, MAX_PARTICIPANTS);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn the_relay_sees_the_streamers_audio_only_sealed() {
    let (_node, http, udp) = single_node();
    let meeting = format!("m{}", free_tcp_port());
    let mut args = connect_args(Via::WebSocket, http, udp, "pi", &meeting);
    args.extend(["--test-pattern", "--resolution", "320x240"].map(String::from));
    let _streamer = cli("stream", args);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut spy = TestClient::websocket(&format!("ws://127.0.0.1:{http}/lobby/spy/{meeting}"))
            .await
            .expect("WebSocket connects");
        let audio_from_pi = |w: &PacketWrapper| {
            (w.packet_type == PacketType::Media as i32 && w.user_id == b"pi".as_slice())
                .then(|| MediaPacket::decode(w.data.clone()).ok())
                .flatten()
                .filter(|m| m.media_type == MediaType::Audio as i32)
        };
        for _ in 0..10 {
            let wrapper = spy.recv_until(|w| audio_from_pi(w).is_some()).await;
            let media = audio_from_pi(&wrapper).expect("an audio packet");
            let sealed = media.sealed.expect("audio is sealed");
            assert!(media.data.is_empty() && media.audio_metadata.is_none());
            // An Opus frame at 32 kbit/s is ~80 bytes; sealed, it carries the tag as well.
            assert!(sealed.ciphertext.len() > 16, "{}", sealed.ciphertext.len());
        }
    });
}

/// ALSA capture through arecord (scripts/ensure-deps.sh alsa), from ALSA's `null` device: this
/// machine has no sound card. `null` hands out samples (undefined ones, so their content is not
/// checked) as fast as they are read: this also checks that the streamer paces it at 20 ms.
#[test]
fn audio_captured_from_an_alsa_device_is_recorded_for_the_time_it_was_sent() {
    let meeting = format!("m{}", free_tcp_port());
    let out = out_dir("alsa");
    let (lines, _, audio_sent, _) =
        stream_and_record(&meeting, &out, &["--no-y4m"], &["--audio-device", "null"]);
    // About 5 s of video: at 50 frames a second, not a burst.
    assert!(
        (200..=400).contains(&audio_sent),
        "{audio_sent} audio frames in ~5 s"
    );
    let samples: Vec<i16> = hound::WavReader::open(out.join("pi.wav"))
        .expect("a readable pi.wav")
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    let expected = audio_sent as f64 * 0.020;
    eprintln!(
        "pi.wav: {seconds:.2} s for {expected:.2} s sent; {}",
        line(&lines, "audio from pi:")
    );
    assert!(
        seconds >= 0.9 * expected,
        "{seconds:.2} s recorded of {expected:.2} s sent"
    );
    let _ = std::fs::remove_dir_all(out);
}
