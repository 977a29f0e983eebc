//! FLV file structure: header, tags, streaming demuxer and muxer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{FlvError, Result};

/// Size of the FLV file header plus the first (zero) PreviousTagSize.
pub const HEADER_LEN: usize = 13;
/// Size of an FLV tag header.
pub const TAG_HEADER_LEN: usize = 11;

/// Largest tag body the 24-bit DataSize field can express.
pub const MAX_TAG_DATA: usize = (1 << 24) - 1;

/// The kind of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// 8: audio.
    Audio,
    /// 9: video.
    Video,
    /// 18: script data (`onMetaData`, …).
    Script,
}

impl TagKind {
    /// The TagType byte.
    pub fn type_byte(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    /// From a TagType byte.
    pub fn from_type_byte(b: u8) -> Result<TagKind> {
        match b {
            8 => Ok(TagKind::Audio),
            9 => Ok(TagKind::Video),
            18 => Ok(TagKind::Script),
            other => Err(FlvError::UnknownTagType(other)),
        }
    }
}

/// One FLV tag: kind, timestamp and body (shared, never copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: TagKind,
    /// Milliseconds (decode timestamp), 32 bits as in FLV's Timestamp + TimestampExtended.
    pub timestamp: u32,
    /// The tag body (AUDIODATA, VIDEODATA or SCRIPTDATA).
    pub data: Bytes,
}

impl Tag {
    /// A tag of `kind` at `timestamp` with body `data`.
    pub fn new(kind: TagKind, timestamp: u32, data: impl Into<Bytes>) -> Tag {
        Tag {
            kind,
            timestamp,
            data: data.into(),
        }
    }

    /// The 11-byte tag header for this tag (the body is limited to [`MAX_TAG_DATA`]).
    pub fn header_bytes(&self) -> Result<[u8; TAG_HEADER_LEN]> {
        let len = self.data.len();
        if len > MAX_TAG_DATA {
            return Err(FlvError::TooLarge {
                what: "FLV tag body",
                len: len as u64,
                max: MAX_TAG_DATA as u64,
            });
        }
        let ts = self.timestamp.to_be_bytes();
        let size = (len as u32).to_be_bytes();
        Ok([
            self.kind.type_byte(),
            size[1],
            size[2],
            size[3],
            ts[1],
            ts[2],
            ts[3],
            ts[0],
            0,
            0,
            0,
        ])
    }

    /// The PreviousTagSize that follows this tag.
    pub fn previous_tag_size(&self) -> [u8; 4] {
        ((TAG_HEADER_LEN + self.data.len()) as u32).to_be_bytes()
    }
}

/// The FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// Version byte (1).
    pub version: u8,
    /// TypeFlagsAudio.
    pub has_audio: bool,
    /// TypeFlagsVideo.
    pub has_video: bool,
}

impl FlvHeader {
    /// Header + PreviousTagSize0, ready to send (13 bytes).
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let flags = (u8::from(self.has_audio) << 2) | u8::from(self.has_video);
        [
            b'F',
            b'L',
            b'V',
            self.version,
            flags,
            0,
            0,
            0,
            9,
            0,
            0,
            0,
            0,
        ]
    }
}

/// What the demuxer produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvItem {
    /// The file header (always first).
    Header(FlvHeader),
    /// A tag.
    Tag(Tag),
}

/// Limits and leniency of the demuxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DemuxOptions {
    /// Largest tag body accepted (default and maximum: 16 MiB − 1).
    pub max_tag_size: usize,
    /// Reject a PreviousTagSize that does not match the tag before it (default false: many
    /// writers get it wrong, and the field is redundant for sequential reading).
    pub strict_previous_tag_size: bool,
}

impl Default for DemuxOptions {
    fn default() -> Self {
        DemuxOptions {
            max_tag_size: MAX_TAG_DATA,
            strict_previous_tag_size: false,
        }
    }
}

impl DemuxOptions {
    /// Set [`DemuxOptions::max_tag_size`] (capped at [`MAX_TAG_DATA`]).
    #[must_use]
    pub fn max_tag_size(mut self, bytes: usize) -> Self {
        self.max_tag_size = bytes.min(MAX_TAG_DATA);
        self
    }

