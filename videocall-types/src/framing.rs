//! The WebTransport framed stream: a relay asked with `?framed=1` sends a client everything on
//! one long-lived unidirectional stream instead of one stream per packet. The stream starts with
//! [`FRAMED_STREAM_MARKER`], then carries per packet a 4-byte big-endian length and that many
//! bytes of one encoded `PacketWrapper`. No encoded `PacketWrapper` starts with 0 (field number 0
//! does not exist), so a reader tells a framed stream from a one-packet stream by its first byte.
//!
//! [`push_frame`] writes a frame (relay side); [`Deframer`] reads them back from chunks as they
//! arrive (clients, native and browser), whatever the chunk boundaries.

use bytes::{Buf, Bytes, BytesMut};

/// First byte of a framed stream.
pub const FRAMED_STREAM_MARKER: u8 = 0;
/// A framed packet longer than this is an error (the relay's own limit is 4 MiB by default).
pub const MAX_FRAMED_PACKET: usize = 64 << 20;

/// Appends `packet` to `buf` as one frame: its length (4 bytes, big-endian), then its bytes.
pub fn push_frame(buf: &mut Vec<u8>, packet: &[u8]) {
    // The relay refuses packets over its max frame size, far below 4 GiB.
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(packet);
}

/// A framed stream that cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame announced more than [`MAX_FRAMED_PACKET`] bytes.
    #[error("framed packet of {0} bytes (at most {MAX_FRAMED_PACKET})")]
    TooLong(usize),
}

/// Reassembles the packets of a framed stream (after its marker) from chunks.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    /// Adds the next chunk read from the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete packet, `None` until more bytes arrive.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, FramingError> {
        let Some(header) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_FRAMED_PACKET {
            return Err(FramingError::TooLong(len));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_whatever_the_chunk_boundaries() {
        let packets: Vec<Vec<u8>> = vec![vec![8, 1, 2], vec![], vec![0x5a; 70_000], vec![3]];
        let mut stream = Vec::new();
        for p in &packets {
            push_frame(&mut stream, p);
        }
        for chunk_size in [1, 3, 4, 5, 1000, stream.len()] {
            let mut frames = Deframer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(chunk_size) {
                frames.push(chunk);
                while let Some(p) = frames.next_packet().unwrap() {
                    got.push(p.to_vec());
                }
            }
            assert_eq!(got, packets, "chunks of {chunk_size}");
        }
    }

    #[test]
    fn an_oversize_frame_is_an_error_not_an_allocation() {
        let mut frames = Deframer::default();
        frames.push(&u32::MAX.to_be_bytes());
        assert_eq!(
            frames.next_packet(),
            Err(FramingError::TooLong(u32::MAX as usize))
        );
    }
}
