//! Video tag bodies (VIDEODATA): legacy FLV headers and Enhanced RTMP v1 (`IsExHeader`)
//! headers with FourCC codecs.

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::{put_si24, si24};
use crate::error::{FlvError, Result};

/// FLV/Enhanced RTMP video frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// 1: key frame (seekable).
    Key,
    /// 2: inter frame.
    Inter,
    /// 3: disposable inter frame (H.263 only).
    DisposableInter,
    /// 4: generated key frame (server use).
    GeneratedKey,
    /// 5: video info/command frame.
    Command,
    /// 0, 6, 7: reserved values.
    Reserved(u8),
}

impl FrameType {
    fn from_bits(v: u8) -> FrameType {
        match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::DisposableInter,
            4 => FrameType::GeneratedKey,
            5 => FrameType::Command,
            other => FrameType::Reserved(other),
        }
    }
    fn bits(self) -> u8 {
        match self {
            FrameType::Key => 1,
            FrameType::Inter => 2,
            FrameType::DisposableInter => 3,
            FrameType::GeneratedKey => 4,
            FrameType::Command => 5,
            FrameType::Reserved(v) => v & 7,
        }
    }
}

/// Video codec, from a legacy CodecID or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// Legacy 2: Sorenson H.263.
    H263,
    /// Legacy 3: screen video.
    Screen,
    /// Legacy 4: On2 VP6.
    Vp6,
    /// Legacy 5: VP6 with alpha.
    Vp6Alpha,
    /// Legacy 6: screen video v2.
    Screen2,
    /// Legacy 7 or `avc1`: H.264.
    Avc,
    /// Legacy 12 (widespread extension) or `hvc1`: H.265.
    Hevc,
    /// `av01`: AV1.
    Av1,
    /// `vp09`: VP9.
    Vp9,
    /// Another legacy CodecID.
    Legacy(u8),
    /// Another FourCC.
    FourCc([u8; 4]),
}

impl VideoCodec {
    /// The Enhanced RTMP FourCC, for codecs that have one.
    pub fn fourcc(self) -> Option<[u8; 4]> {
        match self {
            VideoCodec::Avc => Some(*b"avc1"),
            VideoCodec::Hevc => Some(*b"hvc1"),
            VideoCodec::Av1 => Some(*b"av01"),
            VideoCodec::Vp9 => Some(*b"vp09"),
            VideoCodec::FourCc(f) => Some(f),
            _ => None,
        }
    }

    /// The legacy 4-bit CodecID, for codecs that have one.
    pub fn legacy_id(self) -> Option<u8> {
        match self {
            VideoCodec::H263 => Some(2),
            VideoCodec::Screen => Some(3),
            VideoCodec::Vp6 => Some(4),
            VideoCodec::Vp6Alpha => Some(5),
            VideoCodec::Screen2 => Some(6),
            VideoCodec::Avc => Some(7),
            VideoCodec::Hevc => Some(12),
            VideoCodec::Legacy(id) => Some(id & 0x0f),
            _ => None,
        }
    }

    fn from_legacy(id: u8) -> VideoCodec {
        match id {
            2 => VideoCodec::H263,
            3 => VideoCodec::Screen,
            4 => VideoCodec::Vp6,
            5 => VideoCodec::Vp6Alpha,
            6 => VideoCodec::Screen2,
            7 => VideoCodec::Avc,
            12 => VideoCodec::Hevc,
            other => VideoCodec::Legacy(other),
        }
    }

    fn from_fourcc(f: [u8; 4]) -> VideoCodec {
        match &f {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            _ => VideoCodec::FourCc(f),
        }
    }

    /// Codecs whose coded frames carry a composition time (AVC, HEVC).
    fn has_composition_time(self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }
}

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoPacket {
    /// Decoder configuration (AVC/HEVC sequence header, AV1/VP9 codec configuration record).
    SequenceStart,
    /// Coded frames (with a composition time for AVC/HEVC).
    CodedFrames,
    /// Enhanced `CodedFramesX`: coded frames whose composition time is implied 0.
    CodedFramesX,
    /// End of sequence.
    SequenceEnd,
    /// Enhanced metadata (AMF: `colorInfo` …).
    Metadata,
    /// Enhanced MPEG-2 TS sequence start (AV1 descriptor).
    Mpeg2TsSequenceStart,
    /// A command frame (frame type 5) with its command byte (0 = start seek, 1 = end seek).
    Command(u8),
}

/// A parsed video tag body; `body` is a slice of the tag's bytes (NAL units, config record…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoData {
    /// Frame type.
    pub frame_type: FrameType,
    /// Codec.
    pub codec: VideoCodec,
    /// What the tag carries.
    pub packet: VideoPacket,
    /// Composition time offset (PTS − DTS) in milliseconds; 0 when absent.
    pub composition_time: i32,
    /// Whether the tag uses the Enhanced RTMP header.
    pub enhanced: bool,
    /// Payload after the header.
    pub body: Bytes,
}

const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
const EX_MULTITRACK: u8 = 6;
const EX_MODEX: u8 = 7;

