//! VP8/VP9 decoding and VP8 encoding with Debian's libvpx (through `env-libvpx-sys`, raw FFI;
//! this is the one module of the crate with `unsafe`, each block saying why it holds).
//!
//! Peer input reaches `VpxDecoder::decode` only: libvpx validates the bitstream and returns an
//! error for a malformed frame; a picture we cannot represent (high bit depth, 4:4:4) is an
//! error too, never a panic.
#![allow(unsafe_code)]

use std::ptr;

use vpx_sys::{
    VPX_DECODER_ABI_VERSION, VPX_DL_REALTIME, VPX_EFLAG_FORCE_KF, VPX_ENCODER_ABI_VERSION,
    VPX_FRAME_IS_KEY, vpx_codec_ctx_t, vpx_codec_cx_pkt_kind, vpx_codec_dec_cfg_t,
    vpx_codec_enc_cfg_t, vpx_codec_err_t, vpx_image_t, vpx_img_fmt, vpx_rc_mode,
};

use crate::pattern::I420;

/// What went wrong in libvpx.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VpxError {
    /// A libvpx call failed.
    #[error("libvpx {call}: {code:?}")]
    Call {
        /// The function.
        call: &'static str,
        /// Its error.
        code: vpx_codec_err_t,
    },
    /// The decoder produced a picture format we do not handle.
    #[error("unsupported picture format {0:?} (only 8-bit 4:2:0)")]
    Format(vpx_img_fmt),
    /// A picture or frame larger than we accept.
    #[error("picture {0}x{1} out of range")]
    Size(usize, usize),
}

/// Largest picture side accepted from a decoder (4K and some margin).
pub const MAX_SIDE: usize = 4096;

fn check(call: &'static str, code: vpx_codec_err_t) -> Result<(), VpxError> {
    if code == vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(VpxError::Call { call, code })
    }
}

/// Which VP codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpxCodec {
    /// VP8.
    Vp8,
    /// VP9 (profile 0).
    Vp9,
}

impl VpxCodec {
    /// The Matroska codec id.
    pub fn matroska_id(self) -> &'static str {
        match self {
            Self::Vp8 => "V_VP8",
            Self::Vp9 => "V_VP9",
        }
    }
}

/// A VP8 or VP9 decoder for one stream.
#[allow(missing_debug_implementations)] // libvpx state
pub struct VpxDecoder {
    // Boxed: libvpx is handed this address at init; it must not move afterwards.
    ctx: Box<vpx_codec_ctx_t>,
}

// SAFETY: the context is owned by this value alone and libvpx keeps no thread affinity.
unsafe impl Send for VpxDecoder {}

