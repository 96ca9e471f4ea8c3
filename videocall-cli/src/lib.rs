//! videocall from the command line: `stream` publishes H.264 (openh264) from a camera (nokhwa,
//! feature `camera`) or a test pattern, `receive` decodes and records every participant's video,
//! `chat` sends stdin's lines as (end-to-end encrypted) chat and prints what others say, `info`
//! says what the machine offers, `meeting` creates and runs protected meetings through the
//! meeting API. The protocol lives in `videocall-client`; this crate only
//! produces and consumes pictures.

pub mod args;
pub mod camera;
pub mod chat;
pub mod codec;
pub mod convert;
pub mod info;
pub mod join;
pub mod meeting;
pub mod pattern;
pub mod receive;
pub mod stream;
pub mod y4m;
