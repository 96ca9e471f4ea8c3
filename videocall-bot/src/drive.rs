//! One session of a bot participant, driven by the participant's own task.
//!
//! The protocol (join, heartbeats, RTT probes, subscriptions, reconnects, E2EE key exchange)
//! stays in `videocall-client`'s sans-IO [`Session`], as in every client. What changes against
//! the client's native driver is the path of media, the bulk of the traffic:
//!
//! - The task reads its socket itself ([`Link`]): no reader task, driver task and update
//!   channel between the socket and the counting, so no task hop per packet.
//! - A received packet is read by a header scan ([`crate::wire`]): a clear video or audio
//!   frame is counted straight from the borrowed bytes, never decoded into structs, copied or
//!   handed to the session. Everything else (session and meeting events, heartbeats, keys,
//!   presence, and every media frame while E2EE is on, which must be opened to read its stamp)
//!   goes to the [`Session`] as the client driver would hand it.
//! - A clear frame to send is encoded in place into the socket's send buffer
//!   ([`crate::wire::encode_media`]): no `MediaPacket`, no allocation, no channel. With E2EE on
//!   frames go through [`Session::send_media`], which seals them.
//!
//! Counters shared by all participants are added once per read, not once per packet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_client::reorder::{REORDER_FRAMES, ReorderBuffers};
use videocall_client::{Action, ClientConfig, Event, Session, Subscription};
use videocall_types::{
    MediaPacket, MediaType, PacketType, SessionId, StreamKey, UserId, VideoCodec, VideoMetadata,
};

use crate::args::PresenceMode;
use crate::churn::Settled;
use crate::link::{Link, LinkEnd};
use crate::participant::{Ended, Measured, Run, Seat, Totals, publisher_of, sees};
use crate::profile::{FILLER, Stamp, payload, read_header, stamp_bytes};
use videocall_bot::wire::{MediaHeader, OutKind, OutMedia, scan_media, scan_wrapper};

/// Most streams one participant reorders (one per publisher).
const MAX_STREAMS: usize = 1024;
/// A connection attempt that takes longer is given up (the session retries after its backoff).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What one session counts of the media it receives.
struct Receiver<'a> {
    slot: usize,
    publishers: usize,
    visible: usize,
    life: u64,
    settled: Option<Settled>,
    started: Instant,
    first_frame: bool,
    /// The frames are not decoded: the buffers only count what a decoder would have lost.
    reorder: ReorderBuffers<()>,
    measured: &'a mut Measured,
    totals: &'a Totals,
    /// Not yet added to `totals`.
    delivered: u64,
    window_delivered: u64,
    after_rejoin: u64,
    audio: u64,
    audio_window: u64,
}

impl Receiver<'_> {
    /// A video or audio frame from session `from` of user `user`, read at `now_us`.
    #[allow(clippy::too_many_arguments)]
    fn media(
        &mut self,
        now_us: u64,
        from: u64,
        user: &[u8],
        media_type: i32,
        data: &[u8],
        key: bool,
        sequence: Option<u64>,
    ) {
        let Some(stamp) = read_header(data) else {
            return;
        };
        let counted = stamp.counted && self.settled.is_some_and(|s| s.contains(stamp.sent_us));
        if media_type == MediaType::Video as i32 {
            self.delivered += 1;
            if let (Some(sequence), Some(session)) = (sequence, SessionId::from_wire(from)) {
                self.reorder
                    .handle_frame(StreamKey::camera(session), sequence, key, ());
            }
            if !self.first_frame {
                self.first_frame = true;
                let us = self.started.elapsed().as_micros();
                self.measured
                    .first_frames_us
                    .push(us.min(u128::from(u32::MAX)) as u32);
            }
            // With --visible a subscription briefly shows more than the rule while a
            // publisher is away: only what the rule expects counts.
            let sender = std::str::from_utf8(user).ok().and_then(publisher_of);
            if counted && sender.is_some_and(|k| sees(self.slot, k, self.publishers, self.visible))
            {
                self.window_delivered += 1;
                if self.life > 0 {
                    self.after_rejoin += 1;
                }
                let latency = now_us.saturating_sub(stamp.sent_us);
                self.measured
                    .latencies_us
                    .push(latency.min(u64::from(u32::MAX)) as u32);
            }
        } else if media_type == MediaType::Audio as i32 {
            self.audio += 1;
            if counted {
                self.audio_window += 1;
            }
        }
    }

    /// Adds what was counted since the last call to the shared totals.
    fn flush(&mut self) {
        let totals = self.totals;
        for (local, total) in [
            (&mut self.delivered, &totals.frames_delivered),
            (&mut self.window_delivered, &totals.window_delivered),
            (&mut self.after_rejoin, &totals.delivered_after_rejoin),
            (&mut self.audio, &totals.audio_delivered),
            (&mut self.audio_window, &totals.audio_window_delivered),
        ] {
            if *local > 0 {
                total.fetch_add(std::mem::take(local), Ordering::Relaxed);
            }
        }
    }
}

