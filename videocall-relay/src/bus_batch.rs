//! The batch format the NATS bus coalesces a meeting's publications into: one NATS message
//! carries several packets, each with the part of its subject that follows `room.<meeting>.`.
//!
//! NATS costs per message (a server routing decision and a delivery per subscriber, a parse, an
//! allocation and a wake-up in each receiving client) much more than per byte, so a node sends
//! a meeting's packets of the last moment together rather than one message each.
//!
//! ```text
//! batch := VERSION entry+
//! entry := tail_len:u8  tail:[u8; tail_len]  payload_len:u32 (little endian)  payload
//! ```
//!
//! A batch goes on `room.<meeting>.batch` (session ids are numbers, so `batch` is never one),
//! where the meeting's one subscription (`room.<meeting>.>`) receives it; the receiver rebuilds
//! each packet's subject as `room.<meeting>.<tail>`. Bytes from the bus are not trusted: a batch
//! that does not decode completely, or holds more than [`MAX_ENTRIES`] packets, is refused whole.
//!
//! The format is sans-IO and has no async dependency (the NATS bus, feature `nats`, uses it); it
//! is public so that the fuzz workspace can feed [`decode`] (target `bus_batch`).

use bytes::{BufMut, Bytes, BytesMut};

/// The format's version, the first byte of every batch. A different one is refused.
pub const VERSION: u8 = 1;
/// The last subject token of a batch.
pub const BATCH_TOKEN: &str = "batch";
/// A batch is sent once it holds this many bytes (or [`MAX_ENTRIES`] packets, or its window
/// closed). 64 KiB is a few video frames or ~50 audio packets: most of the per-message saving,
/// while one batch stays far below NATS' default 1 MiB `max_payload` and within one read of the
/// server's socket buffer. A single packet larger than this travels alone.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Most packets in one batch, sent or accepted: 64 KiB of the smallest real packets (a few
/// dozen bytes each) stays below it, and it bounds the work one message from the bus causes.
pub const MAX_ENTRIES: usize = 1024;
/// Longest subject tail: `<origin>.<target>`, two session ids of at most 16 digits each.
pub const MAX_TAIL: usize = 40;
/// Bytes an entry costs besides its tail and payload.
const ENTRY_OVERHEAD: usize = 1 + 4;

/// Why a batch from the bus was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Empty, or a version this node does not speak.
    #[error("unknown batch version")]
    Version,
    /// An entry runs past the end of the batch.
    #[error("truncated batch entry")]
    Truncated,
    /// A tail is empty, too long, or not a subject's characters.
    #[error("bad subject tail in batch")]
    Tail,
    /// More than [`MAX_ENTRIES`] packets.
    #[error("too many packets in one batch")]
    TooMany,
}

/// Splits a publication's subject into its meeting part (`room.<meeting>`) and the tail that
/// goes into the batch; `None` for subjects that are not a meeting's (published as they are).
pub fn split_subject(subject: &str) -> Option<(&str, &str)> {
    let first = subject.find('.')?;
    let second = first + 1 + subject[first + 1..].find('.')?;
    let tail = &subject[second + 1..];
    valid_tail(tail.as_bytes()).then(|| (&subject[..second], tail))
}

/// Whether `tail` may follow `room.<meeting>.`: one or more subject tokens (no wildcards, no
/// spaces, no empty token), not the batch token itself.
fn valid_tail(tail: &[u8]) -> bool {
    !tail.is_empty()
        && tail.len() <= MAX_TAIL
        && tail != BATCH_TOKEN.as_bytes()
        && tail
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && tail.split(|b| *b == b'.').all(|token| !token.is_empty())
}

