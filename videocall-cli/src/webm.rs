//! A small WebM (Matroska) writer: one VP8/VP9 video track and one Opus audio track, blocks
//! with millisecond timestamps, written as they come (no re-encoding). What players need and no
//! more: EBML header, Segment, Info (with the duration), Tracks, Clusters of SimpleBlocks; no
//! Cues (players seek by scanning). Memory is one cluster (at most ~1 s or 4 MiB).
//!
//! The header is written first, before the video's codec and size are known: those fields have
//! a fixed width and are patched in `finish`, with the duration and the segment's size; a
//! track that never got a frame is overwritten with a Void element.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const VOID: u8 = 0xEC;

/// Milliseconds a cluster spans at most.
const CLUSTER_MS: i64 = 1000;
/// Bytes a cluster holds at most before it is written.
const CLUSTER_BYTES: usize = 4 << 20;

/// Which track a block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Track 1: VP8 or VP9.
    Video,
    /// Track 2: Opus, 48 kHz mono.
    Audio,
}

impl Track {
    fn index(self) -> usize {
        match self {
            Self::Video => 0,
            Self::Audio => 1,
        }
    }
}

/// Where the patchable fields of the header are.
#[derive(Debug, Default)]
struct Slots {
    segment_size: u64,
    segment_start: u64,
    duration: u64,
    codec: u64,
    width: u64,
    height: u64,
    /// (start, length) of each TrackEntry.
    entries: [(u64, u64); 2],
}

/// Writes one `.webm` file.
#[derive(Debug)]
pub struct WebmWriter {
    out: BufWriter<File>,
    slots: Slots,
    written: u64,
    cluster: Vec<u8>,
    cluster_ms: i64,
    /// Last timestamp per track (blocks of a track are kept strictly increasing).
    last_ms: [Option<i64>; 2],
    end_ms: i64,
    /// Blocks per track.
    pub blocks: [u64; 2],
    video: Option<(&'static str, usize, usize)>,
}

impl WebmWriter {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut head = Vec::new();
        let mut body = Vec::new();
        uint(&mut body, 0x4286, 1); // EBMLVersion
        uint(&mut body, 0x42F7, 1); // EBMLReadVersion
        uint(&mut body, 0x42F2, 4); // EBMLMaxIDLength
        uint(&mut body, 0x42F3, 8); // EBMLMaxSizeLength
        bytes(&mut body, 0x4282, b"webm"); // DocType
        uint(&mut body, 0x4287, 4); // DocTypeVersion
        uint(&mut body, 0x4285, 2); // DocTypeReadVersion
        master(&mut head, EBML, &body);
        let mut slots = Slots::default();
        id(&mut head, SEGMENT);
        slots.segment_size = head.len() as u64;
        head.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        slots.segment_start = head.len() as u64;

        let mut info = Vec::new();
        uint(&mut info, 0x2AD7B1, 1_000_000); // TimecodeScale: milliseconds
        bytes(&mut info, 0x4D80, b"videocall-cli"); // MuxingApp
        bytes(&mut info, 0x5741, b"videocall-cli"); // WritingApp
        id(&mut info, 0x4489); // Duration, float64, patched
        size(&mut info, 8);
        let duration_in_info = info.len() as u64;
        info.extend_from_slice(&0f64.to_be_bytes());
        let info_start = master(&mut head, INFO, &info);
        slots.duration = info_start + duration_in_info;

        let mut video = Vec::new();
        uint(&mut video, 0xD7, 1); // TrackNumber
        uint(&mut video, 0x73C5, 1); // TrackUID
        uint(&mut video, 0x83, 1); // TrackType: video
        uint(&mut video, 0x9C, 0); // FlagLacing
        id(&mut video, 0x86); // CodecID, 5 bytes: V_VP8 or V_VP9
        size(&mut video, 5);
        let codec_in_video = video.len() as u64;
        video.extend_from_slice(b"V_VP8");
        let mut picture = Vec::new();
        id(&mut picture, 0xB0); // PixelWidth, 4 bytes
        size(&mut picture, 4);
        let width_in_picture = picture.len() as u64;
        picture.extend_from_slice(&[0, 0, 0, 1]);
        id(&mut picture, 0xBA); // PixelHeight, 4 bytes
        size(&mut picture, 4);
        let height_in_picture = picture.len() as u64;
        picture.extend_from_slice(&[0, 0, 0, 1]);
        let picture_start = master(&mut video, 0xE0, &picture);