fn need(data: &Bytes, n: usize, what: &'static str) -> Result<()> {
    if data.len() < n {
        return Err(FlvError::UnexpectedEof { what });
    }
    Ok(())
}

impl VideoData {
    /// Parse a video tag body without copying its payload.
    pub fn parse(data: &Bytes) -> Result<VideoData> {
        need(data, 1, "video tag header")?;
        let b0 = data[0];
        if b0 & 0x80 != 0 {
            return Self::parse_enhanced(data);
        }
        let frame_type = FrameType::from_bits(b0 >> 4);
        let codec = VideoCodec::from_legacy(b0 & 0x0f);
        if frame_type == FrameType::Command {
            need(data, 2, "video command")?;
            return Ok(VideoData {
                frame_type,
                codec,
                packet: VideoPacket::Command(data[1]),
                composition_time: 0,
                enhanced: false,
                body: data.slice(2..),
            });
        }
        if codec.has_composition_time() {
            need(data, 5, "AVC/HEVC video packet header")?;
            let packet = match data[1] {
                0 => VideoPacket::SequenceStart,
                1 => VideoPacket::CodedFrames,
                2 => VideoPacket::SequenceEnd,
                other => {
                    return Err(FlvError::invalid("AVC packet type", format!("{other}")));
                }
            };
            return Ok(VideoData {
                frame_type,
                codec,
                packet,
                composition_time: si24([data[2], data[3], data[4]]),
                enhanced: false,
                body: data.slice(5..),
            });
        }
        Ok(VideoData {
            frame_type,
            codec,
            packet: VideoPacket::CodedFrames,
            composition_time: 0,
            enhanced: false,
            body: data.slice(1..),
        })
    }

    fn parse_enhanced(data: &Bytes) -> Result<VideoData> {
        let b0 = data[0];
        let frame_type = FrameType::from_bits((b0 >> 4) & 7);
        let packet_type = b0 & 0x0f;
        match packet_type {
            EX_MULTITRACK => {
                return Err(FlvError::Unsupported(
                    "Enhanced RTMP v2 multitrack video".into(),
                ));
            }
            EX_MODEX => {
                return Err(FlvError::Unsupported(
                    "Enhanced RTMP v2 ModEx video packets".into(),
                ));
            }
            _ => {}
        }
        need(data, 5, "Enhanced RTMP FourCC")?;
        let codec = VideoCodec::from_fourcc([data[1], data[2], data[3], data[4]]);
        if frame_type == FrameType::Command && packet_type != EX_METADATA {
            need(data, 6, "video command")?;
            return Ok(VideoData {
                frame_type,
                codec,
                packet: VideoPacket::Command(data[5]),
                composition_time: 0,
                enhanced: true,
                body: data.slice(6..),
            });
        }
        let (packet, composition_time, skip) = match packet_type {
            EX_SEQUENCE_START => (VideoPacket::SequenceStart, 0, 5),
            EX_CODED_FRAMES if codec.has_composition_time() => {
                need(data, 8, "composition time")?;
                (
                    VideoPacket::CodedFrames,
                    si24([data[5], data[6], data[7]]),
                    8,
                )
            }
            EX_CODED_FRAMES => (VideoPacket::CodedFrames, 0, 5),
            EX_SEQUENCE_END => (VideoPacket::SequenceEnd, 0, 5),
            EX_CODED_FRAMES_X => (VideoPacket::CodedFramesX, 0, 5),
            EX_METADATA => (VideoPacket::Metadata, 0, 5),
            EX_MPEG2TS_SEQUENCE_START => (VideoPacket::Mpeg2TsSequenceStart, 0, 5),
            other => {
                return Err(FlvError::invalid(
                    "Enhanced RTMP video packet type",
                    format!("{other}"),
                ));
            }
        };
        Ok(VideoData {
            frame_type,
            codec,
            packet,
            composition_time,
            enhanced: true,
            body: data.slice(skip..),
        })
    }

