//! `videocall_types::framing::Deframer` fed a stream in chunks of any size, compared with a
//! reference reader of the format (4-byte big-endian length, then that many bytes; a length over
//! `MAX_FRAMED_PACKET` is an error). The first input byte picks the mode: odd, the rest is the
//! stream itself (after the chunk sizes); even, the rest is a list of packets written with
//! `push_frame`, which must come back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_fuzz::input::Reader;
use videocall_types::framing::{Deframer, FramingError, MAX_FRAMED_PACKET, push_frame};

/// What a reader of the format sees in `stream`: the complete packets, then an error if a
/// header announces too much.
fn reference(stream: &[u8]) -> (Vec<Vec<u8>>, Option<FramingError>) {
    let mut packets = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 4 {
        let len = u32::from_be_bytes(stream[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len > MAX_FRAMED_PACKET {
            let max = MAX_FRAMED_PACKET;
            return (packets, Some(FramingError::TooLong { len, max }));
        }
        if stream.len() - at - 4 < len {
            break;
        }
        packets.push(stream[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    (packets, None)
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mode = r.u8();
    // Chunk sizes, 1..=256 each, cycled.
    let sizes: Vec<usize> = r.short_bytes().iter().map(|b| *b as usize + 1).collect();
    let (stream, expected) = if mode & 1 == 1 {
        let stream = r.rest().to_vec();
        let expected = reference(&stream);
        (stream, expected)
    } else {
        let mut stream = Vec::new();
        let mut packets = Vec::new();
        while !r.is_empty() {
            let packet = r.short_bytes();
            push_frame(&mut stream, packet);
            packets.push(packet.to_vec());
        }
        assert_eq!(
            reference(&stream),
            (packets.clone(), None),
            "reference model"
        );
        (stream, (packets, None))
    };

    let mut deframer = Deframer::default();
    let mut got = Vec::new();
    let mut error = None;
    let mut at = 0;
    let mut chunk = 0;
    'stream: while at < stream.len() {
        let size = sizes
            .get(chunk % sizes.len().max(1))
            .copied()
            .unwrap_or(stream.len());
        let end = (at + size).min(stream.len());
        deframer.push(&stream[at..end]);
        at = end;
        chunk += 1;
        loop {
            match deframer.next_packet() {
                Ok(Some(packet)) => got.push(packet.to_vec()),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'stream;
                }
            }
        }
    }
    assert_eq!((got, error), expected);
});
