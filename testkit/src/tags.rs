//! Synthetic FLV tags: sequence headers and marked frames whose every payload byte tells
//! which run sent them (a viewer can check it got every frame, in order).

use bytes::Bytes;
use videopick_flv::{Tag, TagKind};

/// AVC and AAC sequence headers.
pub fn headers() -> Vec<Tag> {
    vec![
        Tag::new(
            TagKind::Video,
            0,
            &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x00\x01\x00\x00"[..],
        ),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
    ]
}

/// Frame `i` of a 25 fps stream with a key frame every second, 2,000 payload bytes all
/// equal to `mark`.
pub fn frame(i: u32, mark: u8) -> Tag {
    frame_sized(i, mark, 2000)
}

/// Frame `i` (25 fps, key every second) with `size` payload bytes all equal to `mark`.
pub fn frame_sized(i: u32, mark: u8, size: usize) -> Tag {
    let key = i.is_multiple_of(25);
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend(std::iter::repeat_n(mark, size));
    Tag::new(TagKind::Video, i * 40, Bytes::from(v))
}
