//! What the load generator (`videocall-bot`) and the bench runner (`videocall-bench`) share.

pub mod proc;
pub mod report;
pub mod wire;
