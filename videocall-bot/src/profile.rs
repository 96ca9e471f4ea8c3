//! The media the bot sends: by default a 30 fps video stream of ≈ 500 kbit/s (a 7.5 KB
//! keyframe once a second, 1.9 KB deltas) and 50 audio packets/s of ≈ 100 B. Every payload
//! starts with a header carrying its send time, its sequence and whether it is counted in the
//! delivery figures, so receivers measure the relay hop and the loss.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// Marks bot payloads.
const MAGIC: &[u8; 4] = b"VCB1";
/// Header: magic, send time (µs since the bot's start), sequence, counted flag.
pub(crate) const HEADER: usize = 4 + 8 + 8 + 1;

/// What the header of a bot payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Send time, µs since the bot's start.
    pub(crate) sent_us: u64,
    /// The sender's sequence number of this stream.
    pub(crate) seq: u64,
    /// The sender counted this packet in the expected figures (it was sent inside the
    /// measurement window while the sender was settled in its meeting, see `churn.rs`):
    /// receivers count it as delivered only then.
    pub(crate) counted: bool,
}

/// Sizes and rates of the media profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Profile {
    pub(crate) fps: u32,
    pub(crate) keyframe_bytes: usize,
    pub(crate) delta_bytes: usize,
    pub(crate) audio_per_sec: u32,
    pub(crate) audio_bytes: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            fps: 30,
            keyframe_bytes: 7_500,
            delta_bytes: 1_900,
            audio_per_sec: 50,
            audio_bytes: 100,
        }
    }
}

impl Profile {
    pub(crate) fn frame_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.fps.max(1)))
    }

    pub(crate) fn audio_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.audio_per_sec.max(1)))
    }

    /// Whether frame `seq` is a keyframe (one a second).
    pub(crate) fn is_key(&self, seq: u64) -> bool {
        seq.is_multiple_of(u64::from(self.fps.max(1)))
    }
}

/// What pads a payload after its header.
pub(crate) const FILLER: u8 = 0x42;

/// The header of a payload carrying `stamp`.
pub(crate) fn stamp_bytes(stamp: Stamp) -> [u8; HEADER] {
    let mut head = [0u8; HEADER];
    head[..4].copy_from_slice(MAGIC);
    head[4..12].copy_from_slice(&stamp.sent_us.to_be_bytes());
    head[12..20].copy_from_slice(&stamp.seq.to_be_bytes());
    head[20] = u8::from(stamp.counted);
    head
}

/// A payload of `size` bytes (at least the header) carrying `stamp`.
pub(crate) fn payload(size: usize, stamp: Stamp) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(HEADER));
    buf.put_slice(&stamp_bytes(stamp));
    buf.resize(size.max(HEADER), FILLER);
    buf.freeze()
}

/// The stamp of a bot payload.
pub(crate) fn read_header(data: &[u8]) -> Option<Stamp> {
    if data.len() < HEADER || &data[..4] != MAGIC {
        return None;
    }
    Some(Stamp {
        sent_us: u64::from_be_bytes(data[4..12].try_into().ok()?),
        seq: u64::from_be_bytes(data[12..20].try_into().ok()?),
        counted: data[20] != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_send_time_and_sequence() {
        let stamp = Stamp {
            sent_us: 123_456,
            seq: 7,
            counted: true,
        };
        let p = payload(1900, stamp);
        assert_eq!(p.len(), 1900);
        assert_eq!(read_header(&p), Some(stamp));
        let uncounted = Stamp {
            counted: false,
            ..stamp
        };
        assert_eq!(read_header(&payload(50, uncounted)), Some(uncounted));
        assert_eq!(read_header(b"not a bot payload at all"), None);
        assert_eq!(payload(3, stamp).len(), HEADER);
    }

    #[test]
    fn the_default_profile_is_about_half_a_megabit() {
        let p = Profile::default();
        let bits = (p.keyframe_bytes + (p.fps as usize - 1) * p.delta_bytes) * 8;
        assert!((450_000..=550_000).contains(&bits), "{bits} bit/s");
        assert!(p.is_key(0) && p.is_key(30) && !p.is_key(1));
    }
}
