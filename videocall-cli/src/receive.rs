//! `receive`: join, decode every H.264 video stream, record one `.y4m` per participant.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use videocall_client::native::{ClientHandle, Update};
use videocall_client::reorder::{REORDER_FRAMES, ReorderBuffers};
use videocall_client::{Event, MediaFrom};
use videocall_types::{MediaPacket, MediaType, SessionId, StreamKey, UserId, VideoCodec};

use crate::args::ReceiveArgs;
use crate::codec::H264Decoder;
use crate::join::{
    e2ee_status, join, report_e2ee, report_key_holders, shutdown_signal, unix_millis,
};
use crate::y4m::Y4mWriter;

/// One participant's recording.
#[allow(missing_debug_implementations)] // holds an openh264 decoder
struct Track {
    session: SessionId,
    decoder: H264Decoder,
    writer: Option<Y4mWriter>,
    path: PathBuf,
    frames: u64,
    resized: u64,
    errors: u64,
}

/// Most video streams decoded at once (each holds a decoder and a file).
const MAX_STREAMS: usize = 256;

/// Everything received so far.
struct Recorder {
    out: PathBuf,
    print_frames: bool,
    tracks: HashMap<UserId, Track>,
    reorder: ReorderBuffers<MediaPacket>,
    /// (user, codec name) → frames that could not be decoded.
    undecodable: BTreeMap<(UserId, String), u64>,
    latencies_ms: Vec<f64>,
}

/// Runs `receive` until Ctrl-C or SIGTERM.
pub async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create --out {}: {e}", args.out.display()))?;
    let (mut client, session, transport) = join(&args.connect).await?;
    println!(
        "joined meeting {} as session {session} via {transport}",
        args.connect.identity()?.1
    );
    let mut recorder = Recorder {
        out: args.out.clone(),
        print_frames: args.print_frames,
        tracks: HashMap::new(),
        reorder: ReorderBuffers::new(REORDER_FRAMES, MAX_STREAMS),
        undecodable: BTreeMap::new(),
        latencies_ms: Vec::new(),
    };
    let handle = client.handle().clone();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            update = client.next_update() => match update {
                Some(Update::Session(Event::Media(media))) => recorder.media(&handle, media)?,
                Some(Update::Session(Event::PeerJoined { user, session })) => println!("joined {user} session {session}"),
                Some(Update::Session(Event::PeerLeft { user, session })) => println!("left {user} session {session}"),
                Some(Update::Session(Event::Joined { session })) => {
                    println!("reconnected as session {session}");
                    eprintln!("videocall-cli: reconnected as session {session}");
                }
                // Removed, the meeting ended, or replaced by a newer connection: the
                // session is over and does not reconnect.
                Some(Update::Session(Event::Ended(why))) => break Err(anyhow::anyhow!("the relay ended the session: {why}")),
                Some(Update::Session(Event::Disconnected { reason, retry_in })) => {
                    eprintln!("videocall-cli: connection lost ({reason}); reconnecting in {:?}", retry_in.unwrap_or_default());
                }
                Some(Update::Session(event)) => report_e2ee(&event),
                Some(Update::KeyHolders(holders)) => report_key_holders(&holders),
                Some(_) => {}
                None => break Err(anyhow::anyhow!("the client stopped")),
            },
            _ = ticker.tick() => {
                let status = client.status();
                let frames: u64 = recorder.tracks.values().map(|t| t.frames).sum();
                eprintln!(
                    "receive: {} stream(s), {frames} frames decoded, rtt {}, {}, {}",
                    recorder.tracks.len(),
                    status.rtt.map(|r| format!("{:.1} ms", r.as_secs_f64() * 1000.0)).unwrap_or("-".into()),
                    status.transport.map(|t| t.to_string()).unwrap_or("disconnected".into()),
                    e2ee_status(&status),
                );
            }
            _ = &mut signal => break Ok(()),
        }
    };
    client.handle().leave().await;
    recorder.finish()?;
    outcome
}

