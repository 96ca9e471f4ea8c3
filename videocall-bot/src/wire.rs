//! The bot's fast path over the wire format: a zero-copy header read of received packets and a
//! direct encoding of sent media, both with `prost`'s encoding helpers.
//!
//! A receiver needs four things of a media packet: who sent it (the relay's stamps on the
//! `PacketWrapper`), its media type, its payload (where the bot's own send-time stamp is) and a
//! video frame's sequence and key flag. [`scan_wrapper`] and [`scan_media`] read exactly those
//! as borrowed slices of the received bytes, skipping every other field (unknown ones
//! included), instead of decoding the whole packet into owned structs. On input `prost`
//! decodes, they agree with it field for field (last occurrence wins, a nested message merges);
//! on anything else they return an error, never panic, and never read past the input (checked
//! by the tests below on random valid packets, random mutations and random bytes). They check
//! less than a full decode: nested messages they do not need (audio metadata, sealed envelopes)
//! are skipped unread, so they accept some packets `prost` refuses.
//!
//! [`encode_media`] writes the `PacketWrapper` of a clear video or audio frame straight into an
//! output buffer, byte for byte what `Session::send_media` would send (tested against `prost`),
//! without building the structs or allocating.

use prost::encoding::{
    WireType, decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len,
};
use videocall_types::{MediaType, PacketType, VideoCodec};

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// A varint, key or length-delimited field runs past the end, or a key is invalid.
    Malformed,
    /// A known field has the wrong wire type.
    WireType(u32),
    /// `frame_type` is not UTF-8.
    Utf8,
    /// Groups nested deeper than the scanner follows.
    TooDeep,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed protobuf"),
            Self::WireType(tag) => write!(f, "field {tag} has the wrong wire type"),
            Self::Utf8 => f.write_str("frame_type is not UTF-8"),
            Self::TooDeep => f.write_str("groups nested too deep"),
        }
    }
}

impl std::error::Error for ScanError {}

impl From<prost::DecodeError> for ScanError {
    fn from(_: prost::DecodeError) -> Self {
        Self::Malformed
    }
}

/// The fields of a `PacketWrapper`, borrowed from its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrapperHeader<'a> {
    pub packet_type: i32,
    pub user_id: &'a [u8],
    pub data: &'a [u8],
    pub session_id: u64,
}

/// What a receiver reads of a `MediaPacket`, borrowed from its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaHeader<'a> {
    pub media_type: i32,
    pub data: &'a [u8],
    pub frame_type: &'a str,
    /// Milliseconds.
    pub timestamp: f64,
    /// `video_metadata.sequence`, when `video_metadata` is present.
    pub video_sequence: Option<u64>,
    /// A `sealed` envelope (E2EE) is present: the fields above are routing hints only.
    pub sealed: bool,
}

/// Deepest group nesting skipped (prost allows more; no encoder of ours writes groups).
const MAX_GROUP_DEPTH: u32 = 16;

fn check(tag: u32, actual: WireType, expected: WireType) -> Result<(), ScanError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ScanError::WireType(tag))
    }
}

/// A length-delimited field's bytes.
fn take_len<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ScanError> {
    let len = decode_varint(buf)?;
    let len = usize::try_from(len).map_err(|_| ScanError::Malformed)?;
    if len > buf.len() {
        return Err(ScanError::Malformed);
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

fn take_fixed<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], ScanError> {
    if n > buf.len() {
        return Err(ScanError::Malformed);
    }
    let (field, rest) = buf.split_at(n);
    *buf = rest;
    Ok(field)
}

/// Skips a field we do not read (an unknown one included), as `prost` does.
fn skip(tag: u32, wire_type: WireType, buf: &mut &[u8], depth: u32) -> Result<(), ScanError> {
    match wire_type {
        WireType::Varint => {
            decode_varint(buf)?;
        }
        WireType::SixtyFourBit => {
            take_fixed(buf, 8)?;
        }
        WireType::ThirtyTwoBit => {
            take_fixed(buf, 4)?;
        }
        WireType::LengthDelimited => {
            take_len(buf)?;
        }
        WireType::StartGroup => {
            if depth >= MAX_GROUP_DEPTH {
                return Err(ScanError::TooDeep);
            }
            loop {
                let (inner, inner_type) = decode_key(buf)?;
                if inner_type == WireType::EndGroup {
                    if inner != tag {
                        return Err(ScanError::Malformed);
                    }
                    break;
                }
                skip(inner, inner_type, buf, depth + 1)?;
            }
        }
        WireType::EndGroup => return Err(ScanError::Malformed),
    }
    Ok(())
}

/// Reads a `PacketWrapper`'s fields without copying.
pub fn scan_wrapper(mut buf: &[u8]) -> Result<WrapperHeader<'_>, ScanError> {
    let mut header = WrapperHeader::default();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check(tag, wire_type, WireType::Varint)?;
                // int32 and enums: the varint truncated, as prost does.
                header.packet_type = decode_varint(&mut buf)? as i32;
            }
            2 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                header.user_id = take_len(&mut buf)?;
            }
            3 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                header.data = take_len(&mut buf)?;
            }
            4 => {
                check(tag, wire_type, WireType::Varint)?;
                header.session_id = decode_varint(&mut buf)?;
            }
            _ => skip(tag, wire_type, &mut buf, 0)?,
        }
    }
    Ok(header)
}

