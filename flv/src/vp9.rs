//! VP9 in Enhanced RTMP: the VPCodecConfigurationRecord (`vpcC`) of a sequence start, its
//! RFC 6381 codec string, and the picture size from a key frame's uncompressed header.
//!
//! ```
//! use videopick_flv::vp9::Vp9Config;
//!
//! // profile 0, level 3.1, 8-bit 4:2:0 (colour fields BT.709), no init data.
//! let c = Vp9Config::parse(&[0x00, 31, 0x82, 1, 1, 1, 0, 0])?;
//! assert_eq!(c.codec_string(), "vp09.00.31.08");
//! // As ffmpeg sends it: the vpcC FullBox header first.
//! let sent = [1, 0, 0, 0, 0x00, 20, 0x82, 2, 2, 2, 0, 0];
//! assert_eq!(Vp9Config::record(&sent).len(), 8);
//! assert_eq!(Vp9Config::parse(&sent)?.codec_string(), "vp09.00.20.08");
//! # Ok::<(), videopick_flv::FlvError>(())
//! ```

use crate::bits::BitReader;
use crate::error::{FlvError, Result};

/// A parsed VPCodecConfigurationRecord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Config {
    /// Profile 0–3.
    pub profile: u8,
    /// Level × 10 (31 is level 3.1).
    pub level: u8,
    /// 8, 10 or 12.
    pub bit_depth: u8,
}

impl Vp9Config {
    /// The record in a sequence start: ffmpeg sends the whole `vpcC` payload, a FullBox
    /// header (version 1, flags 0) first; without one, `data` is the record.
    pub fn record(data: &[u8]) -> &[u8] {
        match data {
            // Level 0 does not exist, so [1, 0, 0, 0] is a FullBox header.
            [1, 0, 0, 0, rest @ ..] if rest.len() >= 8 => rest,
            _ => data,
        }
    }

    /// Parse a record (its 8 fixed bytes; a FullBox header first is skipped).
    pub fn parse(data: &[u8]) -> Result<Vp9Config> {
        let data = Vp9Config::record(data);
        if data.len() < 8 {
            return Err(FlvError::UnexpectedEof {
                what: "VPCodecConfigurationRecord",
            });
        }
        let bit_depth = data[2] >> 4;
        if !matches!(bit_depth, 8 | 10 | 12) || data[0] > 3 {
            return Err(FlvError::invalid(
                "VPCodecConfigurationRecord",
                format!("profile {} with bit depth {bit_depth}", data[0]),
            ));
        }
        Ok(Vp9Config {
            profile: data[0],
            level: data[1],
            bit_depth,
        })
    }

    /// RFC 6381 / VP-ISOBMFF codec string, e.g. `vp09.00.31.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "vp09.{:02}.{:02}.{:02}",
            self.profile, self.level, self.bit_depth
        )
    }
}

/// The picture size in a VP9 key frame's uncompressed header (VP9 spec 6.2); `None` for
/// other frames or malformed data.
pub fn frame_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(frame);
    let read = |r: &mut BitReader<'_>| -> Result<Option<(u32, u32)>> {
        if r.bits(2)? != 2 {
            return Ok(None); // frame_marker
        }
        let low = r.bit()?;
        let high = r.bit()?;
        let profile = (high << 1) | low;
        if profile == 3 {
            r.skip(1)?;
        }
        if r.bit()? == 1 {
            return Ok(None); // show_existing_frame
        }
        if r.bit()? != 0 {
            return Ok(None); // not a key frame
        }
        r.skip(2)?; // show_frame, error_resilient_mode
        if r.bits(24)? != 0x49_83_42 {
            return Ok(None); // frame_sync_code
        }
        if profile >= 2 {
            r.skip(1)?; // ten_or_twelve_bit
        }
        let color_space = r.bits(3)?;
        if color_space != 7 {
            r.skip(1)?; // color_range
            if profile == 1 || profile == 3 {
                r.skip(3)?; // subsampling_x, subsampling_y, reserved_zero
            }
        } else if profile == 1 || profile == 3 {
            r.skip(1)?;
        }
        let w = r.bits(16)? + 1;
        let h = r.bits(16)? + 1;
        Ok(Some((w, h)))
    };
    read(&mut r).ok().flatten()
}

#[cfg(test)]
#[allow(clippy::format_push_string)] // building bit strings by hand
mod tests {
    use super::*;

    #[test]
    fn a_key_frame_header_gives_the_size() {
        // frame_marker 10, profile 0 (0,0), show_existing 0, frame_type 0 (key),
        // show_frame 1, error_resilient 0, sync code, color_space 2 (BT.709),
        // color_range 0, width-1 = 639, height-1 = 359.
        let mut bits = String::from("10" /* marker */);
        bits += "00" /* profile */;
        bits += "0" /* show_existing */;
        bits += "0" /* key */;
        bits += "10";
        bits += &format!("{:024b}", 0x49_83_42);
        bits += "010" /* color space */;
        bits += "0" /* range */;
        bits += &format!("{:016b}{:016b}", 639, 359);
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let frame: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect();
        assert_eq!(frame_size(&frame), Some((640, 360)));
        for n in 0..frame.len() {
            assert_eq!(frame_size(&frame[..n]), None);
        }
        let mut inter = frame.clone();
        inter[0] |= 0x04; // frame_type 1
        assert_eq!(frame_size(&inter), None);
    }
}