/// Builds one batch.
#[derive(Debug)]
pub struct BatchWriter {
    buf: BytesMut,
    entries: usize,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        let mut buf = BytesMut::with_capacity(4096);
        buf.put_u8(VERSION);
        Self { buf, entries: 0 }
    }

    /// Whether the packet fits (a first packet always does).
    pub fn fits(&self, tail: &str, payload: &[u8]) -> bool {
        self.entries == 0
            || (self.entries < MAX_ENTRIES
                && self.buf.len() + ENTRY_OVERHEAD + tail.len() + payload.len() <= MAX_BATCH_BYTES)
    }

    /// Whether it should go now (full).
    pub fn is_full(&self) -> bool {
        self.entries >= MAX_ENTRIES || self.buf.len() >= MAX_BATCH_BYTES
    }

    /// Appends a packet if its tail is one [`split_subject`] gives and it [fits](Self::fits);
    /// false (and the batch unchanged) otherwise.
    pub fn push(&mut self, tail: &str, payload: &[u8]) -> bool {
        let Ok(len) = u32::try_from(payload.len()) else {
            return false;
        };
        if !valid_tail(tail.as_bytes()) || !self.fits(tail, payload) {
            return false;
        }
        self.buf
            .reserve(ENTRY_OVERHEAD + tail.len() + payload.len());
        // valid_tail bounds the tail to MAX_TAIL (< 256) bytes.
        self.buf.put_u8(tail.len() as u8);
        self.buf.put_slice(tail.as_bytes());
        self.buf.put_u32_le(len);
        self.buf.put_slice(payload);
        self.entries += 1;
        true
    }

    /// How many packets it holds.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The encoded batch.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Decodes a whole batch into `(tail, payload)` pairs (payloads share `batch`'s memory), or
