//! `stream`: a camera or the test pattern → openh264 → the meeting, and a WAV file or a test
//! tone → Opus → the meeting (on a thread of its own, paced at 20 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_client::Event;
use videocall_client::native::{ClientHandle, Update};
use videocall_types::{HeartbeatMetadata, MediaPacket, MediaType, VideoCodec, VideoMetadata};

use crate::args::StreamArgs;
use crate::audio::{AudioSource, FRAME_MS, OpusEncoder};
use crate::codec::{EncoderSettings, H264Encoder};
use crate::join::{
    e2ee_status, join, report_e2ee, report_key_holders, shutdown_signal, unix_millis,
};
use crate::{camera, pattern};

#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    keyframes: AtomicU64,
    skipped: AtomicU64,
    encode_micros: AtomicU64,
    audio_frames: AtomicU64,
}

/// Runs `stream` until Ctrl-C, SIGTERM or `--frames`.
pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let (width, height) = args.resolution;
    let settings = EncoderSettings {
        bitrate_kbps: args.bitrate_kbps,
        fps: args.fps,
        keyframe_interval: args.keyframe_interval,
    };
    // Fail on a bad encoder setup before joining.
    let encoder = H264Encoder::new(settings)?;
    let keyframe = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    // The encoder thread opens the source first (a camera must be opened on the thread that
    // reads it) and reports; it starts once we have joined and hand it the client.
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let (start_tx, start_rx) = std::sync::mpsc::channel::<ClientHandle>();
    let encoder_thread = {
        let (keyframe, stop, counters) = (keyframe.clone(), stop.clone(), counters.clone());
        let source = Source {
            width,
            height,
            fps: args.fps,
            frames: args.frames,
        };
        let camera = (!args.test_pattern).then_some((args.video_device_index, args.frame_format));
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || {
                let capture = match camera {
                    Some((index, format)) => {
                        match camera::open(index, (width, height), source.fps, format) {
                            Ok(capture) => Some(capture),
                            Err(e) => {
                                let _ = opened_tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    None => None,
                };
                let _ = opened_tx.send(Ok(()));
                let Ok(handle) = start_rx.recv() else { return };
                let result = source.run(capture, encoder, &handle, &keyframe, &stop, &counters);
                let _ = done_tx.send(result);
            })?
    };
    tokio::task::spawn_blocking(move || opened_rx.recv())
        .await?
        .map_err(|_| anyhow::anyhow!("the encoder thread died"))??;
    // A bad --audio-file fails before joining, like a bad camera.
    let audio = if args.no_audio {
        None
    } else {
        let source = match (&args.audio_device, &args.audio_file) {
            (Some(device), _) => AudioSource::device(device)?,
            (None, Some(path)) => AudioSource::file(path)?,
            (None, None) => AudioSource::tone(args.tone_hz as f32),
        };
        Some((source, OpusEncoder::new()?))
    };

    let (mut client, session, transport) = join(&args.connect).await?;
    println!(
        "joined meeting {} as session {session} via {transport}",
        args.connect.identity()?.1
    );
    client.handle().set_heartbeat(HeartbeatMetadata {
        video_enabled: true,
        audio_enabled: audio.is_some(),
        ..Default::default()
    });
    let _ = start_tx.send(client.handle().clone());
    let audio_thread = match audio {
        Some((source, encoder)) => {
            let (handle, stop, counters) =
                (client.handle().clone(), stop.clone(), counters.clone());
            Some(
                std::thread::Builder::new()
                    .name("audio".into())
                    .spawn(move || send_audio(source, encoder, &handle, &stop, &counters))?,
            )
        }
        None => None,
    };

    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = (0u64, 0u64, Instant::now());
    let mut congestion = 0u64;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            update = client.next_update() => match update {
                Some(Update::Session(Event::KeyframeRequested)) => keyframe.store(true, Ordering::Relaxed),
                Some(Update::Session(Event::Joined { session })) => {
                    // A new session: receivers need a picture they can start from.
                    keyframe.store(true, Ordering::Relaxed);
                    let via = client.status().transport.map(|t| t.to_string()).unwrap_or_default();
                    println!("reconnected as session {session} via {via}");
                    eprintln!("videocall-cli: reconnected as session {session} via {via}");
                }
                // Removed, the meeting ended, or replaced by a newer connection: the
                // session is over and does not reconnect.
                Some(Update::Session(Event::Ended(why))) => break Err(anyhow::anyhow!("the relay ended the session: {why}")),
                Some(Update::Session(Event::Disconnected { reason, retry_in })) => {
                    eprintln!("videocall-cli: connection lost ({reason}); reconnecting in {:?}", retry_in.unwrap_or_default());
                }
                Some(Update::Session(Event::Congestion { .. })) => congestion += 1,
                Some(Update::Session(Event::RelayNotice(notice))) => {
                    eprintln!("videocall-cli: the relay says: {}", notice.message);
                }
                Some(Update::Session(event)) => report_e2ee(&event),
                Some(Update::KeyHolders(holders)) => report_key_holders(&holders),
                Some(_) => {}
                None => break Err(anyhow::anyhow!("the client stopped")),
            },
            _ = ticker.tick() => {
                let status = client.status();
                let frames = counters.frames.load(Ordering::Relaxed);
                let bytes = counters.bytes.load(Ordering::Relaxed);
                let secs = last.2.elapsed().as_secs_f64().max(1e-3);
                let encode_ms = counters.encode_micros.load(Ordering::Relaxed) as f64 / 1000.0 / frames.max(1) as f64;
                eprintln!(
                    "stream: {:.1} fps, {:.0} kbps, rtt {}, {}, {}, {}, encode {encode_ms:.2} ms/frame, drops {} (rate control {}, congestion {congestion})",
                    (frames - last.0) as f64 / secs,
                    (bytes - last.1) as f64 * 8.0 / 1000.0 / secs,
                    status.rtt.map(|r| format!("{:.1} ms", r.as_secs_f64() * 1000.0)).unwrap_or("-".into()),
                    status.transport.map(|t| t.to_string()).unwrap_or("disconnected".into()),
                    status.state.map(state_name).unwrap_or("starting"),
                    e2ee_status(&status),
                    status.dropped_media,
                    counters.skipped.load(Ordering::Relaxed),
                );
                last = (frames, bytes, Instant::now());
            }
            result = &mut done => break result.unwrap_or_else(|_| Err(anyhow::anyhow!("the encoder thread died"))),
            _ = &mut signal => break Ok(()),
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || encoder_thread.join()).await;
    if let Some(thread) = audio_thread
        && let Ok(Ok(Err(e))) = tokio::task::spawn_blocking(move || thread.join()).await
    {
        eprintln!("videocall-cli: audio stopped: {e}");
    }
    client.handle().leave().await;
    let frames = counters.frames.load(Ordering::Relaxed);
    println!(
        "sent {frames} frames ({} keyframes, {} skipped by rate control), encode {:.2} ms/frame",
        counters.keyframes.load(Ordering::Relaxed),
        counters.skipped.load(Ordering::Relaxed),
        counters.encode_micros.load(Ordering::Relaxed) as f64 / 1000.0 / frames.max(1) as f64
    );
    println!(
        "sent {} audio frames ({FRAME_MS} ms Opus)",
        counters.audio_frames.load(Ordering::Relaxed)
    );
    outcome
}

