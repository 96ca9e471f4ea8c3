//! One participant of the bot: its seat in a meeting, its sessions (one, or with `--churn` one
//! after another), what it publishes and what it measures, and the counters all share.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use videocall_client::native::{Client, NativeConfig, Update};
use videocall_client::reorder::{REORDER_FRAMES, ReorderBuffers};
use videocall_client::{ClientConfig, Event, Subscription};
use videocall_types::{
    MediaPacket, MediaType, MeetingId, SessionId, StreamKey, UserId, VideoCodec, VideoMetadata,
};

use crate::args::Args;
use crate::churn::{Presence, Rng, Settled};
use crate::profile::{Profile, Stamp, payload, read_header};

/// Counters shared by every participant.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    /// Participants that joined at least once.
    pub(crate) joined: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Every join, first joins and rejoins after churn.
    pub(crate) joins: AtomicU64,
    /// Leaves the churn asked for.
    pub(crate) leaves: AtomicU64,
    /// Sessions joined now.
    pub(crate) connected: AtomicI64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) frames_delivered: AtomicU64,
    /// Counted (video frame, receiver) pairs: what should be delivered (see `churn.rs`).
    pub(crate) expected: AtomicU64,
    pub(crate) window_delivered: AtomicU64,
    /// Counted video frames delivered to a session that was not its participant's first.
    pub(crate) delivered_after_rejoin: AtomicU64,
    pub(crate) audio_delivered: AtomicU64,
    pub(crate) audio_expected: AtomicU64,
    pub(crate) audio_window_delivered: AtomicU64,
    pub(crate) congestion: AtomicU64,
}

/// The timeline of a run, relative to `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeline {
    pub(crate) start: Instant,
    /// Frames sent from here on are measured…
    pub(crate) window_from: Duration,
    /// …until here.
    pub(crate) window_to: Duration,
    /// Publishing stops here.
    pub(crate) end: Duration,
}

impl Timeline {
    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    pub(crate) fn in_window(&self, sent_us: u64) -> bool {
        let sent = Duration::from_micros(sent_us);
        sent >= self.window_from && sent < self.window_to
    }
}

/// What one participant measured, over all its sessions.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) latencies_us: Vec<u32>,
    /// Join → first video frame, once per session.
    pub(crate) first_frames_us: Vec<u32>,
    /// E2EE: frames that did not open (no key yet, …) and media refused as not encrypted.
    pub(crate) e2ee_dropped: u64,
    pub(crate) mismatch_drops: u64,
    /// Video frames a decoder could not have used: late, or skipped for a gap.
    pub(crate) reorder_late: u64,
    pub(crate) reorder_skipped: u64,
}

/// Most streams one participant reorders (one per publisher).
const MAX_STREAMS: usize = 1024;

/// Whether participant `receiver` of a meeting (publishers first, then subscribers) receives
/// publisher `k`'s video: everyone but `k` itself, or with `--visible` only the first `visible`
/// publishers (for a publisher: the first `visible` of the others).
pub(crate) fn sees(receiver: usize, k: usize, publishers: usize, visible: usize) -> bool {
    if receiver == k {
        return false;
    }
    if visible == 0 {
        return true;
    }
    if receiver >= publishers {
        return k < visible;
    }
    // Publisher `receiver` lists the other publishers in order and takes the first `visible`.
    (if k < receiver { k } else { k - 1 }) < visible
}

/// The publisher index in a bot user id (`pub-<k>-<meeting>`).
pub(crate) fn publisher_of(user: &str) -> Option<usize> {
    user.strip_prefix("pub-")?.split('-').next()?.parse().ok()
}

/// Where one participant sits: its meeting, its place in it, and how it connects.
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    /// Over the whole bot.
    pub(crate) index: usize,
    /// Within its meeting (publishers first).
    pub(crate) slot: usize,
    pub(crate) publisher: Option<usize>,
    pub(crate) meeting: MeetingId,
    pub(crate) presence: Arc<Presence>,
    pub(crate) native: NativeConfig,
}

/// Why one session of a participant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The churn made it leave; it joins again after a pause.
    Left,
    /// The run is over.
    Drained,
    /// It cannot connect (a refused certificate) or its driver stopped.
    Failed,
}

/// Everything a participant's sessions share.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) args: Arc<Args>,
    pub(crate) profile: Profile,
    pub(crate) timeline: Timeline,
    pub(crate) totals: Arc<Totals>,
}

