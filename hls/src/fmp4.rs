//! Fragmented MP4 (ISO BMFF / CMAF) writing: the init segment (`ftyp` + `moov` with one
//! `trak` per track and `mvex`/`trex`) and media fragments (`moof` with one `traf` per track
//! — `tfhd` default-base-is-moof, `tfdt`, `trun` with sizes, durations, key-frame flags and
//! signed composition offsets — then `mdat`).
//!
//! Sans-IO and codec-agnostic: sample entries take the decoder configuration records as
//! FLV/Enhanced RTMP carries them (`avcC`, `hvcC` tagged `hvc1` so Safari plays it, `av1C`,
//! `vpcC`, AAC's AudioSpecificConfig in `esds`), samples take their coded bytes as they are
//! (length-prefixed NAL units, OBUs, raw AAC frames). A fragment's sample bytes are not
//! copied: [`Fragment`] holds the box header and the samples' `Bytes` in order.
//!
//! ```
//! use bytes::Bytes;
//! use videopick_hls::fmp4::{fragment, init_segment, Sample, SampleEntry, TrackConfig, TrackFragment};
//!
//! let audio = TrackConfig {
//!     id: 1,
//!     timescale: 44_100,
//!     entry: SampleEntry::Aac { config: Bytes::from_static(&[0x12, 0x10]), sample_rate: 44_100, channels: 2 },
//! };
//! let init = init_segment(&[audio]);
//! assert_eq!(&init[4..8], b"ftyp");
//! let samples = [Sample { duration: 1024, data: Bytes::from_static(&[0x21, 0x10, 0x04]), key: true, composition_offset: 0 }];
//! let frag = fragment(1, &[TrackFragment { track_id: 1, base_decode_time: 0, samples: &samples }]);
//! let bytes = frag.to_bytes();
//! assert_eq!(&bytes[4..8], b"moof");
//! assert_eq!(bytes.len(), frag.len());
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// How a track's samples are described (its `stsd` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// H.264: `avc1` with the AVCDecoderConfigurationRecord (`avcC`).
    Avc {
        /// The AVCDecoderConfigurationRecord.
        config: Bytes,
        /// Picture width.
        width: u16,
        /// Picture height.
        height: u16,
    },
    /// H.265: `hvc1` (parameter sets only in `hvcC`, as Apple requires) with the
    /// HEVCDecoderConfigurationRecord.
    Hevc {
        /// The HEVCDecoderConfigurationRecord.
        config: Bytes,
        /// Picture width.
        width: u16,
        /// Picture height.
        height: u16,
    },
    /// AV1: `av01` with the AV1CodecConfigurationRecord (`av1C`).
    Av1 {
        /// The AV1CodecConfigurationRecord.
        config: Bytes,
        /// Picture width.
        width: u16,
        /// Picture height.
        height: u16,
    },
    /// VP9: `vp09` with the VPCodecConfigurationRecord (in a version-1 `vpcC` box).
    Vp9 {
        /// The VPCodecConfigurationRecord.
        config: Bytes,
        /// Picture width.
        width: u16,
        /// Picture height.
        height: u16,
    },
    /// AAC: `mp4a` with the AudioSpecificConfig in an `esds`.
    Aac {
        /// The AudioSpecificConfig.
        config: Bytes,
        /// Sampling rate in Hz.
        sample_rate: u32,
        /// Channels.
        channels: u16,
    },
}

impl SampleEntry {
    fn is_video(&self) -> bool {
        !matches!(self, SampleEntry::Aac { .. })
    }
}

/// A track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Track id (1, 2, …), as fragments name it.
    pub id: u32,
    /// Ticks per second of its timestamps (90 000 for video, the sample rate for audio).
    pub timescale: u32,
    /// Its sample description.
    pub entry: SampleEntry,
}

/// One coded sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its duration in track ticks.
    pub duration: u32,
    /// Its coded bytes.
    pub data: Bytes,
    /// A sync sample (key frame; every audio sample is one).
    pub key: bool,
    /// Presentation minus decode time, in track ticks (B-frames).
    pub composition_offset: i32,
}

/// The samples of one track in a fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackFragment<'a> {
    /// The track.
    pub track_id: u32,
    /// Decode time of its first sample, in track ticks since the track's start.
    pub base_decode_time: u64,
    /// Its samples, in decode order.
    pub samples: &'a [Sample],
}

/// A media fragment: `moof` and the `mdat` header, then the samples' bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// `moof` and the `mdat` box header.
    pub header: Bytes,
    /// The `mdat` payload: every track's samples in order.
    pub payload: Vec<Bytes>,
}