/// A clear video or audio frame from a peer, read in place: (sender session, sender user,
/// the frame). `None` for anything the session must see.
fn clear_media(bytes: &[u8]) -> Option<(u64, &[u8], MediaHeader<'_>)> {
    let wrapper = scan_wrapper(bytes).ok()?;
    if wrapper.packet_type != PacketType::Media as i32 || wrapper.session_id == 0 {
        return None;
    }
    let media = scan_media(wrapper.data).ok()?;
    let av =
        media.media_type == MediaType::Video as i32 || media.media_type == MediaType::Audio as i32;
    (av && !media.sealed).then_some((wrapper.session_id, wrapper.user_id, media))
}

/// One received packet: counted here if it is clear media (E2EE off), else the session's.
fn on_packet(
    bytes: &[u8],
    encrypt: bool,
    session: &mut Session,
    rx: &mut Receiver<'_>,
    now: Duration,
    now_us: u64,
) {
    if !encrypt && let Some((from, user, media)) = clear_media(bytes) {
        let key = media.frame_type == "key";
        rx.media(
            now_us,
            from,
            user,
            media.media_type,
            media.data,
            key,
            media.video_sequence,
        );
        return;
    }
    // A relay that sends garbage is reported by the session; the link stays.
    let _ = session.handle_packet(now, Bytes::copy_from_slice(bytes));
}

/// A frame due to be sent.
enum Wake {
    Video,
    Audio,
}

/// A periodic send, as a tokio `Interval` with `MissedTickBehavior::Skip` (a missed tick is
/// not made up), but read by the session's one timer.
struct Ticker {
    next: tokio::time::Instant,
    period: Duration,
}

impl Ticker {
    /// Ticking from now (the first tick is due at once).
    fn new(period: Duration) -> Self {
        Self {
            next: tokio::time::Instant::now(),
            period: period.max(Duration::from_micros(1)),
        }
    }

    /// Whether a tick is due at `now`; if so the next is scheduled, skipping missed ones.
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        if now < self.next {
            return false;
        }
        let behind = (now - self.next).as_nanos() / self.period.as_nanos();
        self.next += self.period * (behind as u32).saturating_add(1);
        true
    }
}

async fn link_io(link: &mut Option<Link>) -> Result<(), LinkEnd> {
    match link {
        Some(link) => link.io().await,
        None => std::future::pending().await,
    }
}

/// The link ended: the session reconnects (or ends, for a final close code).
fn lost(session: &mut Session, link: &mut Option<Link>, now: Duration, end: LinkEnd) {
    *link = None;
    match end {
        LinkEnd::Closed(code, reason) => session.handle_closed(now, code, reason),
        LinkEnd::Lost(reason) => session.handle_disconnected(now, reason),
    }
}