    /// True for key frames (including generated ones).
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame_type, FrameType::Key | FrameType::GeneratedKey)
    }

    /// True for decoder configuration (sequence header) tags.
    pub fn is_sequence_header(&self) -> bool {
        self.packet == VideoPacket::SequenceStart
    }

    /// True for tags carrying coded frames.
    pub fn is_coded_frames(&self) -> bool {
        matches!(
            self.packet,
            VideoPacket::CodedFrames | VideoPacket::CodedFramesX
        )
    }

    /// Write the header (everything before `body`) into `out`.
    pub fn write_header(&self, out: &mut BytesMut) -> Result<()> {
        if self.enhanced {
            let fourcc = self
                .codec
                .fourcc()
                .ok_or_else(|| FlvError::invalid("Enhanced RTMP video", "codec has no FourCC"))?;
            let packet_type = match self.packet {
                VideoPacket::SequenceStart => EX_SEQUENCE_START,
                // Command frames carry CodedFrames as the packet type by convention.
                VideoPacket::CodedFrames | VideoPacket::Command(_) => EX_CODED_FRAMES,
                VideoPacket::CodedFramesX => EX_CODED_FRAMES_X,
                VideoPacket::SequenceEnd => EX_SEQUENCE_END,
                VideoPacket::Metadata => EX_METADATA,
                VideoPacket::Mpeg2TsSequenceStart => EX_MPEG2TS_SEQUENCE_START,
            };
            out.put_u8(0x80 | (self.frame_type.bits() << 4) | packet_type);
            out.put_slice(&fourcc);
            match self.packet {
                VideoPacket::Command(c) => out.put_u8(c),
                VideoPacket::CodedFrames if self.codec.has_composition_time() => {
                    out.put_slice(&put_si24(self.composition_time));
                }
                _ => {}
            }
            return Ok(());
        }
        let id = self.codec.legacy_id().ok_or_else(|| {
            FlvError::invalid("legacy FLV video", "codec needs the Enhanced RTMP header")
        })?;
        out.put_u8((self.frame_type.bits() << 4) | id);
        if let VideoPacket::Command(c) = self.packet {
            out.put_u8(c);
        } else if self.codec.has_composition_time() {
            let t = match self.packet {
                VideoPacket::SequenceStart => 0,
                VideoPacket::CodedFrames => 1,
                VideoPacket::SequenceEnd => 2,
                other => {
                    return Err(FlvError::invalid(
                        "legacy FLV video",
                        format!("{other:?} needs the Enhanced RTMP header"),
                    ));
                }
            };
            out.put_u8(t);
            out.put_slice(&put_si24(self.composition_time));
        }
        Ok(())
    }

    /// Encode the tag body (header + payload).
    pub fn to_bytes(&self) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(8 + self.body.len());
        self.write_header(&mut out)?;
        out.put_slice(&self.body);
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc() {
        let tag = Bytes::from_static(&[0x17, 0x01, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x65]);
        let v = VideoData::parse(&tag).unwrap();
        assert!(v.is_keyframe() && v.is_coded_frames() && !v.enhanced);
        assert_eq!((v.codec, v.composition_time), (VideoCodec::Avc, -40));
        assert_eq!(&v.body[..], &[0, 0, 0, 1, 0x65]);
        assert_eq!(v.to_bytes().unwrap(), tag);
        let seq = VideoData::parse(&Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64])).unwrap();
        assert!(seq.is_sequence_header());
    }

    #[test]
    fn enhanced_hevc_and_av1() {
        // Key frame, CodedFrames, hvc1, cts 33.
        let tag = Bytes::from_static(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 33, 9, 9]);
        let v = VideoData::parse(&tag).unwrap();
        assert!(v.enhanced && v.is_keyframe());
        assert_eq!(
            (v.codec, v.packet, v.composition_time),
            (VideoCodec::Hevc, VideoPacket::CodedFrames, 33)
        );
        assert_eq!(&v.body[..], &[9, 9]);
        assert_eq!(v.to_bytes().unwrap(), tag);
        // Inter, CodedFramesX, hvc1.
        let x = VideoData::parse(&Bytes::from_static(&[0xa3, b'h', b'v', b'c', b'1', 7])).unwrap();
        assert_eq!(
            (x.packet, x.composition_time, &x.body[..]),
            (VideoPacket::CodedFramesX, 0, &[7u8][..])
        );
        // AV1 sequence start and coded frames without composition time.
        let s =
            VideoData::parse(&Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 0x81])).unwrap();
        assert!(s.is_sequence_header() && s.codec == VideoCodec::Av1);
        let f =
            VideoData::parse(&Bytes::from_static(&[0xa1, b'a', b'v', b'0', b'1', 0x12])).unwrap();
        assert_eq!(
            (f.packet, &f.body[..]),
            (VideoPacket::CodedFrames, &[0x12u8][..])
        );
        let vp9 = VideoData::parse(&Bytes::from_static(&[0x92, b'v', b'p', b'0', b'9'])).unwrap();
        assert_eq!(
            (vp9.codec, vp9.packet),
            (VideoCodec::Vp9, VideoPacket::SequenceEnd)
        );
    }

    #[test]
    fn unsupported_and_truncated() {
        for (bytes, want_unsupported) in [
            (&[0x96u8, b'a', b'v', b'c', b'1'][..], true),
            (&[0x97u8][..], true),
            (&[0x91u8, b'h', b'v'][..], false),
            (&[0x17u8, 1, 0][..], false),
            (&[0x17u8, 9, 0, 0, 0][..], false),
            (&[][..], false),
        ] {
            let err = VideoData::parse(&Bytes::copy_from_slice(bytes)).unwrap_err();
            assert_eq!(
                matches!(err, FlvError::Unsupported(_)),
                want_unsupported,
                "{bytes:?}: {err}"
            );
        }
    }

    #[test]
    fn command_frames() {
        let c = VideoData::parse(&Bytes::from_static(&[0x57, 1])).unwrap();
        assert_eq!(c.packet, VideoPacket::Command(1));
        assert_eq!(&c.to_bytes().unwrap()[..], &[0x57, 1]);
    }
}
