//! One session's outbound queue: what the relay has handed to the session's socket and not yet
//! heard written, accounted per class so that each class has its own budget.
//!
//! Three budgets, so that no class can starve another:
//! - **video** (camera, screen, unreadable media): `queue_video_bytes`; when full, a stream skips
//!   to its next keyframe and the publisher hears of congestion;
//! - **audio**: shares the video budget plus `queue_audio_headroom_bytes` that only audio may use,
//!   so audio keeps flowing while video is being dropped;
//! - **control** (keys, meeting events, heartbeats, diagnostics, keyframe requests):
//!   `queue_control_bytes` of its own. One participant's junk control traffic fills only this,
//!   never the media budget.
//!
//! The socket reports bytes written without saying of which packets; packets are written in the
//! order they were handed out, so a FIFO of (class, length) attributes every written byte to its
//! class. The FIFO holds at most one entry per queued packet, and the queue's bytes are bounded.

use std::collections::{HashSet, VecDeque};
use videocall_types::{SessionId, StreamKey};

use crate::classify::Class;
use crate::config::RelayConfig;
use crate::metrics::{DropReason, Metrics};

/// The budget a packet is accounted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    Media,
    Control,
}

impl Budget {
    pub(crate) fn of(class: Class) -> Self {
        match class {
            Class::Video { .. } | Class::Opaque | Class::Audio => Budget::Media,
            Class::Control | Class::KeyframeRequest | Class::Rtt => Budget::Control,
        }
    }
}

/// What happened to one packet offered to one receiver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Queued,
    /// Not subscribed to this publisher's video.
    Filtered,
    /// Dropped; the publisher should hear of congestion and (for video) send a keyframe.
    Dropped {
        congestion: bool,
        want_keyframe: bool,
        /// Dropped because this receiver's (or the node's) queue is full, not by policy.
        full: bool,
    },
}

impl Verdict {
    const fn dropped(congestion: bool, want_keyframe: bool, full: bool) -> Self {
        Verdict::Dropped {
            congestion,
            want_keyframe,
            full,
        }
    }
}

/// The node-wide view the queue needs: bytes queued across all sessions and its bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeQueue {
    pub(crate) queued: usize,
    pub(crate) max: usize,
}

impl NodeQueue {
    /// Whether `len` more bytes fit: media up to the bound, audio and control up to an eighth
    /// more (they are small and keep a meeting usable while video is shed).
    fn fits(&self, len: usize, budget_class: Class) -> bool {
        let max = match budget_class {
            Class::Video { .. } | Class::Opaque => self.max,
            _ => self.max + self.max / 8,
        };
        self.queued + len <= max
    }
}

/// One session's outbound queue accounting.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    media: usize,
    control: usize,
    /// Every packet handed out and not yet reported written: (budget, bytes not yet written).
    fifo: VecDeque<(Budget, u32)>,
    /// Streams waiting for a keyframe.
    skipping: HashSet<StreamKey>,
}

impl OutQueue {
    /// Bytes handed out and not yet written, in all classes.
    pub(crate) fn queued(&self) -> usize {
        self.media + self.control
    }

