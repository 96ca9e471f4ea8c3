//! Camera pixel formats to the I420 the encoder takes.

use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

use crate::pattern::I420;

/// Why a camera frame could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {format} frame of {len} bytes does not hold {width}x{height} pixels")]
pub struct ConvertError {
    /// The camera format.
    pub format: &'static str,
    /// Bytes received.
    pub len: usize,
    /// Expected width.
    pub width: usize,
    /// Expected height.
    pub height: usize,
}

fn check(
    format: &'static str,
    data: &[u8],
    width: usize,
    height: usize,
    bytes: usize,
) -> Result<(), ConvertError> {
    if data.len() < bytes || width % 2 == 1 || height % 2 == 1 {
        return Err(ConvertError {
            format,
            len: data.len(),
            width,
            height,
        });
    }
    Ok(())
}

/// NV12 (Y plane, then interleaved U/V at half resolution).
pub fn nv12(data: &[u8], width: usize, height: usize) -> Result<I420, ConvertError> {
    check("NV12", data, width, height, width * height * 3 / 2)?;
    let (y, uv) = data.split_at(width * height);
    let quarter = width * height / 4;
    let mut out = Vec::with_capacity(width * height * 3 / 2);
    out.extend_from_slice(y);
    out.extend(uv[..2 * quarter].iter().step_by(2));
    out.extend(uv[1..2 * quarter].iter().step_by(2));
    Ok(I420 {
        width,
        height,
        data: out,
    })
}

/// YUYV 4:2:2 (Y0 U Y1 V per two pixels); chroma of even rows is kept.
pub fn yuyv(data: &[u8], width: usize, height: usize) -> Result<I420, ConvertError> {
    check("YUYV", data, width, height, width * height * 2)?;
    let mut out = vec![0u8; width * height * 3 / 2];
    let (y_plane, chroma) = out.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(width * height / 4);
    for row in 0..height {
        let line = &data[row * width * 2..(row + 1) * width * 2];
        for (pair, px) in line.chunks_exact(4).enumerate() {
            y_plane[row * width + 2 * pair] = px[0];
            y_plane[row * width + 2 * pair + 1] = px[2];
            if row % 2 == 0 {
                u_plane[row / 2 * width / 2 + pair] = px[1];
                v_plane[row / 2 * width / 2 + pair] = px[3];
            }
        }
    }
    Ok(I420 {
        width,
        height,
        data: out,
    })
}

/// Packed RGB (what an MJPEG frame decodes to).
pub fn rgb(data: &[u8], width: usize, height: usize) -> Result<I420, ConvertError> {
    check("RGB", data, width, height, width * height * 3)?;
    let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(
        &data[..width * height * 3],
        (width, height),
    ));
    let mut out = Vec::with_capacity(width * height * 3 / 2);
    out.extend_from_slice(yuv.y());
    out.extend_from_slice(yuv.u());
    out.extend_from_slice(yuv.v());
    Ok(I420 {
        width,
        height,
        data: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv12_chroma_is_deinterleaved() {
        let mut frame = vec![7u8; 4 * 2];
        frame.extend([1, 2, 3, 4]);
        let i420 = nv12(&frame, 4, 2).expect("enough bytes");
        assert_eq!(&i420.data[8..], &[1, 3, 2, 4]);
    }

    #[test]
    fn yuyv_keeps_luma_and_subsamples_chroma() {
        // 2x2: row 0 = Y 10, 11 with U 1 V 2; row 1 = Y 12, 13 with U 5 V 6.
        let frame = [10, 1, 11, 2, 12, 5, 13, 6];
        let i420 = yuyv(&frame, 2, 2).expect("enough bytes");
        assert_eq!(i420.data, vec![10, 11, 12, 13, 1, 2]);
    }

    #[test]
    fn short_frames_are_errors_not_panics() {
        assert!(nv12(&[0; 10], 4, 4).is_err());
        assert!(yuyv(&[0; 10], 4, 4).is_err());
        assert!(rgb(&[0; 10], 4, 4).is_err());
    }

    #[test]
    fn grey_rgb_becomes_grey_yuv() {
        let i420 = rgb(&[128; 4 * 4 * 3], 4, 4).expect("enough bytes");
        assert!(
            i420.data[16..].iter().all(|c| (120..=136).contains(c)),
            "{:?}",
            i420.data
        );
    }
}
