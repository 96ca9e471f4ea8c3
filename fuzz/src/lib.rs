//! Fuzz targets of videocall (see README.md): drivers shared by the targets and the seed
//! generator (`examples/seeds.rs`).

pub mod client_driver;
pub mod e2ee_driver;
pub mod input;
pub mod keys;
pub mod relay_driver;

// The instrumented build's coverage callbacks live in libFuzzer: link it into the unit tests too.
#[cfg(test)]
extern crate libfuzzer_sys;