    pub(crate) fn skipping(&self) -> Vec<StreamKey> {
        let mut v: Vec<_> = self.skipping.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Marks a stream as waiting for its next keyframe.
    pub(crate) fn skip(&mut self, stream: StreamKey) {
        self.skipping.insert(stream);
    }

    /// Forgets the streams of a publisher that left.
    pub(crate) fn forget_publisher(&mut self, publisher: SessionId) {
        self.skipping.remove(&StreamKey::camera(publisher));
        self.skipping.remove(&StreamKey::screen(publisher));
    }

    /// The congestion policy: whether `len` more bytes of `class` from `publisher` fit, counting
    /// them if so. (Video the receiver does not subscribe to never reaches here.)
    pub(crate) fn admit(
        &mut self,
        publisher: SessionId,
        len: usize,
        class: Class,
        node: NodeQueue,
        config: &RelayConfig,
        metrics: &mut Metrics,
    ) -> Verdict {
        let node_room = node.fits(len, class);
        match class {
            Class::Video { screen, key } => {
                let stream = StreamKey::of_video(publisher, screen);
                let video_room = self.media + len <= config.queue_video_bytes && node_room;
                let skipping = self.skipping.contains(&stream);
                if skipping {
                    if !key {
                        metrics.drop(DropReason::SkipToKeyframe);
                        return Verdict::dropped(false, false, false);
                    }
                    if video_room {
                        self.skipping.remove(&stream);
                    }
                }
                if !video_room {
                    metrics.drop(if node_room {
                        DropReason::Congestion
                    } else {
                        DropReason::NodeQueueFull
                    });
                    self.skipping.insert(stream);
                    return Verdict::dropped(true, true, true);
                }
            }
            Class::Opaque => {
                if self.media + len > config.queue_video_bytes || !node_room {
                    metrics.drop(if node_room {
                        DropReason::Congestion
                    } else {
                        DropReason::NodeQueueFull
                    });
                    return Verdict::dropped(true, false, true);
                }
            }
            Class::Audio => {
                let cap = config.queue_video_bytes + config.queue_audio_headroom_bytes;
                if self.media + len > cap || !node_room {
                    // Not reported to the sender: its audio is not what fills the queue, the
                    // receiver has simply stopped reading.
                    metrics.drop(if node_room {
                        DropReason::QueueOverflow
                    } else {
                        DropReason::NodeQueueFull
                    });
                    return Verdict::dropped(false, false, true);
                }
            }
            Class::Control | Class::KeyframeRequest | Class::Rtt => {
                if self.control + len > config.queue_control_bytes || !node_room {
                    metrics.drop(if node_room {
                        DropReason::ControlOverflow
                    } else {
                        DropReason::NodeQueueFull
                    });
                    return Verdict::dropped(false, false, true);
                }
            }
        }
        let budget = Budget::of(class);
        match budget {
            Budget::Media => self.media += len,
            Budget::Control => self.control += len,
        }
        // A packet is at most `max_frame_bytes` (far below 4 GiB) or one the relay made.
        self.fifo
            .push_back((budget, u32::try_from(len).unwrap_or(u32::MAX)));
        metrics.packets_out += 1;
        metrics.bytes_out += len as u64;
        Verdict::Queued
    }

    /// `bytes` were written to the socket: frees them from the oldest packets' budgets.
    /// Returns how many bytes were freed (less than `bytes` if the socket over-reports).
    pub(crate) fn transmitted(&mut self, mut bytes: usize) -> usize {
        let mut freed = 0;
        while bytes > 0 {
            let Some((budget, len)) = self.fifo.front_mut() else {
                break;
            };
            let take = (*len as usize).min(bytes);
            *len -= take as u32;
            bytes -= take;
            freed += take;
            let counter = match budget {
                Budget::Media => &mut self.media,
                Budget::Control => &mut self.control,
            };
            *counter = counter.saturating_sub(take);
            if *len == 0 {
                self.fifo.pop_front();
            }
        }
        if self.fifo.is_empty() {
            // Over-reports and rounding leave nothing behind.
            self.media = 0;
            self.control = 0;
            // Bound the memory of a queue that once held many small packets.
            if self.fifo.capacity() > 1024 {
                self.fifo.shrink_to(64);
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RelayConfig {
        RelayConfig {
            queue_video_bytes: 1000,
            queue_audio_headroom_bytes: 200,
            queue_control_bytes: 300,
            ..RelayConfig::default()
        }
    }

    const NODE: NodeQueue = NodeQueue {
        queued: 0,
        max: usize::MAX / 2,
    };

    #[test]
    fn control_fills_its_own_budget_and_never_the_video_one() {
        let (c, mut m) = (config(), Metrics::default());
        let mut q = OutQueue::default();
        let p = SessionId::new(1, 1);
        for _ in 0..3 {
            assert_eq!(
                q.admit(p, 100, Class::Control, NODE, &c, &mut m),
                Verdict::Queued
            );
        }
        assert!(matches!(
            q.admit(p, 100, Class::Control, NODE, &c, &mut m),
            Verdict::Dropped { full: true, .. }
        ));
        let video = Class::Video {
            screen: false,
            key: true,
        };
        assert_eq!(q.admit(p, 1000, video, NODE, &c, &mut m), Verdict::Queued);
        assert_eq!(m.drops(DropReason::ControlOverflow), 1);
        assert_eq!(m.drops(DropReason::Congestion), 0);
    }

    #[test]
    fn written_bytes_free_the_budget_of_the_packets_written_first() {
        let (c, mut m) = (config(), Metrics::default());
        let mut q = OutQueue::default();
        let p = SessionId::new(1, 1);
        q.admit(p, 300, Class::Control, NODE, &c, &mut m);
        q.admit(p, 900, Class::Audio, NODE, &c, &mut m);
        assert_eq!((q.media, q.control), (900, 300));
        assert_eq!(q.transmitted(400), 400);
        assert_eq!((q.media, q.control), (800, 0));
        assert_eq!(q.transmitted(10_000), 800);
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn the_node_bound_sheds_video_first() {
        let (c, mut m) = (config(), Metrics::default());
        let mut q = OutQueue::default();
        let p = SessionId::new(1, 1);
        let node = NodeQueue {
            queued: 800,
            max: 800,
        };
        let video = Class::Video {
            screen: false,
            key: true,
        };
        assert!(matches!(
            q.admit(p, 10, video, node, &c, &mut m),
            Verdict::Dropped { full: true, .. }
        ));
        assert_eq!(
            q.admit(p, 10, Class::Audio, node, &c, &mut m),
            Verdict::Queued
        );
        assert_eq!(m.drops(DropReason::NodeQueueFull), 1);
    }
}
