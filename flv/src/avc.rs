//! H.264: AVCDecoderConfigurationRecord (ISO 14496-15) and the parts of the SPS needed for
//! playlists (profile, level, dimensions).

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::{BitReader, Reader, rbsp};
use crate::error::{FlvError, Result};

/// AVCDecoderConfigurationRecord: the body of an AVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// configurationVersion (1).
    pub version: u8,
    /// AVCProfileIndication.
    pub profile: u8,
    /// profile_compatibility.
    pub compatibility: u8,
    /// AVCLevelIndication.
    pub level: u8,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nalu_length_size: u8,
    /// Sequence parameter sets (slices of the input).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets (slices of the input).
    pub pps: Vec<Bytes>,
    /// Anything after the PPS list (high-profile chroma/bit-depth extension), kept verbatim.
    pub extension: Bytes,
}

impl AvcConfig {
    /// Parse a record, slicing parameter sets out of `data` without copying.
    pub fn parse(data: &Bytes) -> Result<AvcConfig> {
        let mut r = Reader::new(data);
        let version = r.u8("AVC config version")?;
        if version != 1 {
            return Err(FlvError::invalid(
                "AVCDecoderConfigurationRecord",
                format!("version {version}"),
            ));
        }
        let profile = r.u8("AVC profile")?;
        let compatibility = r.u8("AVC compatibility")?;
        let level = r.u8("AVC level")?;
        let nalu_length_size = (r.u8("NALU length size")? & 3) + 1;
        if nalu_length_size == 3 {
            return Err(FlvError::invalid(
                "AVCDecoderConfigurationRecord",
                "NALU length size 3",
            ));
        }
        let n_sps = r.u8("SPS count")? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(n_sps));
        for _ in 0..n_sps {
            sps.push(r.slice16(data, "SPS")?);
        }
        let n_pps = r.u8("PPS count")?;
        let mut pps = Vec::with_capacity(usize::from(n_pps));
        for _ in 0..n_pps {
            pps.push(r.slice16(data, "PPS")?);
        }
        let extension = data.slice(r.position()..);
        Ok(AvcConfig {
            version,
            profile,
            compatibility,
            level,
            nalu_length_size,
            sps,
            pps,
            extension,
        })
    }

    /// Encode the record.
    pub fn to_bytes(&self) -> Result<Bytes> {
        if self.sps.len() > 31 || self.pps.len() > 255 {
            return Err(FlvError::invalid(
                "AVCDecoderConfigurationRecord",
                "too many parameter sets",
            ));
        }
        let mut out = BytesMut::new();
        out.put_slice(&[
            self.version,
            self.profile,
            self.compatibility,
            self.level,
            0xfc | (self.nalu_length_size.clamp(1, 4) - 1),
            0xe0 | self.sps.len() as u8,
        ]);
        for ps in &self.sps {
            put_ps(&mut out, ps)?;
        }
        out.put_u8(self.pps.len() as u8);
        for ps in &self.pps {
            put_ps(&mut out, ps)?;
        }
        out.put_slice(&self.extension);
        Ok(out.freeze())
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// Parse the first SPS.
    pub fn sps_info(&self) -> Result<SpsInfo> {
        let sps = self
            .sps
            .first()
            .ok_or_else(|| FlvError::invalid("AVCDecoderConfigurationRecord", "no SPS"))?;
        SpsInfo::parse(sps)
    }
}

fn put_ps(out: &mut BytesMut, ps: &Bytes) -> Result<()> {
    let len = u16::try_from(ps.len()).map_err(|_| FlvError::TooLarge {
        what: "parameter set",
        len: ps.len() as u64,
        max: u64::from(u16::MAX),
    })?;
    out.put_u16(len);
    out.put_slice(ps);
    Ok(())
}

/// What the SPS says about the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpsInfo {
    /// profile_idc.
    pub profile_idc: u8,
    /// constraint_set flags byte.
    pub constraints: u8,
    /// level_idc.
    pub level_idc: u8,
    /// Displayed width after cropping.
    pub width: u32,
    /// Displayed height after cropping.
    pub height: u32,
    /// Frame rate from the VUI timing info, if present.
    pub fps: Option<f64>,
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(FlvError::invalid(
                    "H.264 SPS",
                    format!("scaling list delta {delta} out of range"),
                ));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

