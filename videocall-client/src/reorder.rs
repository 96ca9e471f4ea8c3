//! Putting video frames back in order before decoding. WebTransport carries each packet on its
//! own stream and the relay forwards packets as their streams complete, so a small delta can
//! overtake the large keyframe before it; a video decoder must still be fed in order.
//!
//! Sans-IO and clock-free (it counts frames, not milliseconds), so the CLI, the bot and the
//! browser use the same code: frames go in with their sequence number (`VideoMetadata.sequence`,
//! which senders number without gaps), frames ready to decode come out. [`Reorder`] is one
//! stream; [`ReorderBuffers`] keys them by [`StreamKey`] (a publisher's camera or screen) with a
//! cap on how many streams it holds.

use std::collections::{BTreeMap, HashMap};

use videocall_types::{SessionId, StreamKey};

/// Frames held while a gap may still fill (≈ 270 ms at 30 fps): what the CLI, the bot and the
/// browser hold per stream.
pub const REORDER_FRAMES: usize = 8;

/// A reorder buffer for one video stream.
#[derive(Debug)]
pub struct Reorder<T> {
    next: Option<u64>,
    pending: BTreeMap<u64, (bool, T)>,
    waiting_for_key: bool,
    want_keyframe: bool,
    max_pending: usize,
    /// Frames that came after their turn had passed.
    pub late: u64,
    /// Frames dropped because a frame they depend on never came.
    pub skipped: u64,
}

impl<T> Reorder<T> {
    /// Holds at most `max_pending` frames waiting for a gap to fill; starts at a keyframe.
    pub fn new(max_pending: usize) -> Self {
        Self {
            next: None,
            pending: BTreeMap::new(),
            waiting_for_key: true,
            want_keyframe: false,
            max_pending,
            late: 0,
            skipped: 0,
        }
    }

    /// Frame `sequence` arrived (`key`: decodable on its own); returns the frames now ready,
    /// in order.
    pub fn handle_frame(&mut self, sequence: u64, key: bool, frame: T) -> Vec<T> {
        if self.next.is_some_and(|next| sequence < next) {
            self.late += 1;
            return Vec::new();
        }
        self.pending.insert(sequence, (key, frame));
        let mut ready = Vec::new();
        loop {
            if self.waiting_for_key && !self.start_at_keyframe() {
                if self.pending.len() > self.max_pending {
                    self.drop_pending();
                }
                self.want_keyframe = true;
                return ready;
            }
            while let Some(entry) = self.pending.first_entry() {
                if Some(*entry.key()) != self.next {
                    break;
                }
                ready.push(entry.remove().1);
                self.next = self.next.map(|n| n + 1);
            }
            if self.pending.len() <= self.max_pending {
                return ready;
            }
            // The gap will not fill: go on from the next keyframe (buffered or asked for).
            self.waiting_for_key = true;
        }
    }

    /// The decoder failed: drop what is buffered and start again at a keyframe.
    pub fn handle_decode_error(&mut self) {
        self.drop_pending();
        self.waiting_for_key = true;
        self.want_keyframe = true;
    }

    /// True once after the stream started needing a keyframe from its sender.
    pub fn poll_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.want_keyframe)
    }

    /// Moves `next` to the first buffered keyframe, dropping what precedes it.
    fn start_at_keyframe(&mut self) -> bool {
        let Some(key_at) = self
            .pending
            .iter()
            .find(|(_, (key, _))| *key)
            .map(|(sequence, _)| *sequence)
        else {
            return false;
        };
        let kept = self.pending.split_off(&key_at);
        self.skipped += self.pending.len() as u64;
        self.pending = kept;
        self.next = Some(key_at);
        self.waiting_for_key = false;
        true
    }

    fn drop_pending(&mut self) {
        self.skipped += self.pending.len() as u64;
        self.pending.clear();
        self.next = None;
    }
}

/// The reorder buffers of every stream a client receives.
#[derive(Debug)]
pub struct ReorderBuffers<T> {
    streams: HashMap<StreamKey, Reorder<T>>,
    max_pending: usize,
    max_streams: usize,
    keyframe_requests: Vec<StreamKey>,
    /// Frames of a new stream refused because [`ReorderBuffers::new`]'s `max_streams` were held.
    pub refused: u64,
}

impl<T> ReorderBuffers<T> {
    /// At most `max_streams` streams of at most `max_pending` frames each (a meeting's streams
    /// come from peers: both are caps on what peers can make us hold).
    pub fn new(max_pending: usize, max_streams: usize) -> Self {
        Self {
            streams: HashMap::new(),
            max_pending,
            max_streams,
            keyframe_requests: Vec::new(),
            refused: 0,
        }
    }

    /// Frame `sequence` of `stream` arrived; returns the frames of that stream now ready, in
    /// order. A stream is created at its first frame (it starts at a keyframe).
    pub fn handle_frame(
        &mut self,
        stream: StreamKey,
        sequence: u64,
        key: bool,
        frame: T,
    ) -> Vec<T> {
        let max_pending = self.max_pending;
        if !self.streams.contains_key(&stream) && self.streams.len() >= self.max_streams {
            self.refused += 1;
            return Vec::new();
        }
        let reorder = self
            .streams
            .entry(stream)
            .or_insert_with(|| Reorder::new(max_pending));
        let ready = reorder.handle_frame(sequence, key, frame);
        if reorder.poll_keyframe_request() {
            self.keyframe_requests.push(stream);
        }
        ready
    }

    /// The decoder of `stream` failed: start it again at a keyframe.
    pub fn handle_decode_error(&mut self, stream: StreamKey) {
        if let Some(reorder) = self.streams.get_mut(&stream) {
            reorder.handle_decode_error();
            self.keyframe_requests.push(stream);
        }
    }

