//! `info`: what this machine offers.

use crate::args::InfoArgs;
use crate::camera;

/// Prints the cameras (or says that there are none).
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let devices = camera::devices();
    if args.list_cameras || !(args.list_formats || args.list_resolutions) {
        if devices.is_empty() {
            println!("no camera found: this machine has no video capture device (/dev/video*)");
        } else {
            for (index, path) in devices.iter().enumerate() {
                println!("camera {index}: {}", path.display());
            }
            println!(
                "(camera capture is not built into this videocall-cli yet; use --test-pattern)"
            );
        }
    }
    if args.list_formats || args.list_resolutions {
        camera::open(args.video_device_index)?;
    }
    Ok(())
}