/// One session of a participant: `life` is its number (0 first), `length` how long it stays
/// once joined (`None`: until the run ends).
pub(crate) async fn session(
    seat: &Seat,
    run: &Run,
    life: u64,
    length: Option<Duration>,
    measured: &mut Measured,
) -> Ended {
    let (args, profile, timeline, totals) = (&run.args, run.profile, run.timeline, &*run.totals);
    let meeting = &seat.meeting;
    let user = match seat.publisher {
        Some(k) => format!("pub-{k}-{meeting}"),
        None => format!("sub-{}-{meeting}", seat.index),
    };
    let user = UserId::new(user).expect("generated ids are valid");
    let user_bytes = user.as_str().as_bytes().to_vec();
    let encrypt = seat.native.e2ee.is_some();
    let mut config = ClientConfig::new(user, meeting.clone());
    config.presence = args.presence == PresenceMode::Digest;
    let mut session = Session::with_identity(config, seat.native.e2ee.clone());
    let clock = Instant::now();
    session.handle_start(Duration::ZERO);
    let mut link: Option<Link> = None;
    let mut publishers_seen: Vec<(usize, SessionId)> = Vec::new();
    let mut video = Ticker::new(profile.frame_interval());
    let mut audio = Ticker::new(profile.audio_interval());
    let end = tokio::time::Instant::from_std(timeline.start + timeline.end);
    let drain = end + Duration::from_millis(500);
    // Set once joined: when the churn makes this session leave.
    let mut leave_at: Option<tokio::time::Instant> = None;
    let (mut seq, mut audio_seq, mut joined) = (0u64, 0u64, false);
    let unmuted = seat
        .publisher
        .is_some_and(|k| args.unmuted.is_none_or(|n| k < n));
    let (publishers, visible) = (args.publishers, args.visible);
    let mut rx = Receiver {
        slot: seat.slot,
        publishers,
        visible,
        life,
        settled: length.is_none().then_some(Settled::ALWAYS),
        started: clock,
        first_frame: false,
        reorder: ReorderBuffers::new(REORDER_FRAMES, MAX_STREAMS),
        measured,
        totals,
        delivered: 0,
        window_delivered: 0,
        after_rejoin: 0,
        audio: 0,
        audio_window: 0,
    };
    let timer = tokio::time::sleep_until(drain);
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    let ended = 'run: loop {
        while let Some(action) = session.poll_action() {
            // Dropping a link closes it; a leave closes it properly after the loop.
            link = None;
            if let Action::Connect { .. } = action {
                let path = session.lobby_path();
                let opened =
                    tokio::time::timeout(CONNECT_TIMEOUT, Link::connect(&seat.native, &path)).await;
                match opened {
                    Ok(Ok(opened)) => {
                        link = Some(opened);
                        session.handle_connected(clock.elapsed());
                    }
                    Ok(Err(error)) if error.is_certificate() => {
                        eprintln!("{}: certificate refused: {error}", seat.index);
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        break 'run Ended::Failed;
                    }
                    Ok(Err(error)) => {
                        session.handle_disconnected(clock.elapsed(), error.to_string())
                    }
                    Err(_) => session.handle_disconnected(clock.elapsed(), "connection timed out"),
                }
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Joined { .. } => {
                    // A reconnect inside one life is not a new life.
                    if !joined {
                        totals.joins.fetch_add(1, Ordering::Relaxed);
                        totals.connected.fetch_add(1, Ordering::Relaxed);
                        if life == 0 {
                            totals.joined.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(length) = length {
                            let joined_us = timeline.now_us();
                            let settled =
                                Settled::of_life(joined_us, joined_us + length.as_micros() as u64);
                            rx.settled = Some(settled);
                            seat.presence.set(seat.slot, Some(settled));
                            let at = tokio::time::Instant::now() + length;
                            leave_at = Some(at);
                        }
                    }
                    joined = true;
                }
                Event::PeerJoined {
                    session: peer,
                    user,
                } => {
                    if visible > 0
                        && let Some(k) = publisher_of(user.as_str())
                    {
                        publishers_seen.retain(|(other, _)| *other != k);
                        publishers_seen.push((k, peer));
                        publishers_seen.sort_unstable();
                        let shown = publishers_seen.iter().take(visible).map(|(_, s)| *s);
                        session.subscribe(&Subscription::only(shown.map(StreamKey::camera)));
                    }
                }
                Event::Media(media) => {
                    let packet = &media.packet;
                    rx.media(
                        timeline.now_us(),
                        media.session.get(),
                        media.user.as_str().as_bytes(),
                        packet.media_type,
                        &packet.data,
                        packet.frame_type == "key",
                        packet.video_metadata.map(|m| m.sequence),
                    );
                }
                Event::Congestion { .. } => {
                    totals.congestion.fetch_add(1, Ordering::Relaxed);
                }
                Event::Ended(why) => {
                    // A bot is never removed, and each seat is its own user: the run is wrong.
                    eprintln!("{}: the relay ended the session: {why}", seat.index);
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    break 'run Ended::Failed;
                }
                _ => {}
            }
        }
        rx.flush();
        match &mut link {
            Some(open) => {
                while let Some(bytes) = session.poll_transmit() {
                    open.send(&bytes);
                }
                if let Err(end) = open.flush() {
                    lost(&mut session, &mut link, clock.elapsed(), end);
                    continue;
                }
            }
            // Nothing to send on (the session clears what it queued when it reconnects).
            None => while session.poll_transmit().is_some() {},
        }
        // One timer for everything due (the end, a churn leave, the session's deadline, the
        // next frames to send), reset only when that instant moves: timers registered and
        // polled per wake-up cost more than reading a packet.
        let deadline = session
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(clock + t));
        let now = tokio::time::Instant::now();
        let publishing = joined && now < end && seat.publisher.is_some();
        let mut wake_at = drain;
        for at in [leave_at, deadline].into_iter().flatten() {
            wake_at = wake_at.min(at);
        }
        if publishing {
            wake_at = wake_at.min(video.next);
            if unmuted {
                wake_at = wake_at.min(audio.next);
            }
        }
        if armed != Some(wake_at) {
            armed = Some(wake_at);
            timer.as_mut().reset(wake_at);
        }
        let io = tokio::select! {
            _ = &mut timer => None,
            result = link_io(&mut link) => Some(result),
        };
        let wakes: &[Wake] = match io {
            Some(Ok(())) => {
                let (now, now_us) = (clock.elapsed(), timeline.now_us());
                let open = link.as_mut().expect("io came from the link");
                let read = open
                    .packets(|bytes| on_packet(bytes, encrypt, &mut session, &mut rx, now, now_us));
                if let Err(end) = read {
                    lost(&mut session, &mut link, now, end);
                }
                continue;
            }
            Some(Err(end)) => {
                lost(&mut session, &mut link, clock.elapsed(), end);
                continue;
            }
            None => {
                // Re-armed at the next iteration, even for the same instant.
                armed = None;
                let now = tokio::time::Instant::now();
                if now >= drain {
                    break Ended::Drained;
                }
                if leave_at.is_some_and(|at| now >= at) {
                    break Ended::Left;
                }
                if deadline.is_some_and(|at| now >= at) {
                    session.handle_timeout(clock.elapsed());
                }
                match (
                    publishing && video.take(now),
                    publishing && unmuted && audio.take(now),
                ) {
                    (true, true) => &[Wake::Video, Wake::Audio],
                    (true, false) => &[Wake::Video],
                    (false, true) => &[Wake::Audio],
                    (false, false) => &[],
                }
            }
        };
        for wake in wakes {
            match wake {
                Wake::Video | Wake::Audio => {
                    let is_video = matches!(wake, Wake::Video);
                    let sent_us = timeline.now_us();
                    let counted = timeline.in_window(sent_us)
                        && rx.settled.is_some_and(|s| s.contains(sent_us));
                    let k = seat.publisher.expect("only publishers send");
                    if counted {
                        let receivers = if is_video {
                            seat.presence
                                .receivers(seat.slot, sent_us, |r| sees(r, k, publishers, visible))
                        } else {
                            // Audio goes to everyone else in the meeting, whatever they subscribed to.
                            seat.presence.receivers(seat.slot, sent_us, |_| true)
                        };
                        let expected = if is_video {
                            &totals.expected
                        } else {
                            &totals.audio_expected
                        };
                        expected.fetch_add(receivers, Ordering::Relaxed);
                    }
                    let (kind, stamp, size, timestamp) = if is_video {
                        let key = profile.is_key(seq);
                        let size = if key {
                            profile.keyframe_bytes
                        } else {
                            profile.delta_bytes
                        };
                        let kind = OutKind::Video { sequence: seq, key };
                        (
                            kind,
                            Stamp {
                                sent_us,
                                seq,
                                counted,
                            },
                            size,
                            sent_us as f64 / 1000.0,
                        )
                    } else {
                        let stamp = Stamp {
                            sent_us,
                            seq: audio_seq,
                            counted,
                        };
                        (OutKind::Audio, stamp, profile.audio_bytes, 0.0)
                    };
                    send_frame(
                        &mut session,
                        &mut link,
                        encrypt,
                        &user_bytes,
                        kind,
                        stamp,
                        size,
                        timestamp,
                    );
                    if is_video {
                        totals.frames_sent.fetch_add(1, Ordering::Relaxed);
                        seq += 1;
                    } else {
                        audio_seq += 1;
                    }
                }
            }
        }
    };
    rx.flush();
    if let Some(e2ee) = session.e2ee() {
        rx.measured.e2ee_dropped += e2ee.stats().dropped.total();
    }
    rx.measured.mismatch_drops += session.mismatch_drops();
    let (late, skipped) = rx.reorder.totals();
    rx.measured.reorder_late += late;
    rx.measured.reorder_skipped += skipped;
    if joined {
        totals.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if ended == Ended::Left {
        totals.leaves.fetch_add(1, Ordering::Relaxed);
    }
    session.leave();
    if let Some(open) = link.take() {
        open.close().await;
    }
    ended
}

