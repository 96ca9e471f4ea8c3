//! The WebTransport framed stream: a relay asked with `?framed=1` sends a client everything on
//! one long-lived unidirectional stream instead of one stream per packet. The stream starts with
//! [`FRAMED_STREAM_MARKER`], then carries per packet a 4-byte big-endian length and that many
//! bytes of one encoded `PacketWrapper`. No encoded `PacketWrapper` starts with 0 (field number 0
//! does not exist), so a reader tells a framed stream from a one-packet stream by its first byte.
//!
//! [`push_frame`] writes a frame (relay side); [`Deframer`] reads frames back. [`UniStreamReader`] reads any incoming
//! unidirectional stream, sans-IO: bytes in as they arrive ([`UniStreamReader::handle_chunk`],
//! [`UniStreamReader::handle_end`]), packets out ([`UniStreamReader::poll_packet`]), whatever
//! the chunk boundaries, whichever of the two framings the relay chose. Every client reads
//! through it (native, browser, the test kit), so the framings are parsed in one place.
//!
//! It lives here rather than in `videocall-client` because the test kit, which the client's own
//! tests use, must read WebTransport too without depending on the client.

use bytes::{Buf, Bytes, BytesMut};

/// First byte of a framed stream.
pub const FRAMED_STREAM_MARKER: u8 = 0;
/// A packet longer than this is an error by default (the relay's own limit is 4 MiB by default;
/// a client that knows its relay's limit passes it to [`UniStreamReader::new`]).
pub const MAX_FRAMED_PACKET: usize = 64 << 20;

/// Appends `packet` to `buf` as one frame: its length (4 bytes, big-endian), then its bytes.
pub fn push_frame(buf: &mut Vec<u8>, packet: &[u8]) {
    // The relay refuses packets over its max frame size, far below 4 GiB.
    let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(packet);
}

/// A stream that cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A packet (announced by a frame header, or a one-packet stream so far) is longer than the
    /// reader's limit.
    #[error("packet of {len} bytes or more (at most {max})")]
    TooLong {
        /// Its length, or what was read of it.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended {0} bytes into an unfinished frame")]
    Truncated(usize),
}

/// Reassembles the packets of a framed stream (after its marker) from chunks.
///
/// Memory is bounded by the limit, never by what a header claims: bytes are buffered as they
/// arrive, and a header announcing more than the limit is an error before anything is reserved
/// for it.
#[derive(Debug)]
pub struct Deframer {
    buf: BytesMut,
    max_packet: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new(MAX_FRAMED_PACKET)
    }
}