        let mut audio = Vec::new();
        uint(&mut audio, 0xD7, 2);
        uint(&mut audio, 0x73C5, 2);
        uint(&mut audio, 0x83, 2); // TrackType: audio
        uint(&mut audio, 0x9C, 0);
        bytes(&mut audio, 0x86, b"A_OPUS");
        bytes(&mut audio, 0x63A2, &opus_head()); // CodecPrivate
        uint(&mut audio, 0x56BB, 80_000_000); // SeekPreRoll: 80 ms, as WebM asks for Opus
        let mut sound = Vec::new();
        id(&mut sound, 0xB5); // SamplingFrequency
        size(&mut sound, 8);
        sound.extend_from_slice(&f64::from(crate::audio::SAMPLE_RATE).to_be_bytes());
        uint(&mut sound, 0x9F, 1); // Channels
        master(&mut audio, 0xE1, &sound);

        let mut tracks = Vec::new();
        let video_entry = tracks.len() as u64;
        let video_body = master(&mut tracks, TRACK_ENTRY, &video);
        let audio_entry = tracks.len() as u64;
        master(&mut tracks, TRACK_ENTRY, &audio);
        let tracks_len = tracks.len() as u64;
        let tracks_start = master(&mut head, TRACKS, &tracks);
        slots.codec = tracks_start + video_body + codec_in_video;
        slots.width = tracks_start + video_body + picture_start + width_in_picture;
        slots.height = tracks_start + video_body + picture_start + height_in_picture;
        slots.entries = [
            (tracks_start + video_entry, audio_entry - video_entry),
            (tracks_start + audio_entry, tracks_len - audio_entry),
        ];

        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&head)?;
        Ok(Self {
            out,
            slots,
            written: head.len() as u64,
            cluster: Vec::new(),
            cluster_ms: 0,
            last_ms: [None, None],
            end_ms: 0,
            blocks: [0, 0],
            video: None,
        })
    }

    /// Sets the video track's codec (`V_VP8`/`V_VP9`) and size, written into the header at
    /// `finish`; the first call wins.
    pub fn set_video(&mut self, codec: &'static str, width: usize, height: usize) {
        if self.video.is_none() && codec.len() == 5 {
            self.video = Some((codec, width, height));
        }
    }

    /// Appends a frame of `track` shown at `ms` for `duration_ms` (a timestamp at or before the
    /// track's previous one is moved just after it).
    pub fn write(
        &mut self,
        track: Track,
        ms: i64,
        duration_ms: i64,
        key: bool,
        data: &[u8],
    ) -> std::io::Result<()> {
        let index = track.index();
        let ms = match self.last_ms[index] {
            Some(last) if ms <= last => last + 1,
            _ => ms.max(0),
        };
        self.last_ms[index] = Some(ms);
        let starts_cluster = (track == Track::Video && key && ms > self.cluster_ms)
            || ms - self.cluster_ms >= CLUSTER_MS
            || ms - self.cluster_ms < i64::from(i16::MIN)
            || self.cluster.len() >= CLUSTER_BYTES;
        if self.cluster.is_empty() {
            self.cluster_ms = ms;
        } else if starts_cluster {
            self.flush_cluster()?;
            self.cluster_ms = ms;
        }
        let relative = (ms - self.cluster_ms) as i16;
        id(&mut self.cluster, SIMPLE_BLOCK);
        size(&mut self.cluster, 4 + data.len() as u64);
        self.cluster.push(0x81 + index as u8);
        self.cluster.extend_from_slice(&relative.to_be_bytes());
        self.cluster.push(if key { 0x80 } else { 0 });
        self.cluster.extend_from_slice(data);
        self.blocks[index] += 1;
        self.end_ms = self.end_ms.max(ms + duration_ms.max(0));
        Ok(())
    }

    fn flush_cluster(&mut self) -> std::io::Result<()> {
        if self.cluster.is_empty() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(self.cluster.len() + 16);
        uint(&mut body, TIMECODE, self.cluster_ms as u64);
        body.append(&mut self.cluster);
        let mut element = Vec::with_capacity(body.len() + 12);
        master(&mut element, CLUSTER, &body);
        self.out.write_all(&element)?;
        self.written += element.len() as u64;
        Ok(())
    }

    /// Milliseconds from the first block's start to the last block's end.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms
    }

    /// Writes the last cluster and patches the header.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush_cluster()?;
        let slots = std::mem::take(&mut self.slots);
        let out = &mut self.out;
        let mut patch = |at: u64, data: &[u8]| -> std::io::Result<()> {
            out.seek(SeekFrom::Start(at))?;
            out.write_all(data)
        };
        patch(slots.duration, &(self.end_ms as f64).to_be_bytes())?;
        let segment = self.written - slots.segment_start;
        let mut vint = segment.to_be_bytes();
        vint[0] = 0x01;
        patch(slots.segment_size, &vint)?;
        match self.video {
            Some((codec, width, height)) if self.blocks[0] > 0 => {
                patch(slots.codec, codec.as_bytes())?;
                patch(slots.width, &(width as u32).to_be_bytes())?;
                patch(slots.height, &(height as u32).to_be_bytes())?;
            }
            _ => patch(slots.entries[0].0, &void(slots.entries[0].1))?,
        }
        if self.blocks[1] == 0 {
            patch(slots.entries[1].0, &void(slots.entries[1].1))?;
        }
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()
    }
}