/// Sends one frame: encoded in place when clear, sealed by the session when E2EE is on. A
/// frame while not joined (reconnecting) is dropped, as the client driver drops it.
#[allow(clippy::too_many_arguments)]
fn send_frame(
    session: &mut Session,
    link: &mut Option<Link>,
    encrypt: bool,
    user: &[u8],
    kind: OutKind,
    stamp: Stamp,
    size: usize,
    timestamp: f64,
) {
    let Some(ours) = session.session_id() else {
        return;
    };
    if encrypt {
        let media = match kind {
            OutKind::Video { sequence, key } => MediaPacket {
                media_type: MediaType::Video as i32,
                data: payload(size, stamp),
                frame_type: if key { "key" } else { "delta" }.into(),
                timestamp,
                video_metadata: Some(VideoMetadata {
                    sequence,
                    codec: VideoCodec::Vp8 as i32,
                }),
                ..Default::default()
            },
            OutKind::Audio => MediaPacket {
                media_type: MediaType::Audio as i32,
                data: payload(size, stamp),
                frame_type: "key".into(),
                ..Default::default()
            },
        };
        // Written at the top of the loop with what else the session queued.
        let _ = session.send_media(media);
        return;
    }
    let Some(open) = link else {
        return;
    };
    let head = stamp_bytes(stamp);
    open.send_media(&OutMedia {
        kind,
        user,
        session_id: ours.get(),
        head: &head,
        size,
        filler: FILLER,
        timestamp,
    });
    // A broken socket shows at the next read.
    let _ = open.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use videocall_types::PacketWrapper;
    use videocall_types::proto::SealedMedia;

    fn wrapped(media: &MediaPacket, packet_type: PacketType, session_id: u64) -> Vec<u8> {
        PacketWrapper {
            packet_type: packet_type as i32,
            user_id: Bytes::from_static(b"pub-1-m"),
            data: Bytes::from(media.encode_to_vec()),
            session_id,
        }
        .encode_to_vec()
    }

    #[test]
    fn only_clear_video_and_audio_from_a_session_skip_the_session() {
        let video = MediaPacket {
            media_type: MediaType::Video as i32,
            data: payload(
                100,
                Stamp {
                    sent_us: 5,
                    seq: 2,
                    counted: true,
                },
            ),
            frame_type: "key".into(),
            video_metadata: Some(VideoMetadata {
                sequence: 2,
                codec: 1,
            }),
            ..Default::default()
        };
        let bytes = wrapped(&video, PacketType::Media, 7);
        let (from, user, media) = clear_media(&bytes).expect("clear video");
        assert_eq!((from, user), (7, &b"pub-1-m"[..]));
        assert_eq!(media.video_sequence, Some(2));
        assert_eq!(read_header(media.data).map(|s| s.seq), Some(2));
        let audio = MediaPacket {
            media_type: MediaType::Audio as i32,
            ..video.clone()
        };
        assert!(clear_media(&wrapped(&audio, PacketType::Media, 7)).is_some());
        // The session's: sealed media, heartbeats, other packet types, no sender, garbage.
        let sealed = MediaPacket {
            sealed: Some(SealedMedia::default()),
            ..video.clone()
        };
        assert!(clear_media(&wrapped(&sealed, PacketType::Media, 7)).is_none());
        let heartbeat = MediaPacket {
            media_type: MediaType::Heartbeat as i32,
            ..video.clone()
        };
        assert!(clear_media(&wrapped(&heartbeat, PacketType::Media, 7)).is_none());
        assert!(clear_media(&wrapped(&video, PacketType::Chat, 7)).is_none());
        assert!(clear_media(&wrapped(&video, PacketType::Media, 0)).is_none());
        assert!(clear_media(&[0x1a, 0x05, 1]).is_none());
    }
}
