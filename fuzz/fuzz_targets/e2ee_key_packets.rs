//! The E2EE machine's key handling: RSA_PUB_KEY and AES_KEY packets of any shape (and real ones
//! from a peer machine), peers joining and leaving, frames to open (see
//! `videocall_fuzz::e2ee_driver`). Nothing may panic, every refusal is counted, and a frame that
//! opens is exactly the frame that was sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_fuzz::e2ee_driver::Driver;

fuzz_target!(|data: &[u8]| {
    Driver::run(data);
});
