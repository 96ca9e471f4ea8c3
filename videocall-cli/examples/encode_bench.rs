//! Encode time per frame of the test pattern with openh264, as `stream` uses it.
//!
//! `cargo run --release -p videocall-cli --example encode_bench -- [frames]`

use std::time::Instant;

use videocall_cli::codec::{EncoderSettings, H264Encoder};
use videocall_cli::pattern;

fn main() -> anyhow::Result<()> {
    let frames: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(300);
    for (width, height, kbps) in [(640, 480, 500), (1280, 720, 500), (1280, 720, 1500)] {
        let mut encoder = H264Encoder::new(EncoderSettings {
            bitrate_kbps: kbps,
            fps: 30,
            keyframe_interval: 150,
        })?;
        let mut times = Vec::with_capacity(frames as usize);
        let mut bytes = 0usize;
        let (mut keys, mut skipped) = (0, 0);
        for n in 0..frames {
            let picture = pattern::frame(width, height, n)?;
            let started = Instant::now();
            let frame = encoder.encode(&picture, false)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            match frame {
                Some(frame) => {
                    bytes += frame.data.len();
                    keys += u32::from(frame.key);
                }
                None => skipped += 1,
            }
        }
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{width}x{height} @ {kbps} kbps: mean {mean:.2} ms/frame, p50 {:.2}, p99 {:.2}, {:.0} kbps at 30 fps, {keys} IDRs, {skipped} skipped",
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            bytes as f64 * 8.0 / 1000.0 / (frames as f64 / 30.0)
        );
    }
    Ok(())
}
