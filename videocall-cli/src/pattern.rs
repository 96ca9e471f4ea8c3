//! The synthetic test pattern: a moving I420 picture with the frame counter burned in as a row
//! of black/white blocks (24 bits, most significant first) that a decoder can read back.

/// Bits of the counter drawn in the picture.
pub const COUNTER_BITS: usize = 24;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// Why a size cannot carry the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "resolution {width}x{height} is not supported: width and height must be even, width at least 192 and height at least 64"
)]
pub struct PatternSizeError {
    /// Requested width.
    pub width: usize,
    /// Requested height.
    pub height: usize,
}

/// An I420 picture: Y plane then U then V, packed (stride = width).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Y (width × height), U and V (width/2 × height/2 each).
    pub data: Vec<u8>,
}

impl I420 {
    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }
}

/// Side of one counter block for a picture `width` wide.
fn block(width: usize) -> usize {
    if width >= COUNTER_BITS * 16 { 16 } else { 8 }
}

/// Checks that a picture of this size can carry the pattern (and H.264 4:2:0).
pub fn check_size(width: usize, height: usize) -> Result<(), PatternSizeError> {
    if width.is_multiple_of(2)
        && height.is_multiple_of(2)
        && width >= COUNTER_BITS * 8
        && height >= 64
    {
        Ok(())
    } else {
        Err(PatternSizeError { width, height })
    }
}

/// Frame `counter` of the pattern. Smooth gradients and a moving box: it moves every frame (so
/// the encoder has work) and stays compressible (so the picture survives a modest bitrate).
pub fn frame(width: usize, height: usize, counter: u64) -> Result<I420, PatternSizeError> {
    check_size(width, height)?;
    let (cw, ch) = (width / 2, height / 2);
    let mut data = vec![0u8; width * height + 2 * cw * ch];
    let (y_plane, chroma) = data.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let shift = (counter as usize).wrapping_mul(2);
    let side = height / 4;
    let box_x = (counter as usize * 8) % (width - side).max(1);
    let box_y = height / 2 - side / 2;
    for y in 0..height {
        for x in 0..width {
            let t = (x + y / 2 + shift) % 512;
            let tri = if t < 256 { t } else { 511 - t };
            let mut value = 32 + tri * 176 / 255;
            if (box_x..box_x + side).contains(&x) && (box_y..box_y + side).contains(&y) {
                value = 220;
            }
            y_plane[y * width + x] = value as u8;
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            u_plane[y * cw + x] = (64 + (x * 128) / cw) as u8;
            v_plane[y * cw + x] = (64 + ((y + shift / 4) % ch * 128) / ch) as u8;
        }
    }
    let b = block(width);
    for bit in 0..COUNTER_BITS {
        let on = (counter >> (COUNTER_BITS - 1 - bit)) & 1 == 1;
        for y in 0..b {
            let row = &mut y_plane[y * width + bit * b..y * width + (bit + 1) * b];
            row.fill(if on { WHITE } else { BLACK });
        }
    }
    Ok(I420 {
        width,
        height,
        data,
    })
}

/// Reads the counter back from a luma plane (decoded, so slightly off): each block's centre
/// pixel decides its bit.
pub fn read_counter(y_plane: &[u8], width: usize) -> Option<u64> {
    let b = block(width);
    let mut counter = 0u64;
    for bit in 0..COUNTER_BITS {
        let centre = y_plane.get((b / 2) * width + bit * b + b / 2)?;
        counter = counter << 1 | u64::from(*centre > 125);
    }
    Some(counter)
}

/// Peak signal-to-noise ratio of `decoded` against `reference` (same length), in dB.
pub fn psnr(reference: &[u8], decoded: &[u8]) -> f64 {
    let n = reference.len().min(decoded.len()).max(1);
    let se: f64 = reference
        .iter()
        .zip(decoded)
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum();
    let mse = se / n as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_reads_back_from_the_picture() {
        for counter in [0, 1, 149, 0xABCDEF] {
            let picture = frame(320, 240, counter).expect("a valid size");
            assert_eq!(read_counter(picture.y(), 320), Some(counter));
        }
    }

    #[test]
    fn odd_or_tiny_sizes_are_refused() {
        assert!(frame(321, 240, 0).is_err());
        assert!(frame(64, 64, 0).is_err());
    }

    #[test]
    fn consecutive_frames_differ() {
        let a = frame(320, 240, 1).expect("a valid size");
        let b = frame(320, 240, 2).expect("a valid size");
        assert!(psnr(a.y(), b.y()) < 40.0);
        assert_eq!(psnr(a.y(), a.y()), f64::INFINITY);
    }
}
