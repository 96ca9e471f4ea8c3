//! videocall from the command line: `stream` publishes H.264 (openh264) from a camera (nokhwa,
//! feature `camera`) or a test pattern, and Opus audio from a WAV file or a test tone;
//! `receive` records every participant's video (H.264, and VP8/VP9 with libvpx, feature `vpx`)
//! and audio, and with `--mix` the whole meeting in one WebM file; `chat` sends stdin's lines
//! as (end-to-end encrypted) chat and prints what others say, `info` says what the machine
//! offers, `meeting` creates and runs protected meetings through the meeting API. The protocol
//! lives in `videocall-client`; this crate only produces and consumes pictures and sound.

pub mod args;
pub mod audio;
pub mod camera;
pub mod chat;
pub mod codec;
pub mod convert;
pub mod info;
pub mod join;
pub mod meeting;
#[cfg(feature = "vpx")]
pub mod mix;
pub mod participant;
pub mod pattern;
pub mod receive;
pub mod stream;
pub mod timeline;
#[cfg(feature = "vpx")]
pub mod vpx;
pub mod webm;
pub mod y4m;
