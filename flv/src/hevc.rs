//! H.265: HEVCDecoderConfigurationRecord (ISO 14496-15) and the dimensions from the SPS.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::{BitReader, Reader, rbsp};
use crate::error::{FlvError, Result};

/// One parameter-set array of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcNalArray {
    /// array_completeness.
    pub complete: bool,
    /// NAL unit type (32 VPS, 33 SPS, 34 PPS, 39/40 SEI).
    pub nal_type: u8,
    /// The NAL units (slices of the input).
    pub nalus: Vec<Bytes>,
}

/// HEVCDecoderConfigurationRecord: the body of an HEVC sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig {
    /// configurationVersion (1).
    pub version: u8,
    /// general_profile_space (0..=3).
    pub profile_space: u8,
    /// general_tier_flag (true = High tier).
    pub high_tier: bool,
    /// general_profile_idc.
    pub profile_idc: u8,
    /// general_profile_compatibility_flags.
    pub compatibility_flags: u32,
    /// general_constraint_indicator_flags (48 bits).
    pub constraint_flags: u64,
    /// general_level_idc (30 × level).
    pub level_idc: u8,
    /// min_spatial_segmentation_idc (12 bits).
    pub min_spatial_segmentation: u16,
    /// parallelismType (2 bits).
    pub parallelism_type: u8,
    /// chroma_format_idc.
    pub chroma_format: u8,
    /// bit_depth_luma_minus8.
    pub bit_depth_luma_minus8: u8,
    /// bit_depth_chroma_minus8.
    pub bit_depth_chroma_minus8: u8,
    /// avgFrameRate (frames per 256 s).
    pub avg_frame_rate: u16,
    /// constantFrameRate (2 bits).
    pub constant_frame_rate: u8,
    /// numTemporalLayers (3 bits).
    pub num_temporal_layers: u8,
    /// temporalIdNested.
    pub temporal_id_nested: bool,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nalu_length_size: u8,
    /// Parameter-set arrays.
    pub arrays: Vec<HevcNalArray>,
}

/// NAL unit types of the parameter sets.
pub const NAL_VPS: u8 = 32;
/// SPS NAL unit type.
pub const NAL_SPS: u8 = 33;
/// PPS NAL unit type.
pub const NAL_PPS: u8 = 34;

impl HevcConfig {
    /// Parse a record, slicing NAL units out of `data` without copying.
    pub fn parse(data: &Bytes) -> Result<HevcConfig> {
        let mut r = Reader::new(data);
        let version = r.u8("HEVC config version")?;
        if version != 1 {
            return Err(FlvError::invalid(
                "HEVCDecoderConfigurationRecord",
                format!("version {version}"),
            ));
        }
        let b = r.u8("HEVC profile")?;
        let compatibility_flags = r.u32("HEVC compatibility flags")?;
        let c = r.bytes(6, "HEVC constraint flags")?;
        let constraint_flags = c.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        let level_idc = r.u8("HEVC level")?;
        let min_spatial_segmentation = r.u16("min_spatial_segmentation")? & 0x0fff;
        let parallelism_type = r.u8("parallelismType")? & 3;
        let chroma_format = r.u8("chromaFormat")? & 3;
        let bit_depth_luma_minus8 = r.u8("bitDepthLuma")? & 7;
        let bit_depth_chroma_minus8 = r.u8("bitDepthChroma")? & 7;
        let avg_frame_rate = r.u16("avgFrameRate")?;
        let f = r.u8("HEVC flags")?;
        let nalu_length_size = (f & 3) + 1;
        if nalu_length_size == 3 {
            return Err(FlvError::invalid(
                "HEVCDecoderConfigurationRecord",
                "NALU length size 3",
            ));
        }
        let n_arrays = r.u8("numOfArrays")?;
        let mut arrays = Vec::with_capacity(usize::from(n_arrays));
        for _ in 0..n_arrays {
            let h = r.u8("NAL array header")?;
            let n = usize::from(r.u16("numNalus")?);
            if n * 2 > r.remaining() {
                return Err(FlvError::UnexpectedEof {
                    what: "HEVC NAL units",
                });
            }
            let mut nalus = Vec::with_capacity(n);
            for _ in 0..n {
                nalus.push(r.slice16(data, "NAL unit")?);
            }
            arrays.push(HevcNalArray {
                complete: h & 0x80 != 0,
                nal_type: h & 0x3f,
                nalus,
            });
        }
        Ok(HevcConfig {
            version,
            profile_space: b >> 6,
            high_tier: b & 0x20 != 0,
            profile_idc: b & 0x1f,
            compatibility_flags,
            constraint_flags,
            level_idc,
            min_spatial_segmentation,
            parallelism_type,
            chroma_format,
            bit_depth_luma_minus8,
            bit_depth_chroma_minus8,
            avg_frame_rate,
            constant_frame_rate: f >> 6,
            num_temporal_layers: (f >> 3) & 7,
            temporal_id_nested: f & 4 != 0,
            nalu_length_size,
            arrays,
        })
    }