impl VpxDecoder {
    /// A fresh single-threaded decoder.
    pub fn new(codec: VpxCodec) -> Result<Self, VpxError> {
        // SAFETY: a zeroed context is what vpx_codec_dec_init_ver expects to fill in; the
        // interface functions return static tables.
        unsafe {
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(std::mem::zeroed());
            let iface = match codec {
                VpxCodec::Vp8 => vpx_sys::vpx_codec_vp8_dx(),
                VpxCodec::Vp9 => vpx_sys::vpx_codec_vp9_dx(),
            };
            let cfg = vpx_codec_dec_cfg_t {
                threads: 1,
                w: 0,
                h: 0,
            };
            check(
                "vpx_codec_dec_init",
                vpx_sys::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    VPX_DECODER_ABI_VERSION as i32,
                ),
            )?;
            Ok(Self { ctx })
        }
    }

    /// Decodes one frame; the last picture it produced, packed as I420 (odd sides rounded
    /// down to even), or `None` (a frame not shown).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420>, VpxError> {
        let len = u32::try_from(data.len()).map_err(|_| VpxError::Size(data.len(), 0))?;
        // SAFETY: `data` outlives the call, which copies what it keeps; the images returned by
        // vpx_codec_get_frame belong to the decoder and stay valid until the next decode call,
        // and are only read here, within their planes' strides and sizes.
        unsafe {
            check(
                "vpx_codec_decode",
                vpx_sys::vpx_codec_decode(&mut *self.ctx, data.as_ptr(), len, ptr::null_mut(), 0),
            )?;
            let mut iter = ptr::null();
            let mut last: *const vpx_image_t = ptr::null();
            loop {
                let img = vpx_sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if img.is_null() {
                    break;
                }
                last = img;
            }
            let Some(img) = last.as_ref() else {
                return Ok(None);
            };
            if img.fmt != vpx_img_fmt::VPX_IMG_FMT_I420 && img.fmt != vpx_img_fmt::VPX_IMG_FMT_YV12
            {
                return Err(VpxError::Format(img.fmt));
            }
            let (width, height) = (img.d_w as usize & !1, img.d_h as usize & !1);
            if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
                return Err(VpxError::Size(img.d_w as usize, img.d_h as usize));
            }
            let (u, v) = if img.fmt == vpx_img_fmt::VPX_IMG_FMT_YV12 {
                (2, 1)
            } else {
                (1, 2)
            };
            let mut packed = Vec::with_capacity(width * height * 3 / 2);
            for (plane, w, h) in [
                (0, width, height),
                (u, width / 2, height / 2),
                (v, width / 2, height / 2),
            ] {
                let stride = img.stride[plane] as isize;
                for row in 0..h {
                    let start = img.planes[plane].offset(row as isize * stride);
                    packed.extend_from_slice(std::slice::from_raw_parts(start, w));
                }
            }
            Ok(Some(I420 {
                width,
                height,
                data: packed,
            }))
        }
    }
}

impl Drop for VpxDecoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// One encoded VP8 frame.
#[derive(Debug, Clone)]
pub struct VpxFrame {
    /// The frame.
    pub data: Vec<u8>,
    /// A keyframe.
    pub key: bool,
}

/// A realtime VP8 encoder for pictures of one size; timestamps in milliseconds.
#[allow(missing_debug_implementations)] // libvpx state
pub struct Vp8Encoder {
    ctx: Box<vpx_codec_ctx_t>,
    /// Picture size.
    pub size: (usize, usize),
}