    /// Set [`DemuxOptions::strict_previous_tag_size`].
    #[must_use]
    pub fn strict_previous_tag_size(mut self, strict: bool) -> Self {
        self.strict_previous_tag_size = strict;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    PrevSize,
    Tag,
}

/// Streaming FLV demuxer: push bytes into a `BytesMut`, pull [`FlvItem`]s.
///
/// ```
/// use bytes::BytesMut;
/// use videopick_flv::{FlvDemuxer, FlvHeader, FlvItem, FlvMuxer, Tag, TagKind};
///
/// let mut file = BytesMut::new();
/// let mut mux = FlvMuxer::new();
/// mux.write_header(FlvHeader { version: 1, has_audio: true, has_video: false }, &mut file);
/// mux.write_tag(&Tag::new(TagKind::Audio, 40, &b"\xaf\x01abc"[..]), &mut file).unwrap();
///
/// let mut demux = FlvDemuxer::new();
/// let mut input = BytesMut::new();
/// let mut items = Vec::new();
/// for byte in file.iter() {           // bytes may arrive one at a time
///     input.extend_from_slice(&[*byte]);
///     while let Some(item) = demux.decode(&mut input).unwrap() {
///         items.push(item);
///     }
/// }
/// assert!(matches!(items[0], FlvItem::Header(h) if h.has_audio));
/// assert!(matches!(&items[1], FlvItem::Tag(t) if t.timestamp == 40 && &t.data[..] == b"\xaf\x01abc"));
/// ```
#[derive(Debug, Clone)]
pub struct FlvDemuxer {
    state: State,
    options: DemuxOptions,
    last_tag_size: u32,
    prev_size_mismatches: u64,
}

impl Default for FlvDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvDemuxer {
    /// A demuxer with default options, expecting the file header first.
    pub fn new() -> Self {
        Self::with_options(DemuxOptions::default())
    }

    /// A demuxer with `options`.
    pub fn with_options(options: DemuxOptions) -> Self {
        FlvDemuxer {
            state: State::Header,
            options,
            last_tag_size: 0,
            prev_size_mismatches: 0,
        }
    }

    /// A demuxer for a stream without the file header (starts at a PreviousTagSize).
    pub fn headerless(options: DemuxOptions) -> Self {
        FlvDemuxer {
            state: State::PrevSize,
            ..Self::with_options(options)
        }
    }

    /// How many PreviousTagSize fields did not match (lenient mode).
    pub fn previous_tag_size_mismatches(&self) -> u64 {
        self.prev_size_mismatches
    }

    /// Decode the next item from the front of `buf`. `Ok(None)` means more bytes are needed
    /// (the rest of the tag is reserved in `buf`). Tag bodies are split off `buf` without
    /// copying.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FlvItem>> {
        loop {
            match self.state {
                State::Header => {
                    if buf.len() < 9 {
                        if !b"FLV".starts_with(&buf[..buf.len().min(3)]) {
                            return Err(FlvError::BadSignature);
                        }
                        return Ok(None);
                    }
                    if &buf[..3] != b"FLV" {
                        return Err(FlvError::BadSignature);
                    }
                    let version = buf[3];
                    let flags = buf[4];
                    let offset = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
                    if !(9..=1024).contains(&offset) {
                        return Err(FlvError::invalid(
                            "FLV header",
                            format!("data offset {offset}"),
                        ));
                    }
                    if buf.len() < offset {
                        return Ok(None);
                    }
                    buf.advance(offset);
                    self.state = State::PrevSize;
                    return Ok(Some(FlvItem::Header(FlvHeader {
                        version,
                        has_audio: flags & 4 != 0,
                        has_video: flags & 1 != 0,
                    })));
                }
                State::PrevSize => {
                    if buf.len() < 4 {
                        return Ok(None);
                    }
                    let prev = buf.get_u32();
                    if prev != self.last_tag_size {
                        if self.options.strict_previous_tag_size {
                            return Err(FlvError::invalid(
                                "PreviousTagSize",
                                format!("{prev}, expected {}", self.last_tag_size),
                            ));
                        }
                        self.prev_size_mismatches += 1;
                    }
                    self.state = State::Tag;
                }
                State::Tag => {
                    if buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let h = &buf[..TAG_HEADER_LEN];
                    if h[0] & 0x20 != 0 {
                        return Err(FlvError::Encrypted);
                    }
                    if h[0] & 0xc0 != 0 {
                        return Err(FlvError::invalid("FLV tag header", "reserved bits set"));
                    }
                    let kind = TagKind::from_type_byte(h[0] & 0x1f)?;
                    let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                    let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                    if size > self.options.max_tag_size {
                        return Err(FlvError::TooLarge {
                            what: "FLV tag body",
                            len: size as u64,
                            max: self.options.max_tag_size as u64,
                        });
                    }
                    if buf.len() < TAG_HEADER_LEN + size {
                        buf.reserve(TAG_HEADER_LEN + size - buf.len());
                        return Ok(None);
                    }
                    buf.advance(TAG_HEADER_LEN);
                    let data = buf.split_to(size).freeze();
                    self.last_tag_size = (TAG_HEADER_LEN + size) as u32;
                    self.state = State::PrevSize;
                    return Ok(Some(FlvItem::Tag(Tag {
                        kind,
                        timestamp,
                        data,
                    })));
                }
            }
        }
    }
}