/// OpusHead (RFC 7845): version 1, one channel, no pre-skip, 48 kHz, no gain, family 0.
fn opus_head() -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&crate::audio::SAMPLE_RATE.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

/// A Void element exactly `len` (≥ 9) bytes long.
fn void(len: u64) -> Vec<u8> {
    let mut element = vec![0u8; len as usize];
    element[0] = VOID;
    let mut vint = (len - 9).to_be_bytes();
    vint[0] = 0x01;
    element[1..9].copy_from_slice(&vint);
    element
}

fn id(buf: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    buf.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-size integer, as short as it can be.
fn size(buf: &mut Vec<u8>, n: u64) {
    let mut len = 1;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = n | (1u64 << (7 * len));
    buf.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn uint(buf: &mut Vec<u8>, element: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    id(buf, element);
    size(buf, (8 - skip) as u64);
    buf.extend_from_slice(&bytes[skip..]);
}

fn bytes(buf: &mut Vec<u8>, element: u32, data: &[u8]) {
    id(buf, element);
    size(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Appends a master element; returns where its body starts in `buf`.
fn master(buf: &mut Vec<u8>, element: u32, body: &[u8]) -> u64 {
    id(buf, element);
    size(buf, body.len() as u64);
    let start = buf.len() as u64;
    buf.extend_from_slice(body);
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_minimal_ebml_integers() {
        let encode = |n| {
            let mut buf = Vec::new();
            size(&mut buf, n);
            buf
        };
        assert_eq!(encode(0), [0x80]);
        assert_eq!(encode(126), [0xFE]);
        assert_eq!(encode(127), [0x40, 0x7F]);
        assert_eq!(encode(300), [0x41, 0x2C]);
        assert_eq!(void(12), [VOID, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn header_slots_point_at_the_fields_they_patch() {
        let dir = std::env::temp_dir().join(format!("webm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("a.webm");
        let mut writer = WebmWriter::create(&path).expect("created");
        writer.set_video("V_VP9", 640, 480);
        writer
            .write(Track::Video, 0, 33, true, b"frame")
            .expect("written");
        writer
            .write(Track::Video, 0, 33, false, b"frame")
            .expect("written");
        let (codec, width, entries) =
            (writer.slots.codec, writer.slots.width, writer.slots.entries);
        writer.finish().expect("finished");
        let file = std::fs::read(&path).expect("readable");
        assert_eq!(&file[codec as usize..codec as usize + 5], b"V_VP9");
        assert_eq!(
            &file[width as usize..width as usize + 4],
            &640u32.to_be_bytes()
        );
        assert_eq!(file[entries[0].0 as usize], TRACK_ENTRY as u8);
        // No audio: its entry is a Void of the same length.
        assert_eq!(file[entries[1].0 as usize], VOID);
        let _ = std::fs::remove_dir_all(dir);
    }
}
