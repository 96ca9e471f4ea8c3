//! Putting one stream's frames back in order before decoding. WebTransport carries each packet
//! on its own stream and the relay forwards packets as their streams complete, so a small delta
//! can overtake the large keyframe before it; H.264 must still be decoded in order.
//!
//! Sans-IO: frames go in with their sequence number, frames ready to decode come out.

use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

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
