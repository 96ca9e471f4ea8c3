//! The relay core fed what other nodes publish on the bus, from foreign node ids: any payload on
//! the subjects of a served meeting, another meeting, directed at a local or a remote session,
//! echoes of our own node and raw subjects; MEETING events; media; with local sessions
//! publishing and subscribing meanwhile (see `videocall_fuzz::relay_driver`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_fuzz::relay_driver::{BUS_ACTIONS, Driver};

fuzz_target!(|data: &[u8]| {
    Driver::run(data, BUS_ACTIONS);
});