// SAFETY: as for the decoder.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// An encoder for `width`×`height` (even, at most [`MAX_SIDE`]) at `bitrate_kbps`, a
    /// keyframe at least every `keyframe_frames` pictures.
    pub fn new(
        width: usize,
        height: usize,
        bitrate_kbps: u32,
        keyframe_frames: u32,
    ) -> Result<Self, VpxError> {
        if width == 0
            || height == 0
            || width > MAX_SIDE
            || height > MAX_SIDE
            || !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
        {
            return Err(VpxError::Size(width, height));
        }
        // SAFETY: the configuration is filled in by libvpx (checked) before we read it or change
        // plain fields; the context is zeroed as vpx_codec_enc_init_ver expects.
        unsafe {
            let iface = vpx_sys::vpx_codec_vp8_cx();
            // Some of its enums have no zero value: libvpx fills every field.
            let mut cfg = std::mem::MaybeUninit::<vpx_codec_enc_cfg_t>::uninit();
            check(
                "vpx_codec_enc_config_default",
                vpx_sys::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0),
            )?;
            let mut cfg = cfg.assume_init();
            cfg.g_w = width as u32;
            cfg.g_h = height as u32;
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = 1000;
            cfg.g_threads = 1;
            cfg.g_lag_in_frames = 0;
            cfg.rc_target_bitrate = bitrate_kbps;
            cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
            cfg.kf_max_dist = keyframe_frames.max(1);
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(std::mem::zeroed());
            check(
                "vpx_codec_enc_init",
                vpx_sys::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    VPX_ENCODER_ABI_VERSION as i32,
                ),
            )?;
            // Fastest realtime speed: a recorder encodes while it receives.
            vpx_sys::vpx_codec_control_(
                &mut *ctx,
                vpx_sys::vp8e_enc_control_id::VP8E_SET_CPUUSED as i32,
                12i32,
            );
            Ok(Self {
                ctx,
                size: (width, height),
            })
        }
    }

    /// Encodes a picture of this encoder's size shown at `pts_ms` for `duration_ms`.
    pub fn encode(
        &mut self,
        picture: &I420,
        pts_ms: i64,
        duration_ms: u32,
        force_key: bool,
    ) -> Result<Vec<VpxFrame>, VpxError> {
        let (width, height) = self.size;
        if (picture.width, picture.height) != self.size
            || picture.data.len() != width * height * 3 / 2
        {
            return Err(VpxError::Size(picture.width, picture.height));
        }
        // SAFETY: the image only wraps `picture.data` (of the size checked above) for the
        // duration of vpx_codec_encode, which does not write to it; packets returned by
        // vpx_codec_get_cx_data are valid until the next encode call and copied here.
        unsafe {
            let mut img: vpx_image_t = std::mem::zeroed();
            if vpx_sys::vpx_img_wrap(
                &mut img,
                vpx_img_fmt::VPX_IMG_FMT_I420,
                width as u32,
                height as u32,
                1,
                picture.data.as_ptr() as *mut u8,
            )
            .is_null()
            {
                return Err(VpxError::Size(width, height));
            }
            let flags = if force_key {
                VPX_EFLAG_FORCE_KF as i64
            } else {
                0
            };
            check(
                "vpx_codec_encode",
                vpx_sys::vpx_codec_encode(
                    &mut *self.ctx,
                    &img,
                    pts_ms,
                    u64::from(duration_ms.max(1)),
                    flags,
                    u64::from(VPX_DL_REALTIME),
                ),
            )?;
            let mut frames = Vec::new();
            let mut iter = ptr::null();
            loop {
                let packet = vpx_sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                let Some(packet) = packet.as_ref() else { break };
                if packet.kind != vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let frame = packet.data.frame;
                frames.push(VpxFrame {
                    data: std::slice::from_raw_parts(frame.buf as *const u8, frame.sz as usize)
                        .to_vec(),
                    key: frame.flags & VPX_FRAME_IS_KEY != 0,
                });
            }
            Ok(frames)
        }
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern;

    #[test]
    fn vp8_pattern_round_trips_through_libvpx() {
        let mut encoder = Vp8Encoder::new(320, 240, 800, 300).expect("encoder");
        let mut decoder = VpxDecoder::new(VpxCodec::Vp8).expect("decoder");
        for n in 0..10u64 {
            let picture = pattern::frame(320, 240, n).expect("valid size");
            let frames = encoder
                .encode(&picture, n as i64 * 33, 33, n == 5)
                .expect("encodes");
            assert_eq!(frames.len(), 1, "realtime, no lag: one frame per picture");
            assert_eq!(frames[0].key, n == 0 || n == 5, "frame {n}");
            let decoded = decoder
                .decode(&frames[0].data)
                .expect("decodes")
                .expect("a picture");
            assert_eq!((decoded.width, decoded.height), (320, 240));
            assert_eq!(pattern::read_counter(decoded.y(), 320), Some(n));
        }
    }

    #[test]
    fn malformed_frames_are_errors_and_the_decoder_recovers_at_a_keyframe() {
        let mut decoder = VpxDecoder::new(VpxCodec::Vp8).expect("decoder");
        for bad in [
            &[][..],
            &[0x9d, 0x01, 0x2a],
            &[0xff; 64],
            &[0x10, 0x02, 0x00, 0x9d],
        ] {
            assert!(decoder.decode(bad).is_err(), "{bad:?} decoded");
        }
        let mut vp9 = VpxDecoder::new(VpxCodec::Vp9).expect("decoder");
        assert!(vp9.decode(&[0xff; 32]).is_err());
        let mut encoder = Vp8Encoder::new(192, 64, 300, 300).expect("encoder");
        let picture = pattern::frame(192, 64, 7).expect("valid size");
        let frames = encoder.encode(&picture, 0, 33, true).expect("encodes");
        let decoded = decoder
            .decode(&frames[0].data)
            .expect("decodes")
            .expect("a picture");
        assert_eq!(pattern::read_counter(decoded.y(), 192), Some(7));
    }
}
