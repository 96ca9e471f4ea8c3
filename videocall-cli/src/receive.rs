//! `receive`: join, decode every participant's video (H.264, and VP8/VP9 with libvpx) and
//! audio (Opus), and record each participant (`participant.rs`: `.y4m`, `.wav`, `.webm`) and,
//! with `--mix`, the whole meeting in one file (`mix.rs`). The recorder is a member of the
//! meeting: an end-to-end encrypted meeting is recorded without the relay seeing plaintext.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use videocall_client::native::{ClientHandle, Update};
use videocall_client::reorder::{REORDER_FRAMES, ReorderBuffers};
use videocall_client::{Event, MediaFrom};
use videocall_types::{MediaPacket, MediaType, StreamKey, UserId, VideoCodec};

use crate::args::ReceiveArgs;
use crate::join::{
    e2ee_status, join, report_e2ee, report_key_holders, shutdown_signal, unix_millis,
};
use crate::participant::{Participant, decodable};

/// Most participants recorded at once (each holds decoders and three open files). Media from
/// participants past it is not recorded: counted, and named once on stdout.
pub const MAX_PARTICIPANTS: usize = 64;
/// Most distinct names kept for the reports of refused or undecodable streams.
const MAX_REPORTED: usize = 1024;

/// Everything received so far.
struct Recorder {
    out: std::path::PathBuf,
    print_frames: bool,
    write_y4m: bool,
    tracks: HashMap<UserId, Participant>,
    reorder: ReorderBuffers<MediaPacket>,
    /// (user, codec name) → frames that could not be decoded.
    undecodable: BTreeMap<(UserId, String), u64>,
    /// Participants past [`MAX_PARTICIPANTS`], and their packets.
    over_cap: HashSet<UserId>,
    over_cap_packets: u64,
    latencies_ms: Vec<f64>,
    #[cfg(feature = "vpx")]
    mixer: Option<crate::mix::Mixer>,
}

/// Latencies kept for the percentiles (the newest are dropped past it).
const MAX_LATENCIES: usize = 1_000_000;

