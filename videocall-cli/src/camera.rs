//! Cameras. With the `camera` feature (default) capture goes through nokhwa (V4L2 on Linux);
//! without it, this module only finds the video devices so that the CLI says what exists.

use crate::args::FrameFormat;
use crate::pattern::I420;

/// The cameras of this machine, by index: a readable name each.
#[cfg(feature = "camera")]
pub fn devices() -> Vec<String> {
    nokhwa::query(nokhwa::utils::ApiBackend::Auto)
        .unwrap_or_default()
        .into_iter()
        .map(|info| format!("{} ({})", info.human_name(), info.description()))
        .collect()
}

/// The video capture devices of this machine (`/dev/video*`), in index order.
#[cfg(not(feature = "camera"))]
pub fn devices() -> Vec<String> {
    let mut found: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let index = name.strip_prefix("video")?.parse().ok()?;
            Some((index, entry.path().display().to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

fn no_such_camera(index: usize, devices: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "no camera with index {index}: this machine has {} camera(s){} (use --test-pattern for a synthetic picture)",
        devices.len(),
        if devices.is_empty() {
            ", no video capture device"
        } else {
            ""
        }
    )
}

/// An open camera delivering I420 pictures.
#[cfg(feature = "camera")]
pub struct Capture {
    camera: nokhwa::Camera,
    width: usize,
    height: usize,
}

#[cfg(feature = "camera")]
impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Opens camera `index` at this size, rate and pixel format (exactly: a camera that cannot is
/// an error naming what it offers).
#[cfg(feature = "camera")]
pub fn open(
    index: usize,
    (width, height): (usize, usize),
    fps: u32,
    format: FrameFormat,
) -> anyhow::Result<Capture> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        CameraFormat, CameraIndex, RequestedFormat, RequestedFormatType, Resolution,
    };

    let devices = devices();
    if index >= devices.len() {
        return Err(no_such_camera(index, &devices));
    }
    let wanted = CameraFormat::new(
        Resolution::new(width as u32, height as u32),
        match format {
            FrameFormat::Nv12 => nokhwa::utils::FrameFormat::NV12,
            FrameFormat::Yuyv => nokhwa::utils::FrameFormat::YUYV,
            FrameFormat::Mjpeg => nokhwa::utils::FrameFormat::MJPEG,
        },
        fps,
    );
    let request = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Exact(wanted));
    let mut camera =
        nokhwa::Camera::new(CameraIndex::Index(index as u32), request).map_err(|e| {
            anyhow::anyhow!(
                "camera {index} cannot deliver {width}x{height} {format:?} at {fps} fps: {e}"
            )
        })?;
    camera
        .open_stream()
        .map_err(|e| anyhow::anyhow!("camera {index}: cannot start capture: {e}"))?;
    Ok(Capture {
        camera,
        width,
        height,
    })
}

#[cfg(feature = "camera")]
impl Capture {
    /// The next picture (blocks until the camera delivers it).
    pub fn capture(&mut self) -> anyhow::Result<I420> {
        use nokhwa::pixel_format::RgbFormat;
        let frame = self.camera.frame()?;
        let (w, h) = (self.width, self.height);
        Ok(match frame.source_frame_format() {
            nokhwa::utils::FrameFormat::NV12 => crate::convert::nv12(frame.buffer(), w, h)?,
            nokhwa::utils::FrameFormat::YUYV => crate::convert::yuyv(frame.buffer(), w, h)?,
            _ => crate::convert::rgb(&frame.decode_image::<RgbFormat>()?, w, h)?,
        })
    }
}

/// Without the `camera` feature there is no capture: an error saying what exists.
#[cfg(not(feature = "camera"))]
#[derive(Debug)]
pub struct Capture;

/// Without the `camera` feature: an error saying what exists.
#[cfg(not(feature = "camera"))]
pub fn open(
    index: usize,
    _size: (usize, usize),
    _fps: u32,
    _format: FrameFormat,
) -> anyhow::Result<Capture> {
    let devices = devices();
    if index >= devices.len() {
        return Err(no_such_camera(index, &devices));
    }
    anyhow::bail!(
        "camera {index} exists, but this videocall-cli was built without the `camera` feature (use --test-pattern)"
    )
}

#[cfg(not(feature = "camera"))]
impl Capture {
    /// Never called: [`open`] fails.
    pub fn capture(&mut self) -> anyhow::Result<I420> {
        anyhow::bail!("built without the `camera` feature")
    }
}

/// What camera `index` can deliver: one `WIDTHxHEIGHT FORMAT FPS` line per mode.
pub fn formats(index: usize) -> anyhow::Result<Vec<String>> {
    let devices = devices();
    if index >= devices.len() {
        return Err(no_such_camera(index, &devices));
    }
    list_formats(index)
}

#[cfg(feature = "camera")]
fn list_formats(index: usize) -> anyhow::Result<Vec<String>> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{CameraIndex, RequestedFormat, RequestedFormatType};
    let mut camera = nokhwa::Camera::new(
        CameraIndex::Index(index as u32),
        RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
    )?;
    Ok(camera
        .compatible_camera_formats()?
        .into_iter()
        .map(|f| format!("{} {} {} fps", f.resolution(), f.format(), f.frame_rate()))
        .collect())
}

#[cfg(not(feature = "camera"))]
fn list_formats(index: usize) -> anyhow::Result<Vec<String>> {
    anyhow::bail!(
        "camera {index} exists, but this videocall-cli was built without the `camera` feature"
    )
}
