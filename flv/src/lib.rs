//! FLV container and media vocabulary shared by VideoPick's RTMP and HLS crates.
//!
//! ```text
//! bytes ─► FlvDemuxer ─► Tag { kind, timestamp, data: Bytes } ─► AudioData / VideoData / ScriptData
//!                                      │                              │
//!                                      │                              └─► AvcConfig / HevcConfig /
//!                                      │                                  AudioSpecificConfig / OnMetaData
//!                                      └─► FlvMuxer ─► bytes (HTTP-FLV, recordings)
//! ```
//!
//! Everything here is a pure function of its input: no I/O, no clock. Payloads are
//! `bytes::Bytes` slices of the input, never copies. Every length from the input is checked,
//! and hostile bytes give an [`FlvError`], never a panic.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use videopick_flv::{AudioData, FlvDemuxer, FlvHeader, FlvItem, FlvMuxer, Tag, TagKind, VideoData};
//!
//! // Mux an AAC sequence header and an H.264 key frame…
//! let mut mux = FlvMuxer::new();
//! let mut file = BytesMut::new();
//! mux.write_header(FlvHeader { version: 1, has_audio: true, has_video: true }, &mut file);
//! mux.write_tag(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]), &mut file)?;
//! mux.write_tag(&Tag::new(TagKind::Video, 0, &b"\x17\x01\x00\x00\x00\x00\x00\x00\x01\x65"[..]), &mut file)?;
//!
//! // …and read them back.
//! let mut demux = FlvDemuxer::new();
//! let mut tags = Vec::new();
//! while let Some(item) = demux.decode(&mut file)? {
//!     if let FlvItem::Tag(t) = item {
//!         tags.push(t);
//!     }
//! }
//! let audio = AudioData::parse(&tags[0].data)?;
//! assert!(audio.is_sequence_header());
//! let video = VideoData::parse(&tags[1].data)?;
//! assert!(video.is_keyframe());
//! assert_eq!(&video.body[..], &[0, 0, 0, 1, 0x65]);
//! # Ok::<(), videopick_flv::FlvError>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod amf0;
pub mod amf3;
mod audio;
pub mod av1;
pub mod avc;
mod bits;
mod error;
pub mod hevc;
mod script;
mod tag;
mod video;
pub mod vp9;

pub use audio::{AacPacketType, AudioData, AudioSpecificConfig, SoundFormat};
pub use avc::{AvcConfig, SpsInfo};
pub use error::{FlvError, Result};
pub use hevc::{HevcConfig, HevcNalArray, HevcSpsInfo};
pub use script::{CodecId, OnMetaData, ScriptData};
pub use tag::{
    DemuxOptions, FlvDemuxer, FlvHeader, FlvItem, FlvMuxer, HEADER_LEN, MAX_TAG_DATA,
    TAG_HEADER_LEN, Tag, TagKind,
};
pub use video::{FrameType, VideoCodec, VideoData, VideoPacket};
