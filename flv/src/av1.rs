//! AV1 in Enhanced RTMP: the AV1CodecConfigurationRecord (`av1C`) of a sequence start,
//! its RFC 6381 codec string, and the picture size from its sequence header OBU.
//!
//! ```
//! use videopick_flv::av1::Av1Config;
//!
//! // av1C: marker/version, profile 0 level 8 (4.0), main tier 8-bit 4:2:0, no OBUs.
//! let c = Av1Config::parse(&[0x81, 0x08, 0x0c, 0x00])?;
//! assert_eq!(c.codec_string(), "av01.0.08M.08");
//! assert!(c.size().is_none());
//! # Ok::<(), videopick_flv::FlvError>(())
//! ```

use crate::bits::BitReader;
use crate::error::{FlvError, Result};

/// OBU type of a sequence header.
const OBU_SEQUENCE_HEADER: u8 = 1;

/// A parsed AV1CodecConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    /// `seq_profile` (0 main, 1 high, 2 professional).
    pub profile: u8,
    /// `seq_level_idx_0`.
    pub level: u8,
    /// `seq_tier_0` (high tier).
    pub high_tier: bool,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Monochrome.
    pub monochrome: bool,
    /// Picture size from the sequence header OBU among `configOBUs`, when there is one.
    size: Option<(u32, u32)>,
}

impl Av1Config {
    /// Parse a record (at least its 4 fixed bytes).
    pub fn parse(data: &[u8]) -> Result<Av1Config> {
        if data.len() < 4 {
            return Err(FlvError::UnexpectedEof {
                what: "AV1CodecConfigurationRecord",
            });
        }
        if data[0] & 0x80 == 0 {
            return Err(FlvError::invalid(
                "AV1CodecConfigurationRecord",
                "marker bit is not set",
            ));
        }
        let high = data[2] & 0x40 != 0;
        let twelve = data[2] & 0x20 != 0;
        let profile = data[1] >> 5;
        let bit_depth = match (high, twelve) {
            (false, _) => 8,
            (true, true) if profile == 2 => 12,
            (true, _) => 10,
        };
        let size = sequence_header_in(&data[4..]).and_then(|obu| size_of(obu).ok());
        Ok(Av1Config {
            profile,
            level: data[1] & 0x1f,
            high_tier: data[2] & 0x80 != 0,
            bit_depth,
            monochrome: data[2] & 0x10 != 0,
            size,
        })
    }

    /// RFC 6381 / AV1-ISOBMFF codec string, e.g. `av01.0.08M.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level,
            if self.high_tier { 'H' } else { 'M' },
            self.bit_depth
        )
    }

    /// Picture size (max_frame_width × max_frame_height), if the record carries a
    /// sequence header.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }
}

/// The picture size in a temporal unit's sequence header OBU, if it has one (a key
/// frame's data usually does).
pub fn frame_size(data: &[u8]) -> Option<(u32, u32)> {
    sequence_header_in(data).and_then(|obu| size_of(obu).ok())
}

/// The payload of the first sequence header OBU in a run of OBUs (low-overhead format).
fn sequence_header_in(mut data: &[u8]) -> Option<&[u8]> {
    while let Some(&header) = data.first() {
        let kind = (header >> 3) & 0x0f;
        let ext = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut at = 1 + usize::from(ext);
        let len = if has_size {
            let (v, n) = leb128(data.get(at..)?)?;
            at += n;
            usize::try_from(v).ok()?
        } else {
            data.len().checked_sub(at)?
        };
        let end = at.checked_add(len)?;
        let payload = data.get(at..end)?;
        if kind == OBU_SEQUENCE_HEADER {
            return Some(payload);
        }
        data = &data[end..];
    }
    None
}

/// Unsigned LEB128 (at most 8 bytes); (value, bytes read).
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in data.iter().take(8).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// max_frame_width/height from a sequence header OBU payload (AV1 spec 5.5.1).
fn size_of(obu: &[u8]) -> Result<(u32, u32)> {
    let mut r = BitReader::new(obu);
    let _profile = r.bits(3)?;
    let _still = r.bit()?;
    let reduced = r.bit()? == 1;
    if reduced {
        r.skip(5)?; // seq_level_idx[0]
    } else {
        let timing_info = r.bit()? == 1;
        let mut decoder_model = false;
        let mut buffer_delay_len = 0;
        if timing_info {
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.bit()? == 1 {
                uvlc(&mut r)?; // num_ticks_per_picture_minus_1
            }
            decoder_model = r.bit()? == 1;
            if decoder_model {
                buffer_delay_len = r.bits(5)? + 1;
                r.skip(32)?; // num_units_in_decoding_tick
                r.skip(10)?; // buffer_removal_time_length_minus_1, frame_presentation_…
            }
        }
        let initial_display_delay = r.bit()? == 1;
        let points = r.bits(5)? + 1;
        for _ in 0..points {
            r.skip(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.skip(1)?; // seq_tier
            }
            if decoder_model && r.bit()? == 1 {
                r.skip(2 * buffer_delay_len as usize + 1)?;
            }
            if initial_display_delay && r.bit()? == 1 {
                r.skip(4)?;
            }
        }
    }
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let w = r.bits(wbits)? + 1;
    let h = r.bits(hbits)? + 1;
    Ok((w, h))
}

/// AV1's variable-length unsigned code (spec 4.10.3), bounded to 32 bits.
fn uvlc(r: &mut BitReader<'_>) -> Result<u32> {
    let mut zeros = 0;
    while r.bit()? == 0 {
        zeros += 1;
        if zeros >= 32 {
            return Ok(u32::MAX);
        }
    }
    let v = r.bits(zeros)?;
    Ok(v.saturating_add((1u32 << zeros) - 1))
}

#[cfg(test)]
#[allow(clippy::format_push_string)] // building bit strings by hand
mod tests {
    use super::*;

    #[test]
    fn a_sequence_header_gives_the_size() {
        // Sequence header OBU (type 1, with size): profile 0, not reduced, no timing
        // info, no initial display delay, 1 operating point (idc 0, level 8), frame
        // width/height bits 11/11 (value-1), width 1280, height 720.
        let mut bits = String::new();
        bits += "000"; // seq_profile
        bits += "0"; // still_picture
        bits += "0"; // reduced_still_picture_header
        bits += "0"; // timing_info_present_flag
        bits += "0"; // initial_display_delay_present_flag
        bits += "00000"; // operating_points_cnt_minus_1
        bits += "000000000000"; // operating_point_idc[0]
        bits += "01000"; // seq_level_idx[0] = 8
        bits += "0"; // seq_tier[0] (levels above 7 have one)
        bits += "1010"; // frame_width_bits_minus_1 = 10
        bits += "1001"; // frame_height_bits_minus_1 = 9
        bits += &format!("{:011b}", 1279);
        bits += &format!("{:010b}", 719);
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let payload: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        let mut record = vec![
            0x81,
            0x08,
            0x0c,
            0x00,
            0x0a,
            u8::try_from(payload.len()).unwrap(),
        ];
        record.extend_from_slice(&payload);
        let c = Av1Config::parse(&record).unwrap();
        assert_eq!(c.size(), Some((1280, 720)));
        assert_eq!(c.codec_string(), "av01.0.08M.08");
        assert_eq!(frame_size(&record[4..]), Some((1280, 720)));
        // Truncated input is an error or nothing, never a panic.
        for n in 0..record.len() {
            let _ = Av1Config::parse(&record[..n]);
            let _ = frame_size(&record[4..n.max(4)]);
        }
    }
}
