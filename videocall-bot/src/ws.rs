//! A minimal WebSocket client for the bot's participants (RFC 6455, client side, no
//! extensions): the HTTP upgrade, then frames read straight out of one receive buffer and
//! written into one send buffer, by the participant's own task.
//!
//! Why not tokio-tungstenite, as the client driver uses: there every message is its own
//! allocation, read by a reader task and handed over a channel. Here a read takes everything
//! the socket holds (up to [`READ_CHUNK`]) and the participant reads each binary message in
//! place as a borrowed slice. Client frames must be masked; the bot masks with the zero key,
//! which leaves the payload as it is (the mask protects intermediaries that cache, and there
//! are none between the bot and a relay under test: the relay unmasks all the same).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use videocall_client::TransportError;

/// Most bytes one read takes from the socket (the buffer grows only for a longer message): 64 KiB
/// keeps 1000 participants at 64 MiB of buffers.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Largest message accepted (the relay's own frame limit is 4 MiB).
pub(crate) const MAX_MESSAGE: usize = 8 << 20;
/// Most bytes queued to send before frames are refused (a relay that stopped reading).
pub(crate) const MAX_QUEUED: usize = 8 << 20;
/// Largest HTTP response head to the upgrade.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// An open WebSocket.
#[derive(Debug)]
pub(crate) struct WsConn {
    stream: TcpStream,
    /// Received bytes not yet parsed: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A fragmented message being assembled (relays do not fragment; handled all the same).
    fragments: Option<Vec<u8>>,
    /// Bytes to send: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
}

/// Why the socket stopped.
#[derive(Debug)]
pub(crate) enum WsEnd {
    /// The server sent a close frame (code, reason).
    Closed(u16, String),
    /// The connection ended or broke.
    Error(String),
}