/// Runs `receive` until Ctrl-C or SIGTERM.
pub async fn run(args: ReceiveArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot create --out {}: {e}", args.out.display()))?;
    #[cfg(not(feature = "vpx"))]
    if args.mix {
        anyhow::bail!("--mix needs libvpx: this videocall-cli was built without the vpx feature");
    }
    let (mut client, session, transport) = join(&args.connect).await?;
    println!(
        "joined meeting {} as session {session} via {transport}",
        args.connect.identity()?.1
    );
    let mut recorder = Recorder {
        out: args.out.clone(),
        print_frames: args.print_frames,
        write_y4m: !args.no_y4m,
        tracks: HashMap::new(),
        reorder: ReorderBuffers::new(REORDER_FRAMES, MAX_PARTICIPANTS),
        undecodable: BTreeMap::new(),
        over_cap: HashSet::new(),
        over_cap_packets: 0,
        latencies_ms: Vec::new(),
        #[cfg(feature = "vpx")]
        mixer: match args.mix {
            true => {
                let path = args.out.join("meeting.webm");
                let mixer = crate::mix::Mixer::create(&path, args.mix_size, args.mix_fps)?;
                println!("mix -> {}", path.display());
                Some(mixer)
            }
            false => None,
        },
    };
    let handle = client.handle().clone();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    // The mix produces its frames on this clock (it catches up when a tick is late).
    let mut mix_ticker = tokio::time::interval(Duration::from_millis(10));
    mix_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let outcome = loop {
        tokio::select! {
            update = client.next_update() => match update {
                Some(Update::Session(Event::Media(media))) => recorder.media(&handle, media)?,
                Some(Update::Session(Event::PeerJoined { user, session })) => println!("joined {user} session {session}"),
                Some(Update::Session(Event::PeerLeft { user, session })) => {
                    println!("left {user} session {session}");
                    #[cfg(feature = "vpx")]
                    if let Some(mixer) = &mut recorder.mixer {
                        mixer.remove(&user);
                    }
                }
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
            _ = mix_ticker.tick(), if recorder.mixing() => recorder.poll_mix()?,
            _ = ticker.tick() => {
                let status = client.status();
                let frames: u64 = recorder.tracks.values().map(|t| t.frames).sum();
                let audio: u64 = recorder.tracks.values().map(|t| t.audio_frames).sum();
                eprintln!(
                    "receive: {} participant(s), {frames} frames, {audio} audio frames decoded, rtt {}, {}, {}",
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
    fn mixing(&self) -> bool {
        #[cfg(feature = "vpx")]
        return self.mixer.is_some();
        #[cfg(not(feature = "vpx"))]
        false
    }

    fn poll_mix(&mut self) -> anyhow::Result<()> {
        #[cfg(feature = "vpx")]
        if let Some(mixer) = &mut self.mixer {
            mixer.poll(std::time::Instant::now())?;
        }
        Ok(())
    }

    /// The participant's recording, created on their first packet; `None` past the cap.
    fn participant(&mut self, from: &MediaFrom) -> Option<&mut Participant> {
        if !self.tracks.contains_key(&from.user) && self.tracks.len() >= MAX_PARTICIPANTS {
            self.over_cap_packets += 1;
            if self.over_cap.len() < MAX_REPORTED && self.over_cap.insert(from.user.clone()) {
                println!(
                    "not recording {}: already recording {MAX_PARTICIPANTS} participants",
                    from.user
                );
            }
            return None;
        }
        let track = self.tracks.entry(from.user.clone()).or_insert_with(|| {
            Participant::new(
                &self.out,
                &file_name(from.user.as_str()),
                from.session,
                self.write_y4m,
            )
        });
        if track.session != from.session {
            // The participant reconnected: a new stream, which starts at a keyframe.
            self.reorder.remove_session(track.session);
            track.new_session(from.session);
        }
        Some(track)
    }

    fn media(&mut self, handle: &ClientHandle, from: MediaFrom) -> anyhow::Result<()> {
        if from.packet.media_type == MediaType::Audio as i32 {
            return self.audio(from);
        }
        if from.packet.media_type != MediaType::Video as i32 {
            return Ok(());
        }
        let codec = from
            .packet
            .video_metadata
            .map(|m| m.codec)
            .unwrap_or_default();
        if !decodable(codec) {
            let name = VideoCodec::try_from(codec)
                .map(|c| c.as_str_name().to_owned())
                .unwrap_or_else(|_| format!("codec {codec}"));
            let key = (from.user.clone(), name.clone());
            if let Some(count) = self.undecodable.get_mut(&key) {
                *count += 1;
            } else if self.undecodable.len() < MAX_REPORTED {
                println!(
                    "cannot decode {name} video from {}: not recorded",
                    from.user
                );
                self.undecodable.insert(key, 1);
            }
            return Ok(());
        }
        let stream = StreamKey::camera(from.session);
        let print_frames = self.print_frames;
        let user = from.user.clone();
        let media = from.packet.clone();
        let sequence = media.video_metadata.map(|m| m.sequence).unwrap_or_default();
        let key = media.frame_type == "key";
        if self.participant(&from).is_none() {
            return Ok(());
        }
        for media in self.reorder.handle_frame(stream, sequence, key, media) {
            let track = self.tracks.get_mut(&user).expect("created above");
            match track.video(&media, codec) {
                Ok(Some(decoded)) => {
                    if decoded.created {
                        println!(
                            "video {user} {}x{} session {} -> {}",
                            decoded.picture.width,
                            decoded.picture.height,
                            from.session,
                            track
                                .path(if self.write_y4m { "y4m" } else { "webm" })
                                .display()
                        );
                    }
                    #[cfg(feature = "vpx")]
                    if let Some(mixer) = &mut self.mixer {
                        mixer.picture(&user, &decoded.picture);
                    }
                    if !decoded.recorded {
                        continue;
                    }
                    // The browser stamps frames with its page clock (performance.now()), not
                    // the wall clock: such a "latency" is not one and is left out.
                    let latency = unix_millis() - media.timestamp;
                    if self.latencies_ms.len() < MAX_LATENCIES && (0.0..60_000.0).contains(&latency)
                    {
                        self.latencies_ms.push(latency);
                    }
                    if print_frames {
                        let sequence = media.video_metadata.map(|m| m.sequence).unwrap_or_default();
                        println!("frame {user} {sequence} {latency:.1}");
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if track.errors == 1 {
                        eprintln!("videocall-cli: cannot decode a frame from {user}: {e}");
                    }
                    self.reorder.handle_decode_error(stream);
                    break;
                }
            }
        }
        // Only this stream's requests can be pending: each frame is handled to the end.
        while self.reorder.poll_keyframe_request().is_some() {
            handle.request_keyframe(user.clone());
        }
        Ok(())
    }

    fn audio(&mut self, from: MediaFrom) -> anyhow::Result<()> {
        if self.participant(&from).is_none() {
            return Ok(());
        }
        let track = self.tracks.get_mut(&from.user).expect("created above");
        let first = track.audio_frames == 0;
        let path = track.path("wav");
        #[cfg(feature = "vpx")]
        let mut mixer = self.mixer.as_mut();
        let recorded = track.audio(&from.packet, |silence, samples| {
            #[cfg(feature = "vpx")]
            if let Some(mixer) = &mut mixer {
                mixer.audio(&from.user, silence, samples);
            }
            #[cfg(not(feature = "vpx"))]
            let _ = (silence, samples);
        })?;
        if first && !recorded.is_empty() {
            println!(
                "audio {} session {} -> {}",
                from.user,
                from.session,
                path.display()
            );
        }
        if self.print_frames {
            for (sequence, silence) in recorded {
                println!("audio {} {sequence} silence {silence}", from.user);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        #[cfg(feature = "vpx")]
        if let Some(mixer) = self.mixer.take() {
            let (duration, video, audio) = mixer.finish(std::time::Instant::now())?;
            println!(
                "mixed {} ms: {video} video frames, {audio} audio frames -> {}",
                duration.as_millis(),
                self.out.join("meeting.webm").display()
            );
        }
        let mut users: Vec<_> = self.tracks.iter_mut().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        for (user, track) in users {
            let webm_ms = track.finish()?;
            let (late, skipped) = self
                .reorder
                .stream(&StreamKey::camera(track.session))
                .map_or((0, 0), |r| (r.late, r.skipped));
            println!(
                "received from {user}: {} frames -> {} (late {}, skipped {}, resized {}, decode errors {}, codec changes {})",
                track.frames,
                track
                    .path(if self.write_y4m { "y4m" } else { "webm" })
                    .display(),
                late,
                skipped,
                track.resized,
                track.errors,
                track.codec_changes,
            );
            if track.audio_frames + track.audio_errors > 0 {
                println!(
                    "audio from {user}: {} frames, {} ms -> {} (late {}, silence {} ms, decode errors {})",
                    track.audio_frames,
                    track.timeline.written * 1000 / u64::from(crate::audio::SAMPLE_RATE),
                    track.path("wav").display(),
                    track.timeline.late,
                    track.timeline.silence * 1000 / u64::from(crate::audio::SAMPLE_RATE),
                    track.audio_errors,
                );
            }
            if let Some(ms) = webm_ms {
                println!(
                    "recorded {user}: {ms} ms -> {}",
                    track.path("webm").display()
                );
            }
        }
        for ((user, codec), frames) in &self.undecodable {
            println!("not decoded from {user}: {frames} {codec} frames");
        }
        if self.over_cap_packets > 0 {
            println!(
                "not recorded: {} packets from {} participant(s) past the cap of {MAX_PARTICIPANTS}",
                self.over_cap_packets,
                self.over_cap.len()
            );
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
