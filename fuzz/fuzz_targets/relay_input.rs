//! Envelope decoding and relay input: arbitrary bytes from a client and from the bus must never
//! panic the relay. Run: `cargo +nightly fuzz run relay_input` (in `fuzz/`).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use videocall_relay::{Relay, RelayConfig};
use videocall_types::{MeetingId, UserId};

fuzz_target!(|data: &[u8]| {
    let mut relay = Relay::new(RelayConfig {
        max_frame_bytes: 4096,
        queue_video_bytes: 8192,
        ..RelayConfig::default()
    });
    let t0 = Instant::now();
    let meeting = MeetingId::new("fuzz").unwrap();
    let a = relay.handle_join(t0, UserId::new("a").unwrap(), meeting.clone()).unwrap();
    let _b = relay.handle_join(t0, UserId::new("b").unwrap(), meeting).unwrap();
    // The first byte picks the input; the rest is the payload, in chunks.
    for (i, chunk) in data.chunks(97).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 7);
        let payload = bytes::Bytes::copy_from_slice(chunk);
        match chunk.first().map(|b| b % 3) {
            Some(0) => {
                let _ = relay.handle_inbound(now, a, payload);
            }
            Some(1) => relay.handle_bus(now, "room.fuzz.4294967299", payload),
            _ => relay.handle_timeout(now + Duration::from_secs(31)),
        }
        while relay.poll_output().is_some() {}
    }
});