    /// Encode the record.
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = BytesMut::new();
        out.put_u8(self.version);
        out.put_u8(
            ((self.profile_space & 3) << 6)
                | (u8::from(self.high_tier) << 5)
                | (self.profile_idc & 0x1f),
        );
        out.put_u32(self.compatibility_flags);
        out.put_slice(&self.constraint_flags.to_be_bytes()[2..]);
        out.put_u8(self.level_idc);
        out.put_u16(0xf000 | (self.min_spatial_segmentation & 0x0fff));
        out.put_u8(0xfc | (self.parallelism_type & 3));
        out.put_u8(0xfc | (self.chroma_format & 3));
        out.put_u8(0xf8 | (self.bit_depth_luma_minus8 & 7));
        out.put_u8(0xf8 | (self.bit_depth_chroma_minus8 & 7));
        out.put_u16(self.avg_frame_rate);
        out.put_u8(
            ((self.constant_frame_rate & 3) << 6)
                | ((self.num_temporal_layers & 7) << 3)
                | (u8::from(self.temporal_id_nested) << 2)
                | (self.nalu_length_size.clamp(1, 4) - 1),
        );
        let n = u8::try_from(self.arrays.len())
            .map_err(|_| FlvError::invalid("HEVCDecoderConfigurationRecord", "too many arrays"))?;
        out.put_u8(n);
        for a in &self.arrays {
            out.put_u8((u8::from(a.complete) << 7) | (a.nal_type & 0x3f));
            let n = u16::try_from(a.nalus.len()).map_err(|_| {
                FlvError::invalid("HEVCDecoderConfigurationRecord", "too many NAL units")
            })?;
            out.put_u16(n);
            for nal in &a.nalus {
                let len = u16::try_from(nal.len()).map_err(|_| FlvError::TooLarge {
                    what: "HEVC NAL unit",
                    len: nal.len() as u64,
                    max: u64::from(u16::MAX),
                })?;
                out.put_u16(len);
                out.put_slice(nal);
            }
        }
        Ok(out.freeze())
    }

    /// The NAL units of one type (e.g. [`NAL_SPS`]).
    pub fn nalus(&self, nal_type: u8) -> impl Iterator<Item = &Bytes> {
        self.arrays
            .iter()
            .filter(move |a| a.nal_type == nal_type)
            .flat_map(|a| a.nalus.iter())
    }

    /// RFC 6381 / ISO 14496-15 codec string, e.g. `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            self.compatibility_flags.reverse_bits(),
            if self.high_tier { 'H' } else { 'L' },
            self.level_idc
        );
        let bytes = &self.constraint_flags.to_be_bytes()[2..];
        let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        for b in &bytes[..used] {
            let _ = write!(s, ".{b:X}");
        }
        s
    }

    /// Dimensions from the first SPS.
    pub fn sps_info(&self) -> Result<HevcSpsInfo> {
        let sps = self
            .nalus(NAL_SPS)
            .next()
            .ok_or_else(|| FlvError::invalid("HEVCDecoderConfigurationRecord", "no SPS"))?;
        HevcSpsInfo::parse(sps)
    }
}

/// What the HEVC SPS says about the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcSpsInfo {
    /// general_profile_idc.
    pub profile_idc: u8,
    /// general_level_idc.
    pub level_idc: u8,
    /// Displayed width after the conformance window.
    pub width: u32,
    /// Displayed height after the conformance window.
    pub height: u32,
}

