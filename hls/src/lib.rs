//! Native HLS for VideoPick: FLV tags in, MPEG-TS segments and RFC 8216 playlists out.
//!
//! ```text
//! Tag ─► Segmenter ─► Segment { sequence, duration, discontinuity, data: Bytes (TS) }
//!           │                      │
//!           │                      └─► MediaPlaylist (live window / EVENT / VOD) ─► m3u8 text
//!           └─► MediaInfo (CODECS, RESOLUTION, BANDWIDTH) ─► MasterPlaylist ─► m3u8 text
//! ```
//!
//! Everything here is sans-IO: no files, sockets or clocks (the caller passes the wall
//! time for EXT-X-PROGRAM-DATE-TIME). Where segments are stored is the caller's choice.
//! Hostile input gives an error, never a panic, and every segment is a whole number of
//! valid 188-byte transport packets.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use videopick_flv::{Tag, TagKind};
//! use videopick_hls::{MediaPlaylist, PlaylistEntry, PlaylistKind, Segmenter, SegmenterConfig};
//!
//! // An AAC-LC 44.1 kHz stereo sequence header, then 5 s of (tiny) audio frames.
//! let mut seg = Segmenter::new(SegmenterConfig::with_target(Duration::from_secs(2)));
//! let now = SystemTime::now();
//! seg.push(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]), now)?;
//! for i in 0..216u32 {
//!     let ts = i * 1024 * 1000 / 44_100;
//!     seg.push(&Tag::new(TagKind::Audio, ts, &b"\xaf\x01\x21\x10\x04"[..]), now)?;
//! }
//! seg.finish();
//!
//! let mut playlist = MediaPlaylist::new(PlaylistKind::Vod);
//! while let Some(s) = seg.pop_segment() {
//!     assert_eq!(s.data.len() % 188, 0);
//!     playlist.push(PlaylistEntry {
//!         sequence: s.sequence,
//!         uri: format!("{}.ts", s.sequence),
//!         duration: s.duration,
//!         discontinuity: s.discontinuity,
//!         program_date_time: Some(s.program_date_time),
//!     });
//! }
//! playlist.end();
//! assert_eq!(playlist.entries().len(), 3); // 2 s + 2 s + 1 s
//! assert_eq!(seg.media_info().codecs(), "mp4a.40.2");
//! assert!(playlist.render().ends_with("2.ts\n#EXT-X-ENDLIST\n"));
//! # Ok::<(), videopick_hls::HlsError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cmaf;
pub mod crc;
pub mod error;
pub mod fmp4;
pub mod llhls;
pub mod origin;
pub mod playlist;
pub mod segmenter;
mod timeline;
pub mod ts;

pub use error::{HlsError, Result};
pub use origin::{LiveOrigin, OriginConfig, OriginFeed};
pub use playlist::{
    MasterPlaylist, MediaPlaylist, PlaylistEntry, PlaylistKind, Variant, format_date_time,
    parse_date_time,
};
pub use segmenter::{MediaInfo, Segment, Segmenter, SegmenterConfig};
pub use ts::{StreamType, TS_PACKET_LEN, TsWriter};
