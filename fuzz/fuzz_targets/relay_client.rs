//! The relay core fed what clients send: joins and leaves, raw bytes, wrappers of every packet
//! type, SUBSCRIPTION lists, media of every class, time passing and sockets draining (see
//! `videocall_fuzz::relay_driver`). Nothing a client sends may panic the relay or break its
//! bookkeeping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_fuzz::relay_driver::{CLIENT_ACTIONS, Driver};

fuzz_target!(|data: &[u8]| {
    Driver::run(data, CLIENT_ACTIONS);
});
