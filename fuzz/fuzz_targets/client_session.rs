//! The client `Session`'s inbound path: whatever a relay (or anyone on the path) sends it, with
//! or without E2EE, interleaved with reconnects, timers and the application's calls (see
//! `videocall_fuzz::client_driver`). Nothing may panic, and what the session sends stays
//! well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_fuzz::client_driver::Driver;

fuzz_target!(|data: &[u8]| Driver::run(data));
