//! H.264 with openh264: the encoder `stream` uses and the decoder `receive` uses.

use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};

use crate::pattern::I420;

/// What went wrong in the codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// openh264 refused.
    #[error("openh264: {0}")]
    OpenH264(#[from] openh264::Error),
}

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    /// Target bitrate.
    pub bitrate_kbps: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames between IDRs (0: only when asked).
    pub keyframe_interval: u32,
}

/// One encoded picture.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// Annex-B NAL units.
    pub data: Vec<u8>,
    /// An IDR (decodable on its own).
    pub key: bool,
}

/// H.264 constrained-baseline encoder.
#[allow(missing_debug_implementations)] // openh264's encoder is not Debug
pub struct H264Encoder {
    encoder: Encoder,
}

impl H264Encoder {
    /// An encoder with these settings.
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(
                settings.bitrate_kbps.saturating_mul(1000),
            ))
            .max_frame_rate(FrameRate::from_hz(settings.fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            // Rate control may skip a picture to hold the bitrate (openh264 cannot hold it
            // otherwise); `encode` then returns no frame.
            .skip_frames(true)
            // IDRs come at the interval and on request only: an IDR on every scene change
            // costs a conference stream several frames' worth of bits each time.
            .scene_change_detect(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval,
            ));
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
        Ok(Self { encoder })
    }

    /// Encodes a picture; `force_key` makes it an IDR. `None`: rate control skipped it.
    pub fn encode(
        &mut self,
        picture: &I420,
        force_key: bool,
    ) -> Result<Option<EncodedFrame>, CodecError> {
        if force_key {
            self.encoder.force_intra_frame();
        }
        let (w, h) = (picture.width, picture.height);
        let (y, uv) = picture.data.split_at(w * h);
        let (u, v) = uv.split_at(w / 2 * h / 2);
        let source = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        let bitstream = self.encoder.encode(&source)?;
        let kind = bitstream.frame_type();
        if matches!(kind, FrameType::Skip | FrameType::Invalid) {
            if force_key {
                // The request must survive a skipped picture.
                self.encoder.force_intra_frame();
            }
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            // Only an IDR resets references: a scene-change I frame may not start a stream.
            key: kind == FrameType::IDR,
            data: bitstream.to_vec(),
        }))
    }
}

/// H.264 decoder for one stream.
#[allow(missing_debug_implementations)] // openh264's decoder is not Debug
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    /// A fresh decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            decoder: Decoder::new()?,
        })
    }

    /// Decodes one frame's NAL units into a packed I420 picture; `None` when no picture came
    /// out yet.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420>, CodecError> {
        let Some(picture) = self.decoder.decode(data)? else {
            return Ok(None);
        };
        let (width, height) = picture.dimensions();
        let (sy, su, sv) = picture.strides();
        let mut packed = Vec::with_capacity(width * height * 3 / 2);
        for (plane, stride, w, h) in [
            (picture.y(), sy, width, height),
            (picture.u(), su, width / 2, height / 2),
            (picture.v(), sv, width / 2, height / 2),
        ] {
            for row in 0..h {
                packed.extend_from_slice(&plane[row * stride..row * stride + w]);
            }
        }
        Ok(Some(I420 {
            width,
            height,
            data: packed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern;

    #[test]
    fn encoded_pattern_decodes_to_a_close_picture() {
        let settings = EncoderSettings {
            bitrate_kbps: 500,
            fps: 30,
            keyframe_interval: 0,
        };
        let mut encoder = H264Encoder::new(settings).expect("encoder");
        let mut decoder = H264Decoder::new().expect("decoder");
        for n in 0..10 {
            let picture = pattern::frame(320, 240, n).expect("valid size");
            let frame = encoder
                .encode(&picture, n == 5)
                .expect("encoded")
                .expect("not skipped at this bitrate");
            assert_eq!(frame.key, n == 0 || n == 5, "frame {n}");
            let decoded = decoder
                .decode(&frame.data)
                .expect("decodes")
                .expect("a picture");
            assert_eq!((decoded.width, decoded.height), (320, 240));
            assert_eq!(pattern::read_counter(decoded.y(), 320), Some(n));
            let psnr = pattern::psnr(picture.y(), decoded.y());
            assert!(psnr > 30.0, "frame {n}: PSNR {psnr:.1} dB");
        }
    }
}