impl Fragment {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether it holds nothing (never, for a written fragment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole fragment in one buffer (copies the samples).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len());
        b.put_slice(&self.header);
        for p in &self.payload {
            b.put_slice(p);
        }
        b.freeze()
    }
}

/// Writes a box: `f` fills its body; the size is patched afterwards.
fn boxed(out: &mut BytesMut, kind: [u8; 4], f: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(&kind);
    f(out);
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box (version and flags after the header).
fn full(out: &mut BytesMut, kind: [u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut BytesMut)) {
    boxed(out, kind, |b| {
        b.put_u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        f(b);
    });
}

/// The unity transformation matrix.
fn matrix(b: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.put_u32(v);
    }
}

/// The init segment of `tracks`: `ftyp` (iso6, CMAF-compatible) and `moov`.
pub fn init_segment(tracks: &[TrackConfig]) -> Bytes {
    let mut out = BytesMut::with_capacity(1024);
    boxed(&mut out, *b"ftyp", |b| {
        b.put_slice(b"iso6");
        b.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            b.put_slice(brand);
        }
        if tracks
            .iter()
            .any(|t| matches!(t.entry, SampleEntry::Av1 { .. }))
        {
            b.put_slice(b"av01");
        }
    });
    boxed(&mut out, *b"moov", |b| {
        full(b, *b"mvhd", 0, 0, |b| {
            b.put_u32(0); // creation
            b.put_u32(0); // modification
            b.put_u32(1000); // timescale
            b.put_u32(0); // duration: fragmented
            b.put_u32(0x0001_0000); // rate 1.0
            b.put_u16(0x0100); // volume 1.0
            b.put_slice(&[0; 10]);
            matrix(b);
            b.put_slice(&[0; 24]); // pre_defined
            b.put_u32(tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for t in tracks {
            trak(b, t);
        }
        boxed(b, *b"mvex", |b| {
            for t in tracks {
                full(b, *b"trex", 0, 0, |b| {
                    b.put_u32(t.id);
                    b.put_u32(1); // sample description index
                    b.put_u32(0); // default duration
                    b.put_u32(0); // default size
                    b.put_u32(0); // default flags
                });
            }
        });
    });
    out.freeze()
}

fn trak(b: &mut BytesMut, t: &TrackConfig) {
    let video = t.entry.is_video();
    let (width, height) = match &t.entry {
        SampleEntry::Avc { width, height, .. }
        | SampleEntry::Hevc { width, height, .. }
        | SampleEntry::Av1 { width, height, .. }
        | SampleEntry::Vp9 { width, height, .. } => (*width, *height),
        SampleEntry::Aac { .. } => (0, 0),
    };
    boxed(b, *b"trak", |b| {
        // Enabled, in movie, in preview.
        full(b, *b"tkhd", 0, 0x7, |b| {
            b.put_u32(0);
            b.put_u32(0);
            b.put_u32(t.id);
            b.put_u32(0); // reserved
            b.put_u32(0); // duration
            b.put_slice(&[0; 8]);
            b.put_u16(0); // layer
            b.put_u16(0); // alternate group
            b.put_u16(if video { 0 } else { 0x0100 }); // volume
            b.put_u16(0);
            matrix(b);
            b.put_u32(u32::from(width) << 16);
            b.put_u32(u32::from(height) << 16);
        });
        boxed(b, *b"mdia", |b| {
            full(b, *b"mdhd", 0, 0, |b| {
                b.put_u32(0);
                b.put_u32(0);
                b.put_u32(t.timescale);
                b.put_u32(0);
                b.put_u16(0x55C4); // "und"
                b.put_u16(0);
            });
            full(b, *b"hdlr", 0, 0, |b| {
                b.put_u32(0);
                b.put_slice(if video { b"vide" } else { b"soun" });
                b.put_slice(&[0; 12]);
                b.put_slice(if video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            boxed(b, *b"minf", |b| {
                if video {
                    full(b, *b"vmhd", 0, 1, |b| b.put_slice(&[0; 8]));
                } else {
                    full(b, *b"smhd", 0, 0, |b| b.put_u32(0));
                }
                boxed(b, *b"dinf", |b| {
                    full(b, *b"dref", 0, 0, |b| {
                        b.put_u32(1);
                        full(b, *b"url ", 0, 1, |_| {});
                    });
                });
                boxed(b, *b"stbl", |b| {
                    full(b, *b"stsd", 0, 0, |b| {
                        b.put_u32(1);
                        sample_entry(b, &t.entry);
                    });
                    full(b, *b"stts", 0, 0, |b| b.put_u32(0));
                    full(b, *b"stsc", 0, 0, |b| b.put_u32(0));
                    full(b, *b"stsz", 0, 0, |b| {
                        b.put_u32(0);
                        b.put_u32(0);
                    });
                    full(b, *b"stco", 0, 0, |b| b.put_u32(0));
                });
            });
        });
    });
}

fn visual(
    b: &mut BytesMut,
    kind: [u8; 4],
    width: u16,
    height: u16,
    config: impl FnOnce(&mut BytesMut),
) {
    boxed(b, kind, |b| {
        b.put_slice(&[0; 6]);
        b.put_u16(1); // data reference index
        b.put_slice(&[0; 16]); // pre_defined, reserved
        b.put_u16(width);
        b.put_u16(height);
        b.put_u32(0x0048_0000); // 72 dpi
        b.put_u32(0x0048_0000);
        b.put_u32(0);
        b.put_u16(1); // frame count
        b.put_slice(&[0; 32]); // compressor name
        b.put_u16(0x0018); // depth
        b.put_i16(-1);
        config(b);
    });
}

/// An MPEG-4 descriptor: tag, length (4-byte form), body.
fn descriptor(b: &mut BytesMut, tag: u8, body: &[u8]) {
    b.put_u8(tag);
    let n = u32::try_from(body.len())
        .unwrap_or(0x0FFF_FFFF)
        .min(0x0FFF_FFFF);
    b.put_u8(0x80 | ((n >> 21) & 0x7F) as u8);
    b.put_u8(0x80 | ((n >> 14) & 0x7F) as u8);
    b.put_u8(0x80 | ((n >> 7) & 0x7F) as u8);
    b.put_u8((n & 0x7F) as u8);
    b.put_slice(body);
}

fn sample_entry(b: &mut BytesMut, entry: &SampleEntry) {
    match entry {
        SampleEntry::Avc {
            config,
            width,
            height,
        } => visual(b, *b"avc1", *width, *height, |b| {
            boxed(b, *b"avcC", |b| b.put_slice(config));
        }),
        SampleEntry::Hevc {
            config,
            width,
            height,
        } => visual(b, *b"hvc1", *width, *height, |b| {
            boxed(b, *b"hvcC", |b| b.put_slice(config));
        }),
        SampleEntry::Av1 {
            config,
            width,
            height,
        } => visual(b, *b"av01", *width, *height, |b| {
            boxed(b, *b"av1C", |b| b.put_slice(config));
        }),
        SampleEntry::Vp9 {
            config,
            width,
            height,
        } => visual(b, *b"vp09", *width, *height, |b| {
            full(b, *b"vpcC", 1, 0, |b| b.put_slice(config));
        }),
        SampleEntry::Aac {
            config,
            sample_rate,
            channels,
        } => boxed(b, *b"mp4a", |b| {
            b.put_slice(&[0; 6]);
            b.put_u16(1); // data reference index
            b.put_slice(&[0; 8]);
            b.put_u16(*channels);
            b.put_u16(16); // sample size
            b.put_u32(0);
            // 16.16 fixed point; rates above 65535 Hz keep the low bits (the ASC has the rate).
            b.put_u32((*sample_rate & 0xFFFF) << 16);
            full(b, *b"esds", 0, 0, |b| {
                let mut dsi = BytesMut::new();
                descriptor(&mut dsi, 0x05, config);
                let mut dcd = BytesMut::new();
                dcd.put_u8(0x40); // MPEG-4 audio
                dcd.put_u8(0x15); // audio stream
                dcd.put_slice(&[0, 0, 0]); // buffer size
                dcd.put_u32(0); // max bitrate
                dcd.put_u32(0); // average bitrate
                dcd.put_slice(&dsi);
                let mut es = BytesMut::new();
                es.put_u16(0); // ES id
                es.put_u8(0); // flags
                descriptor(&mut es, 0x04, &dcd);
                descriptor(&mut es, 0x06, &[0x02]); // SL config: MP4
                descriptor(b, 0x03, &es);
            });
        }),
    }
}

/// Sample flags of a sync sample (depends on no other) and of any other (depends on
/// others, not a sync sample).
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// A media fragment numbered `sequence` holding `tracks`' samples.
pub fn fragment(sequence: u32, tracks: &[TrackFragment<'_>]) -> Fragment {
    // The moof first, with each trun's data offset left 0; then patched once the moof's
    // size is known.
    let mut out = BytesMut::with_capacity(
        64 + tracks
            .iter()
            .map(|t| 40 + 16 * t.samples.len())
            .sum::<usize>(),
    );
    let mut offsets = Vec::with_capacity(tracks.len());
    boxed(&mut out, *b"moof", |b| {
        full(b, *b"mfhd", 0, 0, |b| b.put_u32(sequence));
        for t in tracks {
            boxed(b, *b"traf", |b| {
                full(b, *b"tfhd", 0, 0x02_0000, |b| b.put_u32(t.track_id));
                full(b, *b"tfdt", 1, 0, |b| b.put_u64(t.base_decode_time));
                // data offset, duration, size, flags and composition offset per sample.
                full(b, *b"trun", 1, 0x0F01, |b| {
                    b.put_u32(u32::try_from(t.samples.len()).unwrap_or(u32::MAX));
                    offsets.push(b.len());
                    b.put_i32(0);
                    for s in t.samples {
                        b.put_u32(s.duration);
                        b.put_u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
                        b.put_u32(if s.key { SYNC } else { NON_SYNC });
                        b.put_i32(s.composition_offset);
                    }
                });
            });
        }
    });
    let payload_len: usize = tracks
        .iter()
        .flat_map(|t| t.samples.iter())
        .map(|s| s.data.len())
        .sum();
    // The mdat header (64-bit size when the payload needs it).
    let large = payload_len + 8 > u32::MAX as usize;
    let mdat_header = if large { 16 } else { 8 };
    let mut data_at = out.len() + mdat_header;
    for (i, t) in tracks.iter().enumerate() {
        let v = i32::try_from(data_at).unwrap_or(i32::MAX);
        out[offsets[i]..offsets[i] + 4].copy_from_slice(&v.to_be_bytes());
        data_at += t.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    if large {
        out.put_u32(1);
        out.put_slice(b"mdat");
        out.put_u64(payload_len as u64 + 16);
    } else {
        out.put_u32(u32::try_from(payload_len + 8).unwrap_or(u32::MAX));
        out.put_slice(b"mdat");
    }
    Fragment {
        header: out.freeze(),
        payload: tracks
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.data.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The boxes at the top level of `b`: (kind, size).
    fn top(b: &[u8]) -> Vec<(String, usize)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at + 8 <= b.len() {
            let size = read_u32(b, at) as usize;
            out.push((
                String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned(),
                size,
            ));
            at += size.max(8);
        }
        out
    }

    #[test]
    fn data_offsets_point_at_each_tracks_samples() {
        let v = [
            Sample {
                duration: 3000,
                data: Bytes::from_static(b"VVVV"),
                key: true,
                composition_offset: 3000,
            },
            Sample {
                duration: 3000,
                data: Bytes::from_static(b"vv"),
                key: false,
                composition_offset: -3000,
            },
        ];
        let a = [Sample {
            duration: 1024,
            data: Bytes::from_static(b"AAA"),
            key: true,
            composition_offset: 0,
        }];
        let f = fragment(
            7,
            &[
                TrackFragment {
                    track_id: 1,
                    base_decode_time: 90_000,
                    samples: &v,
                },
                TrackFragment {
                    track_id: 2,
                    base_decode_time: 44_100,
                    samples: &a,
                },
            ],
        );
        let b = f.to_bytes();
        let boxes = top(&b);
        assert_eq!(boxes[0].0, "moof");
        assert_eq!(boxes[1], ("mdat".to_string(), 8 + 9));
        assert_eq!(&b[b.len() - 9..], b"VVVVvvAAA");
        // Each trun's data offset (relative to the moof) lands on its first sample.
        let mut found = Vec::new();
        for (i, w) in b.windows(4).enumerate() {
            if w == b"trun" {
                let off = read_u32(&b, i + 4 + 8) as usize;
                found.push(b[off]);
            }
        }
        assert_eq!(found, vec![b'V', b'A']);
        assert_eq!(f.len(), b.len());
    }

    #[test]
    fn init_segments_hold_a_track_per_config() {
        let init = init_segment(&[
            TrackConfig {
                id: 1,
                timescale: 90_000,
                entry: SampleEntry::Hevc {
                    config: Bytes::from_static(&[1, 2, 3]),
                    width: 1280,
                    height: 720,
                },
            },
            TrackConfig {
                id: 2,
                timescale: 48_000,
                entry: SampleEntry::Aac {
                    config: Bytes::from_static(&[0x11, 0x90]),
                    sample_rate: 48_000,
                    channels: 2,
                },
            },
        ]);
        let boxes = top(&init);
        assert_eq!(
            boxes.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        assert_eq!(boxes.iter().map(|b| b.1).sum::<usize>(), init.len());
        let text = String::from_utf8_lossy(&init);
        for kind in ["hvc1", "hvcC", "mp4a", "esds", "trex", "tkhd"] {
            assert!(text.contains(kind), "{kind}");
        }
        assert_eq!(text.matches("trak").count(), 2);
    }
}