impl HevcSpsInfo {
    /// Parse an H.265 SPS NAL unit (with its two-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<HevcSpsInfo> {
        if nal.len() < 3 || (nal[0] >> 1) & 0x3f != NAL_SPS {
            return Err(FlvError::invalid("H.265 SPS", "not an SPS NAL unit"));
        }
        let data = rbsp(&nal[2..]);
        let mut r = BitReader::new(&data);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as usize;
        r.skip(1)?; // temporal_id_nesting
        // profile_tier_level(1, max_sub_layers_minus1)
        r.skip(2 + 1)?;
        let profile_idc = r.bits(5)? as u8;
        r.skip(32 + 48)?;
        let level_idc = r.bits(8)? as u8;
        let mut profile_present = [false; 8];
        let mut level_present = [false; 8];
        for i in 0..max_sub_layers_minus1 {
            profile_present[i] = r.bit()? == 1;
            level_present[i] = r.bit()? == 1;
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - max_sub_layers_minus1))?;
        }
        for i in 0..max_sub_layers_minus1 {
            if profile_present[i] {
                r.skip(88)?;
            }
            if level_present[i] {
                r.skip(8)?;
            }
        }
        let _sps_id = r.ue()?;
        let chroma_format_idc = r.ue()?;
        let separate = chroma_format_idc == 3 && r.bit()? == 1;
        let width = u64::from(r.ue()?);
        let height = u64::from(r.ue()?);
        let (mut w, mut h) = (width, height);
        if r.bit()? == 1 {
            let (sub_w, sub_h) = match (chroma_format_idc, separate) {
                (1, false) => (2, 2),
                (2, false) => (2, 1),
                _ => (1, 1),
            };
            let l = u64::from(r.ue()?);
            let rr = u64::from(r.ue()?);
            let t = u64::from(r.ue()?);
            let b = u64::from(r.ue()?);
            w = w.saturating_sub((l + rr) * sub_w);
            h = h.saturating_sub((t + b) * sub_h);
        }
        Ok(HevcSpsInfo {
            profile_idc,
            level_idc,
            width: w.min(u64::from(u32::MAX)) as u32,
            height: h.min(u64::from(u32::MAX)) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameter sets written by `ffmpeg -f lavfi -i testsrc=size=640x360:rate=25
    /// -pix_fmt yuv420p -c:v libx265` (Main, level 2.1).
    const VPS: &[u8] = &[
        0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3f, 0x95, 0x98, 0x09,
    ];
    const SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05,
        0xa0, 0x20, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0x21,
    ];
    const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];

    fn config() -> HevcConfig {
        HevcConfig {
            version: 1,
            profile_space: 0,
            high_tier: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_flags: 0x9000_0000_0000,
            level_idc: 63,
            min_spatial_segmentation: 0,
            parallelism_type: 0,
            chroma_format: 1,
            bit_depth_luma_minus8: 0,
            bit_depth_chroma_minus8: 0,
            avg_frame_rate: 0,
            constant_frame_rate: 0,
            num_temporal_layers: 1,
            temporal_id_nested: true,
            nalu_length_size: 4,
            arrays: [(NAL_VPS, VPS), (NAL_SPS, SPS), (NAL_PPS, PPS)]
                .into_iter()
                .map(|(t, n)| HevcNalArray {
                    complete: true,
                    nal_type: t,
                    nalus: vec![Bytes::from_static(n)],
                })
                .collect(),
        }
    }

    #[test]
    fn sps_dimensions() {
        let info = HevcSpsInfo::parse(SPS).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!((info.profile_idc, info.level_idc), (1, 63));
    }

    #[test]
    fn record_round_trip_and_codec_string() {
        let cfg = config();
        let bytes = cfg.to_bytes().unwrap();
        assert_eq!(HevcConfig::parse(&bytes).unwrap(), cfg);
        assert_eq!(cfg.codec_string(), "hvc1.1.6.L63.90");
        assert_eq!(cfg.sps_info().unwrap().width, 640);
    }

    #[test]
    fn truncated_is_error() {
        let bytes = config().to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert!(HevcConfig::parse(&bytes.slice(..cut)).is_err(), "cut {cut}");
        }
        for cut in 0..SPS.len() - 2 {
            let _ = HevcSpsInfo::parse(&SPS[..cut]);
        }
    }
}