/// refuses it whole: a node never acts on half of a damaged batch.
pub fn decode(batch: &Bytes) -> Result<Vec<(&str, Bytes)>, BatchError> {
    let bytes = batch.as_ref();
    if bytes.first() != Some(&VERSION) {
        return Err(BatchError::Version);
    }
    let mut at = 1;
    let mut entries = Vec::new();
    while at < bytes.len() {
        if entries.len() == MAX_ENTRIES {
            return Err(BatchError::TooMany);
        }
        let tail_len = usize::from(bytes[at]);
        at += 1;
        let tail = bytes.get(at..at + tail_len).ok_or(BatchError::Truncated)?;
        if !valid_tail(tail) {
            return Err(BatchError::Tail);
        }
        let tail = std::str::from_utf8(tail).expect("valid_tail admits ASCII only");
        at += tail_len;
        let len = bytes.get(at..at + 4).ok_or(BatchError::Truncated)?;
        let len = u32::from_le_bytes(len.try_into().expect("a 4-byte slice")) as usize;
        at += 4;
        if bytes.len() - at < len {
            return Err(BatchError::Truncated);
        }
        entries.push((tail, batch.slice(at..at + len)));
        at += len;
    }
    if entries.is_empty() {
        return Err(BatchError::Truncated);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(packets: &[(&str, &[u8])]) -> Bytes {
        let mut writer = BatchWriter::new();
        for (tail, payload) in packets {
            assert!(writer.push(tail, payload));
        }
        writer.finish()
    }

    #[test]
    fn packets_come_back_in_order_with_their_subject_tails() {
        let batch = encode(&[("17", b"one"), ("17.4", b""), ("9", &[0; 3000])]);
        let got = decode(&batch).unwrap();
        let got: Vec<(&str, &[u8])> = got.iter().map(|(t, p)| (*t, p.as_ref())).collect();
        assert_eq!(
            got,
            [("17", &b"one"[..]), ("17.4", b""), ("9", &[0; 3000][..])]
        );
    }

    #[test]
    fn meeting_subjects_split_and_others_do_not() {
        assert_eq!(split_subject("room.m-1.17"), Some(("room.m-1", "17")));
        assert_eq!(split_subject("room.m.17.4"), Some(("room.m", "17.4")));
        for other in [
            "room",
            "room.m",
            "room.m.",
            "room.m.a b",
            "room.m.batch",
            "x.y.>",
        ] {
            assert_eq!(split_subject(other), None, "{other}");
        }
    }

    #[test]
    fn a_batch_closes_at_its_byte_and_packet_caps_but_takes_one_large_packet() {
        let mut writer = BatchWriter::new();
        let big = vec![1; MAX_BATCH_BYTES * 2];
        assert!(writer.fits("1", &big), "a first packet always fits");
        assert!(writer.push("1", &[0; 1000]));
        assert!(!writer.fits("1", &big));
        assert!(!writer.push("1", &big), "refused, not appended");
        assert!(!writer.push("1.>", b""), "not a subject tail");
        assert_eq!(writer.entries(), 1);
        let mut writer = BatchWriter::new();
        while writer.push("1", b"") {}
        assert_eq!(writer.entries(), MAX_ENTRIES);
        assert!(writer.is_full());
        assert_eq!(decode(&writer.finish()).unwrap().len(), MAX_ENTRIES);
    }

    #[test]
    fn damaged_batches_are_refused_whole() {
        let good = encode(&[("1", b"abc"), ("2", b"def")]);
        assert_eq!(decode(&Bytes::new()), Err(BatchError::Version));
        assert_eq!(
            decode(&Bytes::from_static(&[2, 1])),
            Err(BatchError::Version)
        );
        assert_eq!(
            decode(&Bytes::from_static(&[VERSION])),
            Err(BatchError::Truncated)
        );
        // A cut between two entries leaves a shorter, whole batch; anywhere else it is refused.
        let boundary = 1 + ENTRY_OVERHEAD + 1 + 3;
        for cut in 1..good.len() {
            match decode(&good.slice(..cut)) {
                Ok(entries) => assert_eq!((cut, entries.len()), (boundary, 1)),
                Err(_) => assert_ne!(cut, boundary),
            }
        }
        let mut bad_tail = good.to_vec();
        bad_tail[2] = b'>';
        assert_eq!(decode(&bad_tail.into()), Err(BatchError::Tail));
        let mut huge_len = good.to_vec();
        huge_len[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge_len.into()), Err(BatchError::Truncated));
        let mut too_many = vec![VERSION];
        for _ in 0..=MAX_ENTRIES {
            too_many.extend_from_slice(&[1, b'1', 0, 0, 0, 0]);
        }
        assert_eq!(decode(&too_many.into()), Err(BatchError::TooMany));
    }

    /// xorshift64*: deterministic bytes without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn random_batches_round_trip_and_random_corruption_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let count = 1 + (next(&mut state) % 40) as usize;
            let packets: Vec<(String, Vec<u8>)> = (0..count)
                .map(|_| {
                    let tail = match next(&mut state) % 2 {
                        0 => format!("{}", next(&mut state) >> 11),
                        _ => format!("{}.{}", next(&mut state) >> 11, next(&mut state) >> 11),
                    };
                    let len = (next(&mut state) % 1500) as usize;
                    (tail, (0..len).map(|_| next(&mut state) as u8).collect())
                })
                .collect();
            let mut writer = BatchWriter::new();
            for (tail, payload) in &packets {
                writer.push(tail, payload);
            }
            let taken = writer.entries();
            let batch = writer.finish();
            let got = decode(&batch).unwrap();
            assert_eq!(got.len(), taken);
            for ((tail, payload), (want_tail, want)) in got.iter().zip(&packets) {
                assert_eq!((*tail, payload.as_ref()), (want_tail.as_str(), &want[..]));
            }
            // Flip, cut or extend at random: a clean refusal or a decode, never a panic, and
            // never more packets than bytes allow.
            let mut damaged = batch.to_vec();
            match next(&mut state) % 3 {
                0 => {
                    let at = (next(&mut state) as usize) % damaged.len();
                    damaged[at] ^= 1 << (next(&mut state) % 8);
                }
                1 => damaged.truncate((next(&mut state) as usize) % damaged.len()),
                _ => damaged.extend((0..next(&mut state) % 64).map(|_| next(&mut state) as u8)),
            }
            if let Ok(entries) = decode(&damaged.into()) {
                assert!(entries.len() <= MAX_ENTRIES);
            }
        }
    }
}