impl Recorder {
    fn media(&mut self, handle: &ClientHandle, from: MediaFrom) -> anyhow::Result<()> {
        let media = from.packet;
        if media.media_type != MediaType::Video as i32 {
            return Ok(());
        }
        let codec = media.video_metadata.map(|m| m.codec).unwrap_or_default();
        if codec != VideoCodec::H264Baseline as i32 {
            let name = VideoCodec::try_from(codec)
                .map(|c| c.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("codec {codec}"));
            let count = self
                .undecodable
                .entry((from.user.clone(), name.clone()))
                .or_insert(0);
            if *count == 0 {
                println!(
                    "cannot decode {name} video from {}: not recorded",
                    from.user
                );
            }
            *count += 1;
            return Ok(());
        }
        let stream = StreamKey::camera(from.session);
        let track = match self.tracks.entry(from.user.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(Track {
                session: from.session,
                decoder: H264Decoder::new()?,
                writer: None,
                path: self
                    .out
                    .join(format!("{}.y4m", file_name(from.user.as_str()))),
                frames: 0,
                resized: 0,
                errors: 0,
            }),
        };
        if track.session != from.session {
            // The participant reconnected: a new stream, which starts at a keyframe.
            self.reorder.remove_session(track.session);
            track.session = from.session;
            track.decoder = H264Decoder::new()?;
        }
        let sequence = media.video_metadata.map(|m| m.sequence).unwrap_or_default();
        let key = media.frame_type == "key";
        for media in self.reorder.handle_frame(stream, sequence, key, media) {
            match track.decoder.decode(&media.data) {
                Ok(Some(picture)) => {
                    let (width, height) = (picture.width, picture.height);
                    if track.writer.is_none() {
                        track.writer = Some(create(&track.path, width, height)?);
                        println!(
                            "video {} {width}x{height} session {} -> {}",
                            from.user,
                            from.session,
                            track.path.display()
                        );
                    }
                    let writer = track.writer.as_mut().expect("created just above");
                    if writer.size != (width, height) {
                        // One file holds one size; a participant that changed size is counted.
                        track.resized += 1;
                        continue;
                    }
                    writer.write(&picture)?;
                    track.frames += 1;
                    let latency = unix_millis() - media.timestamp;
                    self.latencies_ms.push(latency);
                    if self.print_frames {
                        let sequence = media.video_metadata.map(|m| m.sequence).unwrap_or_default();
                        println!("frame {} {sequence} {latency:.1}", from.user);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if track.errors == 0 {
                        eprintln!(
                            "videocall-cli: cannot decode a frame from {}: {e}",
                            from.user
                        );
                    }
                    track.errors += 1;
                    self.reorder.handle_decode_error(stream);
                    break;
                }
            }
        }
        // Only this stream's requests can be pending: each frame is handled to the end.
        while self.reorder.poll_keyframe_request().is_some() {
            handle.request_keyframe(from.user.clone());
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let mut users: Vec<_> = self.tracks.iter_mut().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        for (user, track) in users {
            if let Some(writer) = &mut track.writer {
                writer.finish()?;
            }
            let (late, skipped) = self
                .reorder
                .stream(&StreamKey::camera(track.session))
                .map_or((0, 0), |r| (r.late, r.skipped));
            println!(
                "received from {user}: {} frames -> {} (late {}, skipped {}, resized {}, decode errors {})",
                track.frames,
                track.path.display(),
                late,
                skipped,
                track.resized,
                track.errors
            );
        }
        for ((user, codec), frames) in &self.undecodable {
            println!("not decoded from {user}: {frames} {codec} frames");
        }
        if !self.latencies_ms.is_empty() {
            self.latencies_ms.sort_by(f64::total_cmp);
            let at = |q: f64| {
                self.latencies_ms[((self.latencies_ms.len() - 1) as f64 * q).round() as usize]
            };
            println!(
                "latency ms p50 {:.1} p99 {:.1} (n={})",
                at(0.5),
                at(0.99),
                self.latencies_ms.len()
            );
        }
        Ok(())
    }
}

fn create(path: &Path, width: usize, height: usize) -> anyhow::Result<Y4mWriter> {
    Y4mWriter::create(path, width, height, 30)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// A user id as a file name (ids are validated by the relay, but a peer's id is still input).
fn file_name(user: &str) -> String {
    let name: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    }
}