impl SpsInfo {
    /// Parse an H.264 SPS NAL unit (with its one-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<SpsInfo> {
        if nal.len() < 4 || nal[0] & 0x1f != 7 {
            return Err(FlvError::invalid("H.264 SPS", "not an SPS NAL unit"));
        }
        let data = rbsp(&nal[1..]);
        let mut r = BitReader::new(&data);
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        let _sps_id = r.ue()?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()? == 1;
            }
            let _bit_depth_luma = r.ue()?;
            let _bit_depth_chroma = r.ue()?;
            let _qpprime = r.bit()?;
            if r.bit()? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? == 1 {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num = r.ue()?;
        let poc_type = r.ue()?;
        if poc_type == 0 {
            let _log2_max_poc_lsb = r.ue()?;
        } else if poc_type == 1 {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(FlvError::invalid(
                    "H.264 SPS",
                    "too many ref frames in POC cycle",
                ));
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        let _max_ref_frames = r.ue()?;
        r.bit()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.bit()? == 1;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field
        }
        r.bit()?; // direct_8x8_inference
        let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0, 0, 0);
        if r.bit()? == 1 {
            cl = u64::from(r.ue()?);
            cr = u64::from(r.ue()?);
            ct = u64::from(r.ue()?);
            cb = u64::from(r.ue()?);
        }
        let frame_height_mult = if frame_mbs_only { 1 } else { 2 };
        let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
            (1, false) => (2, 2),
            (2, false) => (2, 1),
            _ => (1, 1),
        };
        let (crop_x, crop_y) = if chroma_format_idc == 0 || separate_colour_plane {
            (1, frame_height_mult)
        } else {
            (sub_w, sub_h * frame_height_mult)
        };
        let full_w = width_mbs * 16;
        let full_h = height_map_units * 16 * frame_height_mult;
        let width = full_w.saturating_sub((cl + cr).saturating_mul(crop_x));
        let height = full_h.saturating_sub((ct + cb).saturating_mul(crop_y));
        let fps = if r.bit().unwrap_or(0) == 1 {
            vui_fps(&mut r).unwrap_or(None)
        } else {
            None
        };
        Ok(SpsInfo {
            profile_idc,
            constraints,
            level_idc,
            width: width.min(u64::from(u32::MAX)) as u32,
            height: height.min(u64::from(u32::MAX)) as u32,
            fps,
        })
    }
}

/// Frame rate from the VUI timing info (None when absent).
fn vui_fps(r: &mut BitReader<'_>) -> Result<Option<f64>> {
    if r.bit()? == 1 {
        // aspect_ratio_info
        if r.bits(8)? == 255 {
            r.skip(32)?;
        }
    }
    if r.bit()? == 1 {
        r.bit()?; // overscan_appropriate
    }
    if r.bit()? == 1 {
        r.skip(4)?; // video_format, full_range
        if r.bit()? == 1 {
            r.skip(24)?;
        }
    }
    if r.bit()? == 1 {
        r.ue()?;
        r.ue()?;
    }
    if r.bit()? == 1 {
        let num_units = r.bits(32)?;
        let time_scale = r.bits(32)?;
        if num_units > 0 {
            return Ok(Some(f64::from(time_scale) / (2.0 * f64::from(num_units))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS written by `ffmpeg -f lavfi -i testsrc=size=1280x720:rate=30 -pix_fmt yuv420p
    /// -c:v libx264 -profile:v high` (High, level 3.1, VUI timing 30 fps).
    pub(crate) const SPS_720P: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];

    #[test]
    fn out_of_range_scaling_delta_is_an_error_not_an_overflow() {
        // Input found by the flv_media fuzz target: a scaling-list delta far outside
        // -128..=127 used to overflow an i32.
        let input = [
            0x07, 0x7a, 0x11, 0xfe, 0xfe, 0x07, 0x7a, 0x11, 0x01, 0x11, 0x24, 0xff, 0xff, 0xff,
            0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0x60, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x56,
            0xff, 0xff, 0xff, 0xff, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x11,
        ];
        assert!(SpsInfo::parse(&input).is_err());
    }

    #[test]
    fn parses_x264_sps() {
        let info = SpsInfo::parse(SPS_720P).unwrap();
        assert_eq!((info.profile_idc, info.level_idc), (100, 31));
        assert_eq!((info.width, info.height), (1280, 720));
        assert_eq!(info.fps, Some(30.0));
    }

    #[test]
    fn record_round_trip_and_codec_string() {
        let cfg = AvcConfig {
            version: 1,
            profile: 0x64,
            compatibility: 0,
            level: 0x1f,
            nalu_length_size: 4,
            sps: vec![Bytes::from_static(SPS_720P)],
            pps: vec![Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0])],
            extension: Bytes::from_static(&[0xfd, 0xf8, 0xf8, 0x00]),
        };
        let bytes = cfg.to_bytes().unwrap();
        assert_eq!(AvcConfig::parse(&bytes).unwrap(), cfg);
        assert_eq!(cfg.codec_string(), "avc1.64001f");
        assert_eq!(cfg.sps_info().unwrap().width, 1280);
    }

    #[test]
    fn truncated_records_are_errors() {
        let cfg = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0x00, 0x40, 0x67]);
        assert!(AvcConfig::parse(&cfg).is_err());
        assert!(AvcConfig::parse(&Bytes::from_static(&[2])).is_err());
        assert!(SpsInfo::parse(&[0x67, 0x64]).is_err());
        assert!(SpsInfo::parse(&[0x68, 0, 0, 0, 0]).is_err());
        // An SPS of all-zero bits hits the exp-golomb bound, not a panic.
        assert!(SpsInfo::parse(&[0x67, 0x42, 0, 0x1e, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
