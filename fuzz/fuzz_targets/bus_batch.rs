//! `videocall_relay::bus_batch`: what a node reads from NATS on `room.<meeting>.batch`. The first
//! input byte picks the mode: odd, the rest is a batch as received, compared with a reference
//! reader of the format (a batch that decodes re-encodes to the same bytes); even, the rest is a
//! list of packets `BatchWriter` takes (tails made of digits and dots), which must come back
//! unchanged and in order.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use videocall_fuzz::input::Reader;
use videocall_relay::bus_batch::{
    BatchWriter, MAX_BATCH_BYTES, MAX_ENTRIES, MAX_TAIL, VERSION, decode, split_subject,
};

/// What a reader of the format makes of `batch`: every (tail, payload), or None if any entry is
/// damaged (refused whole).
fn reference(batch: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let (&version, mut rest) = batch.split_first()?;
    if version != VERSION || rest.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if entries.len() == MAX_ENTRIES {
            return None;
        }
        let (&tail_len, after) = rest.split_first()?;
        let tail = after.get(..usize::from(tail_len))?;
        let tail = std::str::from_utf8(tail).ok()?.to_owned();
        // A tail is what `split_subject` leaves after `room.<meeting>.`.
        let subject = format!("room.m.{tail}");
        if tail.len() > MAX_TAIL || split_subject(&subject) != Some(("room.m", tail.as_str())) {
            return None;
        }
        let after = &after[usize::from(tail_len)..];
        let len = u32::from_le_bytes(after.get(..4)?.try_into().ok()?) as usize;
        let payload = after.get(4..4 + len)?.to_vec();
        rest = &after[4 + len..];
        entries.push((tail, payload));
    }
    Some(entries)
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mode = r.u8();
    if mode & 1 == 1 {
        let batch = Bytes::copy_from_slice(r.rest());
        let got = decode(&batch).ok().map(|entries| {
            entries
                .iter()
                .map(|(tail, payload)| ((*tail).to_owned(), payload.to_vec()))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, reference(&batch), "reference reader");
        if let Some(entries) = got {
            assert!(!entries.is_empty() && entries.len() <= MAX_ENTRIES);
            // The format is canonical: what decodes is what a writer of those packets writes
            // (inputs are far below the writer's byte cap).
            let mut writer = BatchWriter::new();
            for (tail, payload) in &entries {
                assert!(writer.push(tail, payload), "a decoded entry is taken again");
            }
            assert_eq!(writer.finish(), batch, "re-encoded");
        }
    } else {
        let mut writer = BatchWriter::new();
        let mut taken = Vec::new();
        while !r.is_empty() {
            // Any bytes as a tail: the writer takes subject tails only.
            let tail = String::from_utf8_lossy(r.short_bytes()).into_owned();
            let payload = r.short_bytes();
            let valid = split_subject(&format!("room.m.{tail}")) == Some(("room.m", tail.as_str()));
            let fits = writer.fits(&tail, payload);
            assert_eq!(writer.push(&tail, payload), valid && fits, "{tail:?}");
            if valid && fits {
                taken.push((tail, payload.to_vec()));
            }
        }
        assert!(writer.entries() == taken.len());
        if taken.is_empty() {
            return;
        }
        let full = writer.is_full();
        let batch = writer.finish();
        assert!(full || batch.len() < MAX_BATCH_BYTES);
        let got: Vec<(String, Vec<u8>)> = decode(&batch)
            .expect("a written batch decodes")
            .iter()
            .map(|(tail, payload)| ((*tail).to_owned(), payload.to_vec()))
            .collect();
        assert_eq!(got, taken);
    }
});