impl Deframer {
    /// A deframer refusing packets longer than `max_packet`.
    pub fn new(max_packet: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_packet,
        }
    }

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
        if len > self.max_packet {
            return Err(FramingError::TooLong {
                len,
                max: self.max_packet,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes held that are not a complete packet yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// What a stream turned out to be, once its first byte arrived.
#[derive(Debug)]
enum Mode {
    /// No byte yet.
    Unknown,
    /// One packet, complete at the end of the stream.
    Single(BytesMut),
    /// The framed stream: length-prefixed packets.
    Framed(Deframer),
    /// Ended or failed: nothing more comes out.
    Done,
}

/// Reads one incoming unidirectional stream, framed or not (see the module docs).
#[derive(Debug)]
pub struct UniStreamReader {
    mode: Mode,
    max_packet: usize,
    ready: Option<Bytes>,
}

impl Default for UniStreamReader {
    fn default() -> Self {
        Self::new(MAX_FRAMED_PACKET)
    }
}

impl UniStreamReader {
    /// A reader refusing packets longer than `max_packet`.
    pub fn new(max_packet: usize) -> Self {
        Self {
            mode: Mode::Unknown,
            max_packet,
            ready: None,
        }
    }

    /// True once the first byte said this is the framed stream (it stays open; a driver may
    /// hand it to a long-lived reading task).
    pub fn is_framed(&self) -> bool {
        matches!(self.mode, Mode::Framed(_))
    }

    /// The next chunk read from the stream.
    pub fn handle_chunk(&mut self, mut chunk: &[u8]) -> Result<(), FramingError> {
        if let Mode::Unknown = self.mode
            && let Some(&first) = chunk.first()
        {
            self.mode = if first == FRAMED_STREAM_MARKER {
                chunk = &chunk[1..];
                Mode::Framed(Deframer::new(self.max_packet))
            } else {
                Mode::Single(BytesMut::new())
            };
        }
        match &mut self.mode {
            Mode::Single(buf) => {
                let len = buf.len() + chunk.len();
                if len > self.max_packet {
                    let max = self.max_packet;
                    self.mode = Mode::Done;
                    return Err(FramingError::TooLong { len, max });
                }
                buf.extend_from_slice(chunk);
            }
            // Checked frame by frame in `poll_packet`: a driver polls after every chunk, so
            // what is buffered is at most one packet and one read.
            Mode::Framed(frames) => frames.push(chunk),
            Mode::Unknown | Mode::Done => {}
        }
        Ok(())
    }

    /// The stream ended (its FIN): a one-packet stream's packet is complete; a framed stream's
    /// complete packets still come out ([`UniStreamReader::check_finished`] tells a cut one).
    pub fn handle_end(&mut self) {
        match &mut self.mode {
            Mode::Single(buf) => {
                self.ready = Some(std::mem::take(buf).freeze());
                self.mode = Mode::Done;
            }
            // An empty stream is no packet.
            Mode::Unknown => self.mode = Mode::Done,
            Mode::Framed(_) | Mode::Done => {}
        }
    }

    /// The next complete packet, `None` until more bytes (or the end) arrive.
    pub fn poll_packet(&mut self) -> Result<Option<Bytes>, FramingError> {
        if let Some(packet) = self.ready.take() {
            return Ok(Some(packet));
        }
        let Mode::Framed(frames) = &mut self.mode else {
            return Ok(None);
        };
        let packet = frames.next_packet();
        if packet.is_err() {
            self.mode = Mode::Done;
        }
        packet
    }

    /// After [`UniStreamReader::handle_end`] on a framed stream: an error if it ended inside a
    /// frame (once the complete packets were polled).
    pub fn check_finished(&self) -> Result<(), FramingError> {
        match &self.mode {
            Mode::Framed(frames) if frames.pending() > 0 => {
                Err(FramingError::Truncated(frames.pending()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        reader: &mut UniStreamReader,
        stream: &[u8],
        chunk_size: usize,
    ) -> Result<Vec<Vec<u8>>, FramingError> {
        let mut got = Vec::new();
        for chunk in stream.chunks(chunk_size) {
            reader.handle_chunk(chunk)?;
            while let Some(p) = reader.poll_packet()? {
                got.push(p.to_vec());
            }
        }
        reader.handle_end();
        while let Some(p) = reader.poll_packet()? {
            got.push(p.to_vec());
        }
        reader.check_finished()?;
        Ok(got)
    }

    #[test]
    fn frames_come_back_whatever_the_chunk_boundaries() {
        let packets: Vec<Vec<u8>> = vec![vec![8, 1, 2], vec![], vec![0x5a; 70_000], vec![3]];
        let mut stream = vec![FRAMED_STREAM_MARKER];
        for p in &packets {
            push_frame(&mut stream, p);
        }
        for chunk_size in [1, 3, 4, 5, 1000, stream.len()] {
            let mut reader = UniStreamReader::default();
            let got = read_all(&mut reader, &stream, chunk_size).unwrap();
            assert!(reader.is_framed());
            assert_eq!(got, packets, "chunks of {chunk_size}");
        }
    }

    #[test]
    fn a_one_packet_stream_is_its_packet_at_its_end() {
        let packet = vec![8u8; 5000];
        for chunk_size in [1, 7, 5000] {
            let mut reader = UniStreamReader::default();
            for chunk in packet.chunks(chunk_size) {
                reader.handle_chunk(chunk).unwrap();
                assert_eq!(reader.poll_packet(), Ok(None), "nothing before the end");
            }
            assert!(!reader.is_framed());
            reader.handle_end();
            assert_eq!(reader.poll_packet().unwrap().as_deref(), Some(&packet[..]));
            assert_eq!(reader.poll_packet(), Ok(None));
        }
    }

    #[test]
    fn an_oversize_header_is_an_error_before_any_allocation() {
        let mut reader = UniStreamReader::new(4 << 20);
        reader.handle_chunk(&[FRAMED_STREAM_MARKER]).unwrap();
        reader.handle_chunk(&u32::MAX.to_be_bytes()).unwrap();
        assert_eq!(
            reader.poll_packet(),
            Err(FramingError::TooLong {
                len: u32::MAX as usize,
                max: 4 << 20
            })
        );
        // A frame just under the limit is announced without anything reserved for it.
        let mut reader = UniStreamReader::new(4 << 20);
        reader.handle_chunk(&[FRAMED_STREAM_MARKER]).unwrap();
        reader
            .handle_chunk(&((4u32 << 20) - 1).to_be_bytes())
            .unwrap();
        assert_eq!(reader.poll_packet(), Ok(None));
        let Mode::Framed(frames) = &reader.mode else {
            panic!("framed")
        };
        assert!(
            frames.buf.capacity() < 1024,
            "reserved {}",
            frames.buf.capacity()
        );
    }

    #[test]
    fn an_oversize_single_packet_stream_is_an_error() {
        let mut reader = UniStreamReader::new(10);
        reader.handle_chunk(&[1; 6]).unwrap();
        assert_eq!(
            reader.handle_chunk(&[1; 6]),
            Err(FramingError::TooLong { len: 12, max: 10 })
        );
    }

    #[test]
    fn a_framed_stream_that_ends_inside_a_frame_says_so() {
        let mut stream = vec![FRAMED_STREAM_MARKER];
        push_frame(&mut stream, b"whole");
        push_frame(&mut stream, b"cut short");
        stream.truncate(stream.len() - 3);
        let mut reader = UniStreamReader::default();
        assert_eq!(
            read_all(&mut reader, &stream, 4),
            Err(FramingError::Truncated(4 + 6))
        );
    }
}