/// Reads what a receiver needs of a `MediaPacket` without copying.
pub fn scan_media(mut buf: &[u8]) -> Result<MediaHeader<'_>, ScanError> {
    let mut header = MediaHeader::default();
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => {
                check(tag, wire_type, WireType::Varint)?;
                header.media_type = decode_varint(&mut buf)? as i32;
            }
            3 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                header.data = take_len(&mut buf)?;
            }
            4 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                header.frame_type =
                    std::str::from_utf8(take_len(&mut buf)?).map_err(|_| ScanError::Utf8)?;
            }
            5 => {
                check(tag, wire_type, WireType::SixtyFourBit)?;
                let bytes = take_fixed(&mut buf, 8)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(bytes);
                header.timestamp = f64::from_le_bytes(le);
            }
            8 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                // A message field seen twice merges: a later sequence replaces an earlier one.
                let mut meta = take_len(&mut buf)?;
                let mut sequence = header.video_sequence.unwrap_or(0);
                while !meta.is_empty() {
                    let (inner, inner_type) = decode_key(&mut meta)?;
                    if inner == 1 {
                        check(inner, inner_type, WireType::Varint)?;
                        sequence = decode_varint(&mut meta)?;
                    } else {
                        skip(inner, inner_type, &mut meta, 0)?;
                    }
                }
                header.video_sequence = Some(sequence);
            }
            16 => {
                check(tag, wire_type, WireType::LengthDelimited)?;
                take_len(&mut buf)?;
                header.sealed = true;
            }
            _ => skip(tag, wire_type, &mut buf, 0)?,
        }
    }
    Ok(header)
}

/// A clear media frame to send.
#[derive(Debug, Clone, Copy)]
pub struct OutMedia<'a> {
    /// Video (with its sequence and key flag) or audio.
    pub kind: OutKind,
    /// The sender's user id (in the wrapper and, as `Session::send_media` sets it, the media).
    pub user: &'a [u8],
    /// Our session id.
    pub session_id: u64,
    /// The start of the payload (the bot's stamp); `filler` pads it to `size` bytes.
    pub head: &'a [u8],
    pub size: usize,
    pub filler: u8,
    /// Milliseconds (0: not set, as audio frames of the bot).
    pub timestamp: f64,
}

/// Which frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    Video { sequence: u64, key: bool },
    Audio,
}

fn len_field(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn varint_field(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

impl OutMedia<'_> {
    fn payload_len(&self) -> usize {
        self.size.max(self.head.len())
    }

    fn video_meta_len(sequence: u64) -> usize {
        varint_field(1, sequence) + varint_field(2, VideoCodec::Vp8 as u64)
    }

    fn frame_type(&self) -> &'static str {
        match self.kind {
            OutKind::Video { key: false, .. } => "delta",
            _ => "key",
        }
    }

    fn media_type(&self) -> MediaType {
        match self.kind {
            OutKind::Video { .. } => MediaType::Video,
            OutKind::Audio => MediaType::Audio,
        }
    }

    fn media_len(&self) -> usize {
        let mut len = varint_field(1, self.media_type() as u64)
            + len_field(2, self.user.len())
            + len_field(3, self.payload_len())
            + len_field(4, self.frame_type().len());
        if self.timestamp != 0.0 {
            len += key_len(5) + 8;
        }
        if let OutKind::Video { sequence, .. } = self.kind {
            len += len_field(8, Self::video_meta_len(sequence));
        }
        len
    }

    /// Length of the encoded `PacketWrapper`.
    pub fn encoded_len(&self) -> usize {
        varint_field(1, PacketType::Media as u64)
            + len_field(2, self.user.len())
            + len_field(3, self.media_len())
            + varint_field(4, self.session_id)
    }
}

fn put_len(out: &mut Vec<u8>, tag: u32, len: usize) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

fn put_varint(out: &mut Vec<u8>, tag: u32, value: u64) {
    if value != 0 {
        encode_key(tag, WireType::Varint, out);
        encode_varint(value, out);
    }
}

/// Appends the encoded `PacketWrapper` of `media` (exactly [`OutMedia::encoded_len`] bytes).
pub fn encode_media(out: &mut Vec<u8>, media: &OutMedia<'_>) {
    out.reserve(media.encoded_len());
    put_varint(out, 1, PacketType::Media as u64);
    put_len(out, 2, media.user.len());
    out.extend_from_slice(media.user);
    put_len(out, 3, media.media_len());
    put_varint(out, 1, media.media_type() as u64);
    put_len(out, 2, media.user.len());
    out.extend_from_slice(media.user);
    put_len(out, 3, media.payload_len());
    out.extend_from_slice(media.head);
    out.resize(
        out.len() + media.payload_len() - media.head.len(),
        media.filler,
    );
    put_len(out, 4, media.frame_type().len());
    out.extend_from_slice(media.frame_type().as_bytes());
    if media.timestamp != 0.0 {
        encode_key(5, WireType::SixtyFourBit, out);
        out.extend_from_slice(&media.timestamp.to_le_bytes());
    }
    if let OutKind::Video { sequence, .. } = media.kind {
        put_len(out, 8, OutMedia::video_meta_len(sequence));
        put_varint(out, 1, sequence);
        put_varint(out, 2, VideoCodec::Vp8 as u64);
    }
    put_varint(out, 4, media.session_id);
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
