//! FLV tags in, CMAF (fragmented MP4) out, cut for low-latency HLS: an init segment per
//! set of decoder configurations, then *parts* of at most the part target, grouped into
//! segments that start at key frames once the segment target has passed.
//!
//! A part is one `moof`+`mdat` fragment holding both tracks' samples, emitted when it is
//! complete: RFC 8216bis §6.2.6 forbids sending any byte of a part before all of it can be
//! sent, so a player's request for a hinted part waits for the whole part, and finer
//! chunks would only add `moof` overhead.
//!
//! Timestamps come from the shared timeline (32-bit FLV wrap, jumps and republishes turn
//! into discontinuities with time continuing); video uses a 90 kHz time scale with
//! composition offsets for B-frames, AAC its sample rate. A video sample's duration is
//! known when the next one arrives, so output trails input by one frame.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use videopick_flv::vp9::Vp9Config;
use videopick_flv::{
    AacPacketType, AudioData, AudioSpecificConfig, AvcConfig, FrameType, HevcConfig, SoundFormat,
    Tag, TagKind, VideoCodec, VideoData, VideoPacket,
};

use crate::error::{HlsError, Result};
use crate::fmp4::{
    Fragment, Sample, SampleEntry, TrackConfig, TrackFragment, fragment, init_segment,
};
use crate::segmenter::MediaInfo;
use crate::timeline::Timeline;

/// Output time starts here, as in the TS segmenter.
const START_MS: i64 = 1400;
/// Samples per AAC frame.
const AAC_FRAME: u32 = 1024;
const VIDEO_ID: u32 = 1;
const AUDIO_ID: u32 = 2;

/// CMAF segmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmafConfig {
    /// Parts last at most this long (default 333 ms).
    pub part_target: Duration,
    /// A segment ends at the first key frame at or after this duration (default 2 s).
    pub segment_target: Duration,
    /// A segment ends even without a key frame once it is this long (default 20 s): a
    /// stream without key frames still gets bounded segments.
    pub max_segment: Duration,
    /// A timestamp step larger than this is a discontinuity (default 10 s).
    pub jump_threshold: Duration,
}

impl Default for CmafConfig {
    fn default() -> CmafConfig {
        CmafConfig {
            part_target: Duration::from_millis(333),
            segment_target: Duration::from_secs(2),
            max_segment: Duration::from_secs(20),
            jump_threshold: Duration::from_secs(10),
        }
    }
}

/// One complete part of the open segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmafPart {
    /// The segment it belongs to.
    pub segment: u64,
    /// Its index in the segment (0, 1, …).
    pub index: u32,
    /// It starts with a key frame (or the stream is audio-only): `INDEPENDENT=YES`.
    pub independent: bool,
    /// Its duration.
    pub duration: Duration,
    /// Its segment follows a discontinuity.
    pub discontinuity: bool,
    /// Wall-clock time of its segment's first frame.
    pub program_date_time: SystemTime,
    /// The `moof` + `mdat`.
    pub fragment: Fragment,
}

/// What the segmenter produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmafEvent {
    /// A new init segment (the first, or after the decoder configuration changed); the
    /// parts after it need it.
    Init(Bytes),
    /// A complete part of the open segment.
    Part(CmafPart),
    /// The segment `sequence` is complete: its parts, in order, are the segment.
    SegmentEnd {
        /// Its sequence number.
        sequence: u64,
        /// Its duration.
        duration: Duration,
        /// A discontinuity precedes it (new init segment or timeline jump).
        discontinuity: bool,
        /// Wall-clock time of its first frame.
        program_date_time: SystemTime,
    },
}

#[derive(Debug, Clone)]
struct Video {
    /// The sequence start it came from (a repeat of it changes nothing).
    seq: Bytes,
    entry: SampleEntry,
    codec: String,
    resolution: (u32, u32),
}

#[derive(Debug, Clone)]
struct Audio {
    config: Bytes,
    asc: AudioSpecificConfig,
}

#[derive(Debug)]
struct OpenSegment {
    sequence: u64,
    start_ms: i64,
    pdt: SystemTime,
    discontinuity: bool,
    parts: u32,
}

#[derive(Debug, Default)]
struct OpenPart {
    start_ms: i64,
    independent: bool,
    video: Vec<Sample>,
    audio: Vec<Sample>,
    video_base: u64,
    audio_base: u64,
}