/// One participant for the whole run: one session, or with `--churn` a session after another.
pub(crate) async fn participant(seat: Seat, run: Run) -> Measured {
    let mut measured = Measured::default();
    let churn = run.args.churn;
    let end = tokio::time::Instant::from_std(run.timeline.start + run.timeline.end);
    let mut rng = Rng::new(run.args.seed.wrapping_add(seat.index as u64));
    if churn.is_none() {
        // Registered before the window opens (joins happen during the ramp): a participant
        // that joins late or not at all counts as loss, as it should.
        seat.presence.set(seat.slot, Some(Settled::ALWAYS));
    }
    for life in 0.. {
        let length = churn.map(|span| span.draw(&mut rng));
        let ended = session(&seat, &run, life, length, &mut measured).await;
        if churn.is_some() {
            seat.presence.set(seat.slot, None);
        }
        if ended != Ended::Left {
            break;
        }
        let back = tokio::time::Instant::now() + run.args.churn_pause.draw(&mut rng);
        if back >= end {
            break;
        }
        tokio::time::sleep_until(back).await;
    }
    measured
}

/// One session of a participant: `life` is its number (0 first), `length` how long it stays
/// once joined (`None`: until the run ends).
async fn session(
    seat: &Seat,
    run: &Run,
    life: u64,
    length: Option<Duration>,
    measured: &mut Measured,
) -> Ended {
    let (args, profile, timeline, totals) = (&run.args, run.profile, run.timeline, &run.totals);
    let meeting = &seat.meeting;
    let user = match seat.publisher {
        Some(k) => format!("pub-{k}-{meeting}"),
        None => format!("sub-{}-{meeting}", seat.index),
    };
    let config = ClientConfig::new(
        UserId::new(user).expect("generated ids are valid"),
        meeting.clone(),
    );
    let started = Instant::now();
    let mut client = Client::start(config, seat.native.clone());
    let handle = client.handle().clone();
    let mut publishers_seen: Vec<(usize, SessionId)> = Vec::new();
    let mut video = tokio::time::interval(profile.frame_interval());
    let mut audio = tokio::time::interval(profile.audio_interval());
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let end = tokio::time::Instant::from_std(timeline.start + timeline.end);
    let drain = end + Duration::from_millis(500);
    // Set once joined: when the churn makes this session leave.
    let mut leave_at: Option<tokio::time::Instant> = None;
    let mut settled = if length.is_none() {
        Some(Settled::ALWAYS)
    } else {
        None
    };
    let (mut seq, mut audio_seq, mut joined, mut first_frame) = (0u64, 0u64, false, false);
    // The frames are not decoded: the buffers only count what a decoder would have lost.
    let mut reorder = ReorderBuffers::<()>::new(REORDER_FRAMES, MAX_STREAMS);
    let unmuted = seat
        .publisher
        .is_some_and(|k| args.unmuted.is_none_or(|n| k < n));
    let (publishers, visible) = (args.publishers, args.visible);
    let ended = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(drain) => break Ended::Drained,
            _ = tokio::time::sleep_until(leave_at.unwrap_or(drain)), if leave_at.is_some() => break Ended::Left,
            _ = video.tick(), if joined && seat.publisher.is_some() && tokio::time::Instant::now() < end => {
                let k = seat.publisher.expect("only publishers tick video");
                let key = profile.is_key(seq);
                let sent_us = timeline.now_us();
                let counted = timeline.in_window(sent_us) && settled.is_some_and(|s| s.contains(sent_us));
                if counted {
                    let receivers = seat.presence.receivers(seat.slot, sent_us, |r| sees(r, k, publishers, visible));
                    totals.expected.fetch_add(receivers, Ordering::Relaxed);
                }
                let size = if key { profile.keyframe_bytes } else { profile.delta_bytes };
                handle.send_media(MediaPacket {
                    media_type: MediaType::Video as i32,
                    data: payload(size, Stamp { sent_us, seq, counted }),
                    frame_type: if key { "key" } else { "delta" }.into(),
                    timestamp: sent_us as f64 / 1000.0,
                    video_metadata: Some(VideoMetadata { sequence: seq, codec: VideoCodec::Vp8 as i32 }),
                    ..Default::default()
                });
                totals.frames_sent.fetch_add(1, Ordering::Relaxed);
                seq += 1;
            }
            _ = audio.tick(), if joined && unmuted && tokio::time::Instant::now() < end => {
                let sent_us = timeline.now_us();
                let counted = timeline.in_window(sent_us) && settled.is_some_and(|s| s.contains(sent_us));
                if counted {
                    // Audio goes to everyone else in the meeting, whatever they subscribed to.
                    let receivers = seat.presence.receivers(seat.slot, sent_us, |_| true);
                    totals.audio_expected.fetch_add(receivers, Ordering::Relaxed);
                }
                handle.send_media(MediaPacket {
                    media_type: MediaType::Audio as i32,
                    data: payload(profile.audio_bytes, Stamp { sent_us, seq: audio_seq, counted }),
                    frame_type: "key".into(),
                    ..Default::default()
                });
                audio_seq += 1;
            }
            update = client.next_update() => match update {
                None => break Ended::Failed,
                Some(Update::Session(Event::Joined { .. })) => {
                    // A reconnect of the driver inside one life is not a new life.
                    if !joined {
                        totals.joins.fetch_add(1, Ordering::Relaxed);
                        totals.connected.fetch_add(1, Ordering::Relaxed);
                        if life == 0 {
                            totals.joined.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(length) = length {
                            let joined_us = timeline.now_us();
                            let life = Settled::of_life(joined_us, joined_us + length.as_micros() as u64);
                            settled = Some(life);
                            seat.presence.set(seat.slot, settled);
                            leave_at = Some(tokio::time::Instant::now() + length);
                        }
                    }
                    joined = true;
                }
                Some(Update::Session(Event::PeerJoined { session, user })) => {
                    if visible > 0 && let Some(k) = publisher_of(user.as_str()) {
                        publishers_seen.retain(|(other, _)| *other != k);
                        publishers_seen.push((k, session));
                        publishers_seen.sort_unstable();
                        let shown = publishers_seen.iter().take(visible).map(|(_, s)| *s);
                        handle.subscribe(Subscription::only(shown.map(StreamKey::camera)));
                    }
                }
                Some(Update::Session(Event::Media(media))) => {
                    let now_us = timeline.now_us();
                    let Some(stamp) = read_header(&media.packet.data) else { continue };
                    let counted = stamp.counted && settled.is_some_and(|s| s.contains(stamp.sent_us));
                    match MediaType::try_from(media.packet.media_type) {
                        Ok(MediaType::Video) => {
                            totals.frames_delivered.fetch_add(1, Ordering::Relaxed);
                            if let Some(meta) = media.packet.video_metadata {
                                let key = media.packet.frame_type == "key";
                                reorder.handle_frame(StreamKey::camera(media.session), meta.sequence, key, ());
                            }
                            if !first_frame {
                                first_frame = true;
                                measured.first_frames_us.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                            }
                            // With --visible a subscription briefly shows more than the rule
                            // while a publisher is away: only what the rule expects counts.
                            if counted && publisher_of(media.user.as_str()).is_some_and(|k| sees(seat.slot, k, publishers, visible)) {
                                totals.window_delivered.fetch_add(1, Ordering::Relaxed);
                                if life > 0 {
                                    totals.delivered_after_rejoin.fetch_add(1, Ordering::Relaxed);
                                }
                                measured.latencies_us.push(now_us.saturating_sub(stamp.sent_us).min(u64::from(u32::MAX)) as u32);
                            }
                        }
                        Ok(MediaType::Audio) => {
                            totals.audio_delivered.fetch_add(1, Ordering::Relaxed);
                            if counted {
                                totals.audio_window_delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {}
                    }
                }
                Some(Update::Session(Event::Congestion { .. })) => {
                    totals.congestion.fetch_add(1, Ordering::Relaxed);
                }
                Some(Update::Session(Event::Ended(why))) => {
                    // A bot is never removed, and each seat is its own user: the run is wrong.
                    eprintln!("{}: the relay ended the session: {why}", seat.index);
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    break Ended::Failed;
                }
                Some(Update::TransportFailed { error, .. }) if error.is_certificate() => {
                    eprintln!("{}: certificate refused: {error}", seat.index);
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                    break Ended::Failed;
                }
                Some(_) => {}
            },
        }
    };
    let status = client.status();
    measured.e2ee_dropped += status.e2ee_dropped;
    measured.mismatch_drops += status.mismatch_drops;
    let (late, skipped) = reorder.totals();
    measured.reorder_late += late;
    measured.reorder_skipped += skipped;
    if joined {
        totals.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if ended == Ended::Left {
        totals.leaves.fetch_add(1, Ordering::Relaxed);
    }
    handle.leave().await;
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many participants of a meeting receive publisher `k`'s video.
    fn receivers_of(k: usize, publishers: usize, subscribers: usize, visible: usize) -> usize {
        (0..publishers + subscribers)
            .filter(|&r| sees(r, k, publishers, visible))
            .count()
    }

    #[test]
    fn receivers_follow_the_visible_limit() {
        // Everyone sees everyone.
        assert_eq!(receivers_of(0, 3, 5, 0), 7);
        // 970 viewers see the first 9 publishers; publishers see the first 9 others.
        assert_eq!(receivers_of(0, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(8, 30, 970, 9), 970 + 29);
        assert_eq!(receivers_of(9, 30, 970, 9), 9);
        assert_eq!(receivers_of(29, 30, 970, 9), 0);
        // A subscriber sees the first 9; publisher 3 sees 0..=9 but itself.
        assert!(sees(30, 8, 30, 9) && !sees(30, 9, 30, 9));
        assert!(sees(3, 9, 30, 9) && !sees(3, 3, 30, 9) && !sees(3, 10, 30, 9));
    }

    #[test]
    fn publisher_indices_come_from_bot_user_ids() {
        assert_eq!(publisher_of("pub-12-bot-3"), Some(12));
        assert_eq!(publisher_of("sub-4-bot-0"), None);
        assert_eq!(publisher_of("pub-x-bot-0"), None);
    }
}
