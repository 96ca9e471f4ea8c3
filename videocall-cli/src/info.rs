//! `info`: what this machine offers.

use crate::args::InfoArgs;
use crate::camera;

/// Prints the cameras (or says that there are none), and a camera's formats.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let devices = camera::devices();
    if args.list_cameras || !(args.list_formats || args.list_resolutions) {
        if devices.is_empty() {
            println!("no camera found: this machine has no video capture device");
        } else {
            for (index, name) in devices.iter().enumerate() {
                println!("camera {index}: {name}");
            }
        }
    }
    if args.list_formats || args.list_resolutions {
        for line in camera::formats(args.video_device_index)? {
            println!("{line}");
        }
    }
    Ok(())
}