/// FLV muxer: file header, then tags with correct PreviousTagSize fields.
///
/// For HTTP-FLV fan-out without copying tag bodies, use [`Tag::header_bytes`] and
/// [`Tag::previous_tag_size`] and send `[header, body, trailer]` as a vectored write.
#[derive(Debug, Clone, Default)]
pub struct FlvMuxer {
    _private: (),
}

impl FlvMuxer {
    /// A muxer.
    pub fn new() -> Self {
        FlvMuxer { _private: () }
    }

    /// Write the file header and PreviousTagSize0.
    pub fn write_header(&mut self, header: FlvHeader, out: &mut BytesMut) {
        out.extend_from_slice(&header.to_bytes());
    }

    /// Write one tag and its PreviousTagSize.
    pub fn write_tag(&mut self, tag: &Tag, out: &mut BytesMut) -> Result<()> {
        let header = tag.header_bytes()?;
        out.reserve(TAG_HEADER_LEN + tag.data.len() + 4);
        out.put_slice(&header);
        out.put_slice(&tag.data);
        out.put_slice(&tag.previous_tag_size());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_header_layout() {
        let t = Tag::new(TagKind::Video, 0x0102_0304, vec![0u8; 5]);
        assert_eq!(
            t.header_bytes().unwrap(),
            [9, 0, 0, 5, 0x02, 0x03, 0x04, 0x01, 0, 0, 0]
        );
        assert_eq!(t.previous_tag_size(), [0, 0, 0, 16]);
    }

    #[test]
    fn demux_rejects_garbage_early() {
        let mut d = FlvDemuxer::new();
        assert_eq!(
            d.decode(&mut BytesMut::from(&b"GIF89a"[..])),
            Err(FlvError::BadSignature)
        );
        let mut d = FlvDemuxer::new();
        assert_eq!(d.decode(&mut BytesMut::from(&b"FL"[..])), Ok(None));
        // Unknown tag type.
        let mut d = FlvDemuxer::headerless(DemuxOptions::default());
        let mut b = BytesMut::from(&[0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut b), Err(FlvError::UnknownTagType(7)));
        // Encrypted.
        let mut d = FlvDemuxer::headerless(DemuxOptions::default());
        let mut b = BytesMut::from(&[0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert_eq!(d.decode(&mut b), Err(FlvError::Encrypted));
        // Over the size limit, before the body arrives.
        let mut d = FlvDemuxer::headerless(DemuxOptions {
            max_tag_size: 100,
            ..DemuxOptions::default()
        });
        let mut b = BytesMut::from(&[0, 0, 0, 0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            d.decode(&mut b),
            Err(FlvError::TooLarge { len: 256, .. })
        ));
    }

    #[test]
    fn strict_previous_tag_size() {
        let mut d = FlvDemuxer::headerless(DemuxOptions {
            strict_previous_tag_size: true,
            ..DemuxOptions::default()
        });
        let mut b = BytesMut::from(&[0, 0, 0, 5][..]);
        assert!(d.decode(&mut b).is_err());
        let mut d = FlvDemuxer::headerless(DemuxOptions::default());
        let mut b = BytesMut::from(&[0, 0, 0, 5][..]);
        assert_eq!(d.decode(&mut b), Ok(None));
        assert_eq!(d.previous_tag_size_mismatches(), 1);
    }
}