#[derive(Debug)]
struct PendingVideo {
    ms: i64,
    cts_ms: i32,
    key: bool,
    data: Bytes,
}

/// Sans-IO CMAF segmenter for LL-HLS: [`push`](CmafSegmenter::push) FLV tags, then take
/// [`CmafEvent`]s with [`pop`](CmafSegmenter::pop).
#[derive(Debug)]
pub struct CmafSegmenter {
    config: CmafConfig,
    timeline: Timeline,
    video: Option<Video>,
    audio: Option<Audio>,
    init_sent: bool,
    events: VecDeque<CmafEvent>,
    next_sequence: u64,
    next_fragment: u32,
    segment: Option<OpenSegment>,
    part: Option<OpenPart>,
    pending: Option<PendingVideo>,
    last_frame_ms: i64,
    prev_frame_ms: i64,
    /// Decode time of the next video sample (90 kHz) and audio sample (sample rate).
    video_time: Option<u64>,
    audio_time: Option<u64>,
    next_discontinuity: bool,
    /// The next video sample meets the timeline again (after a republish).
    video_resync: bool,
    /// Where the newest audio frame ends (ends an audio-only stream's last part).
    audio_end_ms: Option<i64>,
}

impl CmafSegmenter {
    /// A segmenter with `config`.
    pub fn new(config: CmafConfig) -> CmafSegmenter {
        CmafSegmenter {
            timeline: Timeline::new(config.jump_threshold, START_MS),
            config,
            video: None,
            audio: None,
            init_sent: false,
            events: VecDeque::new(),
            next_sequence: 0,
            next_fragment: 1,
            segment: None,
            part: None,
            pending: None,
            last_frame_ms: 40,
            prev_frame_ms: 40,
            video_time: None,
            audio_time: None,
            next_discontinuity: false,
            audio_end_ms: None,
            video_resync: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CmafConfig {
        &self.config
    }

    /// Take the oldest event.
    pub fn pop(&mut self) -> Option<CmafEvent> {
        self.events.pop_front()
    }

    /// Codecs and resolution seen so far (RFC 6381 codec strings for `CODECS`).
    pub fn media_info(&self) -> MediaInfo {
        MediaInfo {
            video_codec: self.video.as_ref().map(|v| v.codec.clone()),
            audio_codec: self.audio.as_ref().map(|a| a.asc.codec_string()),
            resolution: self.video.as_ref().map(|v| v.resolution),
            ..MediaInfo::default()
        }
    }

    /// Close the open segment and mark the next one as a discontinuity (a new publisher).
    pub fn discontinuity(&mut self) {
        self.close_segment(None);
        self.timeline.rebase();
        self.next_discontinuity = true;
        // Decode times go on from where they are (never back), meeting the new
        // publisher's timeline at its next sample.
        self.video_resync = true;
    }

    /// The stream ended: close the open part and segment.
    pub fn finish(&mut self) {
        self.close_segment(None);
    }

    /// Feed one FLV tag that arrived at `now`.
    pub fn push(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        match tag.kind {
            TagKind::Video => self.push_video(tag, now),
            TagKind::Audio => self.push_audio(tag, now),
            TagKind::Script => Ok(()),
        }
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        let mut t = Vec::new();
        if let Some(v) = &self.video {
            t.push(TrackConfig {
                id: VIDEO_ID,
                timescale: 90_000,
                entry: v.entry.clone(),
            });
        }
        if let Some(a) = &self.audio {
            t.push(TrackConfig {
                id: AUDIO_ID,
                timescale: a.asc.sample_rate.max(1),
                entry: SampleEntry::Aac {
                    config: a.config.clone(),
                    sample_rate: a.asc.sample_rate,
                    channels: u16::from(a.asc.channel_config.max(1)),
                },
            });
        }
        t
    }

    /// A decoder configuration changed: what is open closes, and a new init segment
    /// follows before the next part.
    fn reconfigure(&mut self) {
        if self.init_sent {
            self.close_segment(None);
            self.next_discontinuity = true;
        }
        self.init_sent = false;
    }

    fn ensure_init(&mut self) {
        if !self.init_sent {
            self.init_sent = true;
            self.events
                .push_back(CmafEvent::Init(init_segment(&self.tracks())));
        }
    }

    fn push_video(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        let v = VideoData::parse(&tag.data)?;
        match v.packet {
            VideoPacket::SequenceStart => {
                if self.video.as_ref().is_none_or(|old| old.seq != v.body) {
                    let (entry, codec, resolution) = video_entry(&v)?;
                    self.reconfigure();
                    self.video = Some(Video {
                        seq: v.body.clone(),
                        entry,
                        codec,
                        resolution,
                    });
                }
                return Ok(());
            }
            VideoPacket::CodedFrames | VideoPacket::CodedFramesX => {}
            _ => return Ok(()),
        }
        if self.video.is_none() || v.body.is_empty() {
            return Ok(());
        }
        let ms = self.map_time(tag.timestamp);
        let key = v.frame_type == FrameType::Key;
        // The previous frame's duration is known now.
        if let Some(p) = self.pending.take() {
            let d = (ms - p.ms).clamp(1, 10_000);
            // Millisecond timestamps make 33.3 ms frames 33 or 34: the larger of the last
            // two predicts the next frame's end without overshooting the part target.
            self.prev_frame_ms = self.last_frame_ms;
            self.last_frame_ms = d;
            self.add_video(p, d);
        }
        let body = strip_temporal_delimiter(v.codec, v.body);
        if key
            && let Some(video) = self.video.as_mut()
            && video.resolution == (0, 0)
        {
            size_from_key_frame(video, v.codec, &body);
        }
        let next_frame_ms = self.last_frame_ms.max(self.prev_frame_ms);
        if !self.cut(ms, now, key, next_frame_ms) {
            return Ok(()); // wait for the first key frame
        }
        self.pending = Some(PendingVideo {
            ms,
            cts_ms: v.composition_time,
            key,
            data: body,
        });
        Ok(())
    }

    fn add_video(&mut self, p: PendingVideo, duration_ms: i64) {
        let ticks = u64::try_from(duration_ms * 90).unwrap_or(0);
        let t = u64::try_from(p.ms * 90).unwrap_or(0);
        let slack = if std::mem::take(&mut self.video_resync) {
            0
        } else {
            u64::MAX // durations come from the timestamps: no drift to correct
        };
        let start = track_time(self.video_time, t, slack);
        if let Some(part) = &mut self.part {
            if part.video.is_empty() {
                part.video_base = start;
            }
            part.video.push(Sample {
                duration: u32::try_from(ticks).unwrap_or(u32::MAX),
                data: p.data,
                key: p.key,
                composition_offset: p.cts_ms.saturating_mul(90),
            });
        }
        self.video_time = Some(start + ticks);
    }

    fn push_audio(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        let a = AudioData::parse(&tag.data)?;
        if a.format != SoundFormat::Aac {
            return Ok(()); // MP3 and others stay TS-only
        }
        if a.aac_packet_type == Some(AacPacketType::SequenceHeader) {
            let asc = AudioSpecificConfig::parse(&a.body)?;
            if self.audio.as_ref().is_none_or(|old| old.config != a.body) {
                self.reconfigure();
                self.audio = Some(Audio {
                    config: a.body,
                    asc,
                });
            }
            return Ok(());
        }
        let Some(rate) = self.audio.as_ref().map(|x| x.asc.sample_rate.max(1)) else {
            return Ok(());
        };
        if a.body.is_empty() {
            return Ok(());
        }
        let ms = self.map_time(tag.timestamp);
        if self.video.is_none() {
            // Audio only: audio cuts parts and segments. Millisecond timestamps round
            // each frame's 21.3 ms (48 kHz) up or down.
            let frame_ms = (i64::from(AAC_FRAME) * 1000).div_euclid(i64::from(rate)) + 1;
            self.cut(ms, now, true, frame_ms);
        } else if self.segment.is_none() {
            return Ok(()); // video leads: wait for its first key frame
        }
        // Frames are counted, not timed: a gap in the audio (over two frames) moves the
        // decode time forward to the timestamp; it never goes back.
        let t = u64::try_from(ms).unwrap_or(0) * u64::from(rate) / 1000;
        let start = track_time(self.audio_time, t, 2 * u64::from(AAC_FRAME));
        if let Some(part) = &mut self.part {
            if part.audio.is_empty() {
                part.audio_base = start;
            }
            part.audio.push(Sample {
                duration: AAC_FRAME,
                data: a.body,
                key: true,
                composition_offset: 0,
            });
        }
        self.audio_time = Some(start + u64::from(AAC_FRAME));
        self.audio_end_ms = Some(ms + i64::from(AAC_FRAME) * 1000 / i64::from(rate));
        Ok(())
    }

    /// The output time of `raw`; a jump in time closes what is open and makes the next
    /// segment a discontinuity.
    fn map_time(&mut self, raw: u32) -> i64 {
        let (ms, jumped) = self.timeline.map(raw);
        if jumped {
            self.close_segment(None);
            self.next_discontinuity = true;
        }
        ms
    }

    /// Cut before the sample at `ms` (a key frame, or any audio-only frame) if a segment
    /// or part ends there: a segment at a key frame once the segment target has passed
    /// (or at any frame past the maximum), a part when this sample, lasting about
    /// `frame_ms`, would take it past the part target. Whether a segment is open for the
    /// sample (the first one opens only at a key frame).
    fn cut(&mut self, ms: i64, now: SystemTime, key: bool, frame_ms: i64) -> bool {
        // Time never goes back inside a segment: a sample stamped a little before the open
        // part (a backward step too small to be a jump) counts as at the part's start, so
        // part and segment boundaries stay in order and a segment is exactly its parts.
        let ms = self.part.as_ref().map_or(ms, |p| ms.max(p.start_ms));
        let Some(seg) = &self.segment else {
            if key {
                self.open_segment(ms, now, true);
            }
            return key;
        };
        let age = ms - seg.start_ms;
        if (key && age >= millis(self.config.segment_target))
            || age >= millis(self.config.max_segment)
        {
            self.close_segment(Some(ms));
            self.open_segment(ms, now, key);
        } else if ms + frame_ms - self.part.as_ref().map_or(ms, |p| p.start_ms)
            > millis(self.config.part_target)
        {
            self.close_part(ms);
            self.open_part(ms, key);
        }
        true
    }

    fn open_segment(&mut self, ms: i64, now: SystemTime, independent: bool) {
        self.ensure_init();
        self.segment = Some(OpenSegment {
            sequence: self.next_sequence,
            start_ms: ms,
            pdt: now,
            discontinuity: std::mem::take(&mut self.next_discontinuity),
            parts: 0,
        });
        self.next_sequence += 1;
        self.open_part(ms, independent);
    }

    fn open_part(&mut self, ms: i64, independent: bool) {
        self.part = Some(OpenPart {
            start_ms: ms,
            independent,
            ..OpenPart::default()
        });
    }

    /// Emit the open part, ending at `end_ms`.
    fn close_part(&mut self, end_ms: i64) {
        let Some(part) = self.part.take() else { return };
        let Some(seg) = &mut self.segment else { return };
        if part.video.is_empty() && part.audio.is_empty() {
            return;
        }
        let mut tracks = Vec::with_capacity(2);
        if !part.video.is_empty() {
            tracks.push(TrackFragment {
                track_id: VIDEO_ID,
                base_decode_time: part.video_base,
                samples: &part.video,
            });
        }
        if !part.audio.is_empty() {
            tracks.push(TrackFragment {
                track_id: AUDIO_ID,
                base_decode_time: part.audio_base,
                samples: &part.audio,
            });
        }
        let frag = fragment(self.next_fragment, &tracks);
        self.next_fragment = self.next_fragment.wrapping_add(1);
        let duration = Duration::from_millis(u64::try_from(end_ms - part.start_ms).unwrap_or(0));
        self.events.push_back(CmafEvent::Part(CmafPart {
            segment: seg.sequence,
            index: seg.parts,
            independent: part.independent,
            duration,
            discontinuity: seg.discontinuity,
            program_date_time: seg.pdt,
            fragment: frag,
        }));
        seg.parts += 1;
    }

    /// Close the open segment; `next_ms` is where the next one starts (none: the stream
    /// stops here, and the last video frame lasts as long as the one before).
    fn close_segment(&mut self, next_ms: Option<i64>) {
        let end = if let Some(ms) = next_ms {
            ms
        } else {
            let end = match &self.pending {
                Some(p) => Some(p.ms + self.last_frame_ms),
                None if self.video.is_none() => self.audio_end_ms,
                None => None,
            };
            if let Some(p) = self.pending.take() {
                let d = self.last_frame_ms;
                self.add_video(p, d);
            }
            let Some(seg) = &self.segment else {
                self.part = None;
                return;
            };
            end.unwrap_or(seg.start_ms)
                .max(self.part.as_ref().map_or(seg.start_ms, |p| p.start_ms))
        };
        self.close_part(end);
        if let Some(seg) = self.segment.take()
            && seg.parts > 0
        {
            self.events.push_back(CmafEvent::SegmentEnd {
                sequence: seg.sequence,
                duration: Duration::from_millis(u64::try_from(end - seg.start_ms).unwrap_or(0)),
                discontinuity: seg.discontinuity,
                program_date_time: seg.pdt,
            });
        }
    }
}

/// A track's next decode time: `t` (from the timestamp) at the start or past a gap of
/// more than `slack`, else where the track is (`cur`).
fn track_time(cur: Option<u64>, t: u64, slack: u64) -> u64 {
    match cur {
        Some(c) if t <= c.saturating_add(slack) => c,
        _ => t,
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The sample entry, codec string and picture size of a video sequence start.
fn video_entry(v: &VideoData) -> Result<(SampleEntry, String, (u32, u32))> {
    let size = |w: u32, h: u32| (u16::try_from(w).unwrap_or(0), u16::try_from(h).unwrap_or(0));
    match v.codec {
        VideoCodec::Avc => {
            let c = AvcConfig::parse(&v.body)?;
            let sps = c
                .sps
                .first()
                .ok_or_else(|| HlsError::invalid("AVC configuration", "no SPS"))?;
            // An SPS this parser cannot size still configures the decoder (which reads
            // the SPS itself): the sample entry then says 0 × 0.
            let (w, h) =
                videopick_flv::avc::SpsInfo::parse(sps).map_or((0, 0), |i| (i.width, i.height));
            let (width, height) = size(w, h);
            Ok((
                SampleEntry::Avc {
                    config: v.body.clone(),
                    width,
                    height,
                },
                c.codec_string(),
                (w, h),
            ))
        }
        VideoCodec::Hevc => {
            let c = HevcConfig::parse(&v.body)?;
            let (w, h) = c.sps_info().map_or((0, 0), |i| (i.width, i.height));
            let (width, height) = size(w, h);
            Ok((
                SampleEntry::Hevc {
                    config: v.body.clone(),
                    width,
                    height,
                },
                c.codec_string(),
                (w, h),
            ))
        }
        VideoCodec::Av1 => {
            let c = videopick_flv::av1::Av1Config::parse(&v.body)?;
            let (w, h) = c.size().unwrap_or((0, 0));
            let (width, height) = size(w, h);
            Ok((
                SampleEntry::Av1 {
                    config: v.body.clone(),
                    width,
                    height,
                },
                c.codec_string(),
                (w, h),
            ))
        }
        VideoCodec::Vp9 => {
            let c = Vp9Config::parse(&v.body)?;
            let record = Vp9Config::record(&v.body);
            let at = v.body.len() - record.len();
            // The size comes with the first key frame.
            Ok((
                SampleEntry::Vp9 {
                    config: v.body.slice(at..),
                    width: 0,
                    height: 0,
                },
                c.codec_string(),
                (0, 0),
            ))
        }
        other => Err(HlsError::invalid(
            "video codec",
            format!("{other:?} cannot be carried in CMAF"),
        )),
    }
}

/// AV1 samples in ISOBMFF carry no temporal delimiter OBU (AV1-ISOBMFF 2.4): drop a
/// leading one (`0x12 0x00`) without copying.
fn strip_temporal_delimiter(codec: VideoCodec, data: Bytes) -> Bytes {
    if codec == VideoCodec::Av1 && data.starts_with(&[0x12, 0x00]) {
        data.slice(2..)
    } else {
        data
    }
}

/// Fill in a picture size the sequence start did not carry (VP9 always, AV1 without a
/// sequence header OBU) from a key frame.
fn size_from_key_frame(video: &mut Video, codec: VideoCodec, frame: &[u8]) {
    let found = match codec {
        VideoCodec::Vp9 => videopick_flv::vp9::frame_size(frame),
        VideoCodec::Av1 => videopick_flv::av1::frame_size(frame),
        _ => None,
    };
    let Some((w, h)) = found else { return };
    let (ww, hh) = (u16::try_from(w).unwrap_or(0), u16::try_from(h).unwrap_or(0));
    if let SampleEntry::Av1 { width, height, .. } | SampleEntry::Vp9 { width, height, .. } =
        &mut video.entry
    {
        *width = ww;
        *height = hh;
    }
    video.resolution = (w, h);
}