/// Sends 20 ms of audio every 20 ms until `stop`, paced by the clock (a device's read blocks
/// until it has the samples; one that does not pace itself, like ALSA's `null`, is paced here);
/// behind by more than 100 ms (a stalled machine) it skips ahead instead of bursting.
fn send_audio(
    mut source: AudioSource,
    mut encoder: OpusEncoder,
    handle: &ClientHandle,
    stop: &AtomicBool,
    counters: &Counters,
) -> anyhow::Result<()> {
    let period = Duration::from_secs_f64(FRAME_MS / 1000.0);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = source.next_frame()?;
        let packet = encoder.encode(&frame, unix_millis())?;
        handle.send_media(packet);
        counters.audio_frames.fetch_add(1, Ordering::Relaxed);
        next += period;
        let now = Instant::now();
        if now > next + 5 * period {
            next = now;
        }
    }
    Ok(())
}

fn state_name(state: videocall_client::ConnectionState) -> &'static str {
    use videocall_client::ConnectionState::*;
    match state {
        Idle => "idle",
        Connecting { .. } => "connecting",
        Joined { .. } => "joined",
        Backoff { .. } => "reconnecting",
        Closed => "closed",
    }
}

/// The picture source, paced at `fps`.
struct Source {
    width: usize,
    height: usize,
    fps: u32,
    frames: Option<u64>,
}

impl Source {
    fn run(
        self,
        mut capture: Option<camera::Capture>,
        mut encoder: H264Encoder,
        handle: &ClientHandle,
        keyframe: &AtomicBool,
        stop: &AtomicBool,
        counters: &Counters,
    ) -> anyhow::Result<()> {
        let period = Duration::from_secs_f64(1.0 / f64::from(self.fps));
        let mut next = Instant::now();
        let mut counter = 0u64;
        while !stop.load(Ordering::Relaxed) && self.frames.is_none_or(|n| counter < n) {
            let (picture, captured) = match &mut capture {
                // A camera paces itself.
                Some(capture) => (capture.capture()?, unix_millis()),
                None => {
                    // The pattern is paced to the frame rate, as a camera would deliver.
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let captured = unix_millis();
                    (pattern::frame(self.width, self.height, counter)?, captured)
                }
            };
            let started = Instant::now();
            let frame = encoder.encode(&picture, keyframe.swap(false, Ordering::Relaxed))?;
            counters
                .encode_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            counter += 1;
            next += period;
            // Behind by more than a frame (slow encoder): drop the backlog, do not burst.
            let now = Instant::now();
            if now > next + period {
                next = now;
            }
            let Some(frame) = frame else {
                // Rate control skipped this picture: nothing to send.
                counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            counters.frames.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
            if frame.key {
                counters.keyframes.fetch_add(1, Ordering::Relaxed);
            }
            handle.send_media(MediaPacket {
                media_type: MediaType::Video as i32,
                data: Bytes::from(frame.data),
                frame_type: if frame.key { "key" } else { "delta" }.to_owned(),
                timestamp: captured,
                duration: period.as_secs_f64() * 1000.0,
                video_metadata: Some(VideoMetadata {
                    // Sent frames are numbered without gaps (a skipped picture is not a lost
                    // frame); the picture's own counter is burned into it.
                    sequence: counters.frames.load(Ordering::Relaxed) - 1,
                    codec: VideoCodec::H264Baseline as i32,
                }),
                ..Default::default()
            });
        }
        Ok(())
    }
}
