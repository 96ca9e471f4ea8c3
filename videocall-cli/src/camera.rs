//! Cameras. Capture is not built in yet (nokhwa needs libclang; see the README); this module
//! finds the video devices so that the CLI can say clearly what exists.

use std::path::PathBuf;

/// The video capture devices of this machine (`/dev/video*`), in index order.
pub fn devices() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let index = name.strip_prefix("video")?.parse().ok()?;
            Some((index, entry.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Opens camera `index`: an error saying what exists, since capture is not built in.
pub fn open(index: usize) -> anyhow::Result<()> {
    let devices = devices();
    match devices.get(index) {
        None => anyhow::bail!(
            "no camera with index {index}: this machine has {} camera(s){} (use --test-pattern for a synthetic picture)",
            devices.len(),
            if devices.is_empty() {
                ", no /dev/video* device"
            } else {
                ""
            }
        ),
        Some(path) => anyhow::bail!(
            "camera {index} ({}) exists, but camera capture is not built into this videocall-cli yet (use --test-pattern)",
            path.display()
        ),
    }
}
