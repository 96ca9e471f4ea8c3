//! Components of the meeting page, one per file.

pub(crate) mod announcer;
pub(crate) mod chat_panel;
pub(crate) mod controls;
pub(crate) mod device_panel;
pub(crate) mod diagnostics;
pub(crate) mod host_panel;
pub(crate) mod peer_list;
pub(crate) mod prejoin;
pub(crate) mod self_view;
pub(crate) mod tile;
pub(crate) mod top_bar;