/// Opens a WebSocket at `url` (`ws://host:port/path`).
pub(crate) async fn connect(url: &str) -> Result<WsConn, TransportError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| TransportError::Config(format!("{url}: the bot speaks ws:// only")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io_error = |e: io::Error| TransportError::Io(e.to_string());
    let mut stream = TcpStream::connect(authority).await.map_err(io_error)?;
    // Real-time media: small packets must not wait for Nagle.
    stream.set_nodelay(true).map_err(io_error)?;
    let key = generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(io_error)?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut end = 0;
    let head_end = loop {
        if let Some(i) = find(&buf[..end], b"\r\n\r\n") {
            break i + 4;
        }
        if end >= MAX_RESPONSE_HEAD {
            return Err(TransportError::Protocol(
                "the upgrade response head is too long".into(),
            ));
        }
        let n = stream.read(&mut buf[end..]).await.map_err(io_error)?;
        if n == 0 {
            return Err(TransportError::Closed(
                "closed during the WebSocket upgrade".into(),
            ));
        }
        end += n;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        return Err(TransportError::Refused {
            status,
            reason: String::from_utf8_lossy(&buf[head_end..end])
                .trim()
                .to_owned(),
        });
    }
    let accept = derive_accept_key(key.as_bytes());
    let accepted = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
        })
    });
    if !accepted {
        return Err(TransportError::Protocol(
            "the upgrade response has no matching Sec-WebSocket-Accept".into(),
        ));
    }
    Ok(WsConn {
        stream,
        buf,
        start: head_end,
        end,
        fragments: None,
        out: Vec::with_capacity(64 * 1024),
        sent: 0,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Appends a client frame header (FIN, `opcode`, masked with the zero key) for `len` bytes.
fn frame_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// A frame parsed from the receive buffer: its opcode, FIN, and payload range in the buffer.
struct Frame {
    opcode: u8,
    fin: bool,
    payload: std::ops::Range<usize>,
}

impl WsConn {
    /// Waits until the socket can be read (or written, while bytes wait to be sent), then reads
    /// what it holds and writes what it can. Returns the bytes read (0: the peer closed).
    /// Cancel-safe: nothing is lost if the future is dropped.
    pub(crate) async fn io(&mut self) -> io::Result<usize> {
        let mut interest = tokio::io::Interest::READABLE;
        if self.sent < self.out.len() {
            interest |= tokio::io::Interest::WRITABLE;
        }
        loop {
            let ready = self.stream.ready(interest).await?;
            if ready.is_writable() {
                self.flush()?;
            }
            if ready.is_readable() || ready.is_read_closed() {
                match self.read_some() {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if !ready.is_readable() && self.sent >= self.out.len() {
                interest = tokio::io::Interest::READABLE;
            }
        }
    }

    fn read_some(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len() - self.end < READ_CHUNK / 4 {
            // Move the unparsed tail to the front; grow only for a message longer than the
            // buffer (up to the limit, checked by the parser).
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.buf.len() - self.end < READ_CHUNK / 4 {
                let len = (self.buf.len() * 2).min(MAX_MESSAGE + READ_CHUNK);
                self.buf.resize(len, 0);
            }
        }
        let n = self.stream.try_read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next complete frame in the buffer, if any.
    fn next_frame(&mut self) -> Result<Option<Frame>, WsEnd> {
        let data = &self.buf[self.start..self.end];
        if data.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (data[0], data[1]);
        if b0 & 0x70 != 0 {
            return Err(WsEnd::Error(
                "a frame with reserved bits (no extension)".into(),
            ));
        }
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => match data.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match data.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or([0xff; 8])), 10),
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= MAX_MESSAGE)
            .ok_or_else(|| {
                WsEnd::Error(format!("a frame of {len} bytes (at most {MAX_MESSAGE})"))
            })?;
        let mask = if masked {
            let Some(key) = data.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        if data.len() < at + len {
            return Ok(None);
        }
        let payload = self.start + at..self.start + at + len;
        self.start += at + len;
        if let Some(key) = mask {
            // Servers do not mask; one that does is unmasked all the same.
            for (i, byte) in self.buf[payload.clone()].iter_mut().enumerate() {
                *byte ^= key[i % 4];
            }
        }
        Ok(Some(Frame {
            opcode: b0 & 0x0f,
            fin: b0 & 0x80 != 0,
            payload,
        }))
    }

    /// Hands every complete binary message in the buffer to `on_message`, answers pings, and
    /// returns why the socket ended if a close frame or a protocol error came.
    pub(crate) fn messages(&mut self, mut on_message: impl FnMut(&[u8])) -> Result<(), WsEnd> {
        while let Some(frame) = self.next_frame()? {
            match frame.opcode {
                OP_BINARY | OP_TEXT if frame.fin && self.fragments.is_none() => {
                    on_message(&self.buf[frame.payload]);
                }
                OP_BINARY | OP_TEXT if self.fragments.is_none() => {
                    self.fragments = Some(self.buf[frame.payload].to_vec());
                }
                OP_CONTINUATION => {
                    let Some(mut message) = self.fragments.take() else {
                        return Err(WsEnd::Error("a continuation of nothing".into()));
                    };
                    if message.len() + frame.payload.len() > MAX_MESSAGE {
                        return Err(WsEnd::Error("a fragmented message too long".into()));
                    }
                    message.extend_from_slice(&self.buf[frame.payload]);
                    if frame.fin {
                        on_message(&message);
                    } else {
                        self.fragments = Some(message);
                    }
                }
                OP_PING => {
                    let payload = self.buf[frame.payload].to_vec();
                    self.queue(OP_PONG, &payload);
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let payload = &self.buf[frame.payload];
                    let code = payload
                        .get(..2)
                        .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[]));
                    return Err(WsEnd::Closed(code, reason.into_owned()));
                }
                other => return Err(WsEnd::Error(format!("unexpected opcode {other}"))),
            }
        }
        Ok(())
    }

    /// Whether a message of `len` bytes can be queued now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.out.len() - self.sent + len <= MAX_QUEUED
    }

    fn queue(&mut self, opcode: u8, payload: &[u8]) {
        frame_header(&mut self.out, opcode, payload.len());
        self.out.extend_from_slice(payload);
    }

    /// Queues a binary message (see [`WsConn::send`] to write it).
    pub(crate) fn queue_binary(&mut self, payload: &[u8]) {
        self.queue(OP_BINARY, payload);
    }

    /// Queues a binary message of `len` bytes that `write` appends to the buffer.
    pub(crate) fn queue_binary_with(&mut self, len: usize, write: impl FnOnce(&mut Vec<u8>)) {
        frame_header(&mut self.out, OP_BINARY, len);
        let before = self.out.len();
        write(&mut self.out);
        debug_assert_eq!(self.out.len() - before, len);
    }

    /// Writes what the socket takes now; the rest goes when it is writable ([`WsConn::io`]).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() {
            match self.stream.try_write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > 64 * 1024 && self.sent * 2 > self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(())
    }

    /// Sends what is queued and a close frame, then shuts the socket (at most `wait`).
    pub(crate) async fn close(mut self, wait: std::time::Duration) {
        self.queue(OP_CLOSE, &1000u16.to_be_bytes());
        let done = async {
            while self.sent < self.out.len() {
                if self.stream.writable().await.is_err() || self.flush().is_err() {
                    return;
                }
            }
            let _ = self.stream.shutdown().await;
        };
        let _ = tokio::time::timeout(wait, done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_masked_with_the_zero_key_and_sized_by_length() {
        for (len, head) in [(5, 6), (126, 8), (70_000, 14)] {
            let mut out = Vec::new();
            frame_header(&mut out, OP_BINARY, len);
            assert_eq!(out.len(), head);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80);
            assert_eq!(&out[head - 4..], &[0, 0, 0, 0]);
        }
    }
}