    /// A session left (or was replaced by a reconnect): its streams are dropped.
    pub fn remove_session(&mut self, session: SessionId) {
        self.streams.retain(|key, _| key.session != session);
        self.keyframe_requests.retain(|key| key.session != session);
    }

    /// The next stream whose sender should be asked for a keyframe.
    pub fn poll_keyframe_request(&mut self) -> Option<StreamKey> {
        self.keyframe_requests.pop()
    }

    /// One stream's buffer (its `late` and `skipped` counters).
    pub fn stream(&self, stream: &StreamKey) -> Option<&Reorder<T>> {
        self.streams.get(stream)
    }

    /// Frames that came after their turn, and frames dropped because one they depend on never
    /// came, over the streams held now.
    pub fn totals(&self) -> (u64, u64) {
        self.streams.values().fold((0, 0), |(late, skipped), r| {
            (late + r.late, skipped + r.skipped)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(session: u64) -> StreamKey {
        StreamKey::camera(SessionId::from_wire(session).expect("not zero"))
    }

    #[test]
    fn streams_are_reordered_apart_and_ask_for_keyframes_apart() {
        let mut buffers = ReorderBuffers::new(4, 8);
        let (a, b) = (camera(1), camera(2));
        assert_eq!(buffers.handle_frame(a, 0, true, "a0"), vec!["a0"]);
        // b's first frame is a delta: b (only) needs a keyframe.
        assert!(buffers.handle_frame(b, 5, false, "b5").is_empty());
        assert_eq!(buffers.poll_keyframe_request(), Some(b));
        assert_eq!(buffers.poll_keyframe_request(), None);
        assert!(buffers.handle_frame(a, 2, false, "a2").is_empty());
        assert_eq!(buffers.handle_frame(a, 1, false, "a1"), vec!["a1", "a2"]);
        assert_eq!(buffers.handle_frame(b, 6, true, "b6"), vec!["b6"]);
        let screen = StreamKey::screen(a.session);
        assert_eq!(buffers.handle_frame(screen, 0, true, "s0"), vec!["s0"]);
        buffers.remove_session(a.session);
        assert!(buffers.stream(&a).is_none() && buffers.stream(&screen).is_none());
        assert!(buffers.stream(&b).is_some());
    }

    #[test]
    fn streams_past_the_cap_are_refused_and_counted() {
        let mut buffers = ReorderBuffers::new(4, 2);
        for s in 1..=2 {
            assert_eq!(buffers.handle_frame(camera(s), 0, true, s), vec![s]);
        }
        assert!(buffers.handle_frame(camera(3), 0, true, 3).is_empty());
        assert_eq!(buffers.refused, 1);
        // Known streams go on.
        assert_eq!(buffers.handle_frame(camera(1), 1, false, 11), vec![11]);
    }

    #[test]
    fn a_decode_error_restarts_the_stream_at_a_keyframe() {
        let mut buffers = ReorderBuffers::new(4, 2);
        let a = camera(1);
        assert_eq!(buffers.handle_frame(a, 0, true, 0), vec![0]);
        buffers.handle_decode_error(a);
        assert_eq!(buffers.poll_keyframe_request(), Some(a));
        assert!(buffers.handle_frame(a, 1, false, 1).is_empty());
        assert_eq!(buffers.handle_frame(a, 2, true, 2), vec![2]);
        assert_eq!(buffers.totals(), (0, 1));
    }

    #[test]
    fn frames_in_order_come_out_at_once() {
        let mut reorder = Reorder::new(4);
        assert_eq!(reorder.handle_frame(0, true, 0), vec![0]);
        assert_eq!(reorder.handle_frame(1, false, 1), vec![1]);
        assert!(!reorder.poll_keyframe_request());
    }

    #[test]
    fn a_delta_that_overtakes_its_keyframe_waits_for_it() {
        let mut reorder = Reorder::new(4);
        assert_eq!(reorder.handle_frame(1, false, 1), Vec::<i32>::new());
        assert_eq!(reorder.handle_frame(0, true, 0), vec![0, 1]);
        assert_eq!(reorder.handle_frame(3, false, 3), Vec::<i32>::new());
        assert_eq!(reorder.handle_frame(2, false, 2), vec![2, 3]);
        assert_eq!((reorder.late, reorder.skipped), (0, 0));
    }

    #[test]
    fn a_lost_frame_leads_to_a_keyframe_request_and_resumes_at_the_keyframe() {
        let mut reorder = Reorder::new(2);
        assert_eq!(reorder.handle_frame(0, true, 0), vec![0]);
        for n in 2..5 {
            assert!(reorder.handle_frame(n, false, n).is_empty());
        }
        assert!(reorder.poll_keyframe_request());
        assert_eq!(reorder.handle_frame(5, false, 5), Vec::<u64>::new());
        assert_eq!(reorder.handle_frame(6, true, 6), vec![6]);
        assert_eq!(reorder.handle_frame(7, false, 7), vec![7]);
        assert_eq!(reorder.handle_frame(1, false, 1), Vec::<u64>::new());
        assert_eq!(reorder.late, 1);
        assert!(reorder.skipped >= 3);
    }

    #[test]
    fn a_stream_joined_mid_way_starts_at_its_first_keyframe() {
        let mut reorder = Reorder::new(8);
        assert!(reorder.handle_frame(40, false, 40).is_empty());
        assert!(reorder.poll_keyframe_request());
        assert_eq!(reorder.handle_frame(42, true, 42), vec![42]);
        assert_eq!(reorder.handle_frame(41, false, 41), Vec::<u64>::new());
        assert_eq!(reorder.skipped, 1);
        assert_eq!(reorder.late, 1);
    }
}
