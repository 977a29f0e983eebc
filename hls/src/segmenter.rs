//! FLV tags in, complete MPEG-TS segments out.
//!
//! The [`Segmenter`] converts AVCC/HVCC video to Annex B (an access unit delimiter per
//! frame, parameter sets before every random-access picture) and raw AAC to ADTS, stamps
//! PES packets with 90 kHz PTS/DTS from the FLV timestamp and composition time (32-bit FLV
//! wrap and 33-bit MPEG wrap handled), and cuts a new segment at the first key frame after
//! the target duration (at the target duration for audio-only streams). A timestamp jump
//! or [`Segmenter::discontinuity`] (a republish) closes the segment, re-bases time so the
//! output stays monotonic, and marks the next segment as a discontinuity.

// Output times are clamped to be non-negative before they become u64 ticks, and FLV
// timestamp steps are deliberately read as signed wrapping differences; bitrates are
// figures for humans.
#![allow(
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::cast_precision_loss
)]

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use videopick_flv::hevc::{NAL_PPS, NAL_SPS, NAL_VPS};
use videopick_flv::{
    AacPacketType, AudioData, AudioSpecificConfig, AvcConfig, CodecId, FrameType, HevcConfig,
    OnMetaData, SoundFormat, Tag, TagKind, VideoCodec, VideoData, VideoPacket,
};

use crate::error::{HlsError, Result};
use crate::timeline::Timeline;
use crate::ts::{Pes, StreamType, TsWriter};

/// 90 kHz ticks per millisecond.
const TICKS_PER_MS: u64 = 90;
/// Output time starts here (1.4 s, as common muxers do), leaving room for B-frame
/// reordering and early audio before the first video frame.
const START_MS: i64 = 1400;
/// The PCR runs this far behind the newest DTS (decoder buffering, in 90 kHz ticks).
const PCR_DELAY: u64 = 63_000;
/// Longest PCR interval (40 ms in 90 kHz ticks).
const PCR_INTERVAL: u64 = 3_600;
/// AAC/MP3 frames collected into one audio PES.
const AUDIO_FRAMES_PER_PES: usize = 4;
/// Bytes of audio collected into one PES at most (stays under the 16-bit PES length).
const AUDIO_PES_MAX_BYTES: usize = 16 * 1024;
/// Largest audio frame accepted (an audio PES must fit its 16-bit length).
const MAX_AUDIO_FRAME: usize = 32 * 1024;

const AVC_AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xF0];
const HEVC_AUD: &[u8] = &[0, 0, 0, 1, 0x46, 0x01, 0x50];
const START_CODE: &[u8] = &[0, 0, 0, 1];

/// Segmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Cut at the first key frame at or after this duration (default 2 s).
    pub target_duration: Duration,
    /// Cut even without a key frame once a segment is this long (default 10 × target):
    /// a stream without key frames still produces bounded segments.
    pub max_segment_duration: Duration,
    /// A timestamp step larger than this (forward or back) is a discontinuity (default 10 s).
    pub jump_threshold: Duration,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig::with_target(Duration::from_secs(2))
    }
}

impl SegmenterConfig {
    /// Defaults around a target duration.
    pub fn with_target(target: Duration) -> SegmenterConfig {
        SegmenterConfig {
            target_duration: target,
            max_segment_duration: target * 10,
            jump_threshold: Duration::from_secs(10),
        }
    }
}

/// A complete segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// 0 for the first segment this segmenter produced, then +1 each.
    pub sequence: u64,
    /// Whether the playlist must put EXT-X-DISCONTINUITY before it.
    pub discontinuity: bool,
    /// Whether it starts with a key frame (or is audio-only).
    pub independent: bool,
    /// Its duration (first DTS to the next segment's first DTS).
    pub duration: Duration,
    /// Wall-clock time of its first frame (as given to [`Segmenter::push`]).
    pub program_date_time: SystemTime,
    /// The MPEG-TS bytes (a whole number of 188-byte packets, starting with PAT and PMT).
    pub data: Bytes,
}

/// What the stream carries, for master playlists and stats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// RFC 6381 video codec, e.g. `avc1.64001f`.
    pub video_codec: Option<String>,
    /// RFC 6381 audio codec, e.g. `mp4a.40.2`.
    pub audio_codec: Option<String>,
    /// Picture size from the SPS.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate from the SPS timing info, if signalled.
    pub frame_rate: Option<f64>,
    /// Highest bitrate of any segment so far (bits/s).
    pub peak_bandwidth: u64,
    /// Average bitrate over all segments so far (bits/s).
    pub average_bandwidth: u64,
}

impl MediaInfo {
    /// The CODECS attribute value, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        v.extend(self.video_codec.as_deref());
        v.extend(self.audio_codec.as_deref());
        v.join(",")
    }
}

#[derive(Debug, Clone)]
struct VideoTrack {
    ty: StreamType,
    nal_len: usize,
    /// Parameter sets, each already prefixed with a start code.
    param_sets: Vec<Bytes>,
    codec: String,
    resolution: Option<(u32, u32)>,
    frame_rate: Option<f64>,
}

#[derive(Debug, Clone)]
struct AudioTrack {
    ty: StreamType,
    asc: Option<AudioSpecificConfig>,
    codec: String,
    /// Duration of one frame (ms), for the last segment's duration.
    frame_ms: i64,
}

#[derive(Debug)]
struct Open {
    buf: BytesMut,
    start_ms: i64,
    discontinuity: bool,
    independent: bool,
    pdt: SystemTime,
}

#[derive(Debug)]
struct PendingAudio {
    adts: Option<[u8; 7]>,
    data: Bytes,
    ms: i64,
}

/// Sans-IO HLS segmenter: [`push`](Segmenter::push) FLV tags, then take complete
/// segments with [`pop_segment`](Segmenter::pop_segment).
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    ts: TsWriter,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    open: Option<Open>,
    ready: VecDeque<Segment>,
    next_sequence: u64,
    pending_audio: Vec<PendingAudio>,
    /// FLV ms onto the output timeline.
    timeline: Timeline,
    /// Output ms (and frame duration) of the last video frame, and of the last audio frame.
    last_video_ms: Option<(i64, i64)>,
    last_audio_ms: Option<i64>,
    next_discontinuity: bool,
    // PCR state in 90 kHz ticks (unmasked).
    clock: u64,
    last_pcr: Option<u64>,
    // Stats.
    bits_total: u64,
    duration_total: Duration,
    peak_bandwidth: u64,
    unsupported: Option<String>,
    skipped_tags: u64,
    metadata_fps: Option<f64>,
}

impl Segmenter {
    /// A segmenter with `config`.
    pub fn new(config: SegmenterConfig) -> Segmenter {
        Segmenter {
            config,
            ts: TsWriter::new(),
            video: None,
            audio: None,
            open: None,
            ready: VecDeque::new(),
            next_sequence: 0,
            pending_audio: Vec::new(),
            timeline: Timeline::new(config.jump_threshold, START_MS),
            last_video_ms: None,
            last_audio_ms: None,
            next_discontinuity: false,
            clock: 0,
            last_pcr: None,
            bits_total: 0,
            duration_total: Duration::ZERO,
            peak_bandwidth: 0,
            unsupported: None,
            skipped_tags: 0,
            metadata_fps: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Sequence number the next completed segment will have.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Start numbering at `sequence` (e.g. to continue a recording's numbering).
    pub fn set_next_sequence(&mut self, sequence: u64) {
        self.next_sequence = sequence;
    }

    /// Tags dropped so far (before the first key frame, unsupported codecs, missing
    /// decoder configuration).
    pub fn skipped_tags(&self) -> u64 {
        self.skipped_tags
    }

    /// The last unsupported codec seen, if any (its tags are skipped).
    pub fn unsupported(&self) -> Option<&str> {
        self.unsupported.as_deref()
    }

    /// Codecs, resolution and bitrates seen so far.
    pub fn media_info(&self) -> MediaInfo {
        let average = if self.duration_total.is_zero() {
            0
        } else {
            (self.bits_total as f64 / self.duration_total.as_secs_f64()) as u64
        };
        MediaInfo {
            video_codec: self.video.as_ref().map(|v| v.codec.clone()),
            audio_codec: self.audio.as_ref().map(|a| a.codec.clone()),
            resolution: self.video.as_ref().and_then(|v| v.resolution),
            frame_rate: self
                .video
                .as_ref()
                .and_then(|v| v.frame_rate)
                .or(self.metadata_fps),
            peak_bandwidth: self.peak_bandwidth,
            average_bandwidth: average,
        }
    }

    /// Take the oldest completed segment.
    pub fn pop_segment(&mut self) -> Option<Segment> {
        self.ready.pop_front()
    }

    /// Close the current segment now and mark the next one as a discontinuity (a new
    /// publisher, new codec parameters). Time is re-based so output timestamps continue.
    pub fn discontinuity(&mut self) {
        self.close_segment(None);
        self.timeline.rebase();
        self.next_discontinuity = true;
    }

    /// The stream ended: close the current segment (it becomes available from
    /// [`pop_segment`](Segmenter::pop_segment)).
    pub fn finish(&mut self) {
        self.close_segment(None);
    }

    /// Feed one FLV tag; `now` is the wall-clock time of its arrival (used for
    /// EXT-X-PROGRAM-DATE-TIME). Malformed media gives an error and changes nothing else;
    /// unsupported codecs are skipped (see [`unsupported`](Segmenter::unsupported)).
    pub fn push(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        match tag.kind {
            TagKind::Audio => self.push_audio(tag, now),
            TagKind::Video => self.push_video(tag, now),
            TagKind::Script => {
                self.push_script(tag);
                Ok(())
            }
        }
    }

    /// onMetaData announces an MP3 track before its first frame (MP3 has no sequence
    /// header), so the first segment's PMT lists it; it also gives a frame rate fallback.
    fn push_script(&mut self, tag: &Tag) {
        let Ok(meta) = OnMetaData::parse(&tag.data) else {
            return;
        };
        if meta.audio_codec_id == Some(CodecId::Number(2.0)) && self.audio.is_none() {
            self.audio = Some(mp3_track());
        }
        self.metadata_fps = meta.frame_rate.filter(|f| f.is_finite() && *f > 0.0);
    }

    fn skip_unsupported(&mut self, what: String) {
        self.skipped_tags += 1;
        self.unsupported = Some(what);
    }

    /// Map an FLV timestamp to output milliseconds; a jump closes the segment and marks
    /// the next one as a discontinuity.
    fn time_ms(&mut self, raw: u32) -> i64 {
        let (t, jumped) = self.timeline.map(raw);
        if jumped {
            self.close_segment(None);
            self.next_discontinuity = true;
        }
        t
    }

    fn push_audio(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        let a = AudioData::parse(&tag.data)?;
        let (ty, adts) = match a.format {
            SoundFormat::Aac if a.aac_packet_type == Some(AacPacketType::SequenceHeader) => {
                let asc = AudioSpecificConfig::parse(&a.body)?;
                // Validate that ADTS can describe it before accepting it.
                asc.adts_header(0)?;
                let frame_ms = 1_024_000 / i64::from(asc.sample_rate.max(1));
                self.audio = Some(AudioTrack {
                    ty: StreamType::Aac,
                    codec: asc.codec_string(),
                    asc: Some(asc),
                    frame_ms,
                });
                return Ok(());
            }
            SoundFormat::Aac => {
                let Some(track) = self.audio.as_ref().filter(|t| t.ty == StreamType::Aac) else {
                    self.skipped_tags += 1;
                    return Ok(());
                };
                let asc = track.asc.as_ref().expect("AAC track has a config");
                (StreamType::Aac, Some(asc.adts_header(a.body.len())?))
            }
            SoundFormat::Mp3 | SoundFormat::Mp3_8k => {
                if self.audio.as_ref().is_none_or(|t| t.ty != StreamType::Mp3) {
                    self.audio = Some(mp3_track());
                }
                (StreamType::Mp3, None)
            }
            other => {
                self.skip_unsupported(format!("audio {other:?}"));
                return Ok(());
            }
        };
        debug_assert_eq!(Some(ty), self.audio.as_ref().map(|t| t.ty));
        if a.body.is_empty() {
            return Ok(());
        }
        if a.body.len() > MAX_AUDIO_FRAME {
            return Err(HlsError::invalid(
                "audio frame",
                format!("{} bytes (at most {MAX_AUDIO_FRAME})", a.body.len()),
            ));
        }
        let ms = self.time_ms(tag.timestamp);
        if self.open.is_none() {
            if self.video.is_some() {
                // Video leads: wait for its first key frame.
                self.skipped_tags += 1;
                return Ok(());
            }
            self.open_segment(ms, true, now);
        } else if self.video.is_none() {
            let start = self.open.as_ref().map_or(ms, |o| o.start_ms);
            if ms - start >= self.config.target_duration.as_millis() as i64 {
                self.close_segment(Some(ms));
                self.open_segment(ms, true, now);
            }
        }
        self.last_audio_ms = Some(ms);
        self.pending_audio.push(PendingAudio {
            adts,
            data: a.body,
            ms,
        });
        let bytes: usize = self.pending_audio.iter().map(|p| p.data.len() + 7).sum();
        if self.pending_audio.len() >= AUDIO_FRAMES_PER_PES || bytes >= AUDIO_PES_MAX_BYTES {
            self.flush_audio();
        }
        Ok(())
    }

    fn push_video(&mut self, tag: &Tag, now: SystemTime) -> Result<()> {
        let v = VideoData::parse(&tag.data)?;
        let ty = match v.codec {
            VideoCodec::Avc => StreamType::H264,
            VideoCodec::Hevc => StreamType::H265,
            other => {
                self.skip_unsupported(format!("video {other:?}"));
                return Ok(());
            }
        };
        match v.packet {
            VideoPacket::SequenceStart => {
                self.video = Some(video_track(ty, &v.body)?);
                Ok(())
            }
            VideoPacket::CodedFrames | VideoPacket::CodedFramesX => {
                if self.video.as_ref().is_none_or(|t| t.ty != ty) {
                    self.skipped_tags += 1;
                    return Ok(());
                }
                self.push_frame(tag, &v, now)
            }
            _ => Ok(()),
        }
    }

    fn push_frame(&mut self, tag: &Tag, v: &VideoData, now: SystemTime) -> Result<()> {
        let track = self.video.as_ref().expect("checked by the caller");
        // Split into NAL units first: a malformed frame changes nothing.
        let nals = split_nals(&v.body, track.nal_len)?;
        if nals.is_empty() {
            return Ok(());
        }
        let track_ty = track.ty;
        let hevc = track_ty == StreamType::H265;
        let nal_type = |n: &Bytes| {
            if hevc {
                (n[0] >> 1) & 0x3f
            } else {
                n[0] & 0x1f
            }
        };
        let random_access = v.frame_type == FrameType::Key
            || nals.iter().any(|n| {
                let t = nal_type(n);
                if hevc { (16..=23).contains(&t) } else { t == 5 }
            });
        let has_ps = nals.iter().any(|n| {
            let t = nal_type(n);
            if hevc {
                t == NAL_VPS || t == NAL_SPS
            } else {
                t == 7
            }
        });
        let ms = self.time_ms(tag.timestamp);
        match &self.open {
            None if !random_access => {
                self.skipped_tags += 1;
                return Ok(());
            }
            None => self.open_segment(ms, true, now),
            // The open segment's PMT has no (or another) video stream: start a new segment
            // at this key frame, or skip until one comes.
            Some(_) if self.ts.video() != Some(track_ty) => {
                if !random_access {
                    self.skipped_tags += 1;
                    return Ok(());
                }
                self.close_segment(Some(ms));
                self.open_segment(ms, true, now);
            }
            Some(o) => {
                let age = ms - o.start_ms;
                if random_access && age >= self.config.target_duration.as_millis() as i64 {
                    self.close_segment(Some(ms));
                    self.open_segment(ms, true, now);
                } else if age >= self.config.max_segment_duration.as_millis() as i64 {
                    self.close_segment(Some(ms));
                    self.open_segment(ms, random_access, now);
                }
            }
        }
        if let Some((last, _)) = self.last_video_ms {
            let delta = (ms - last).clamp(1, 1000);
            self.last_video_ms = Some((ms, delta));
        } else {
            self.last_video_ms = Some((ms, 40));
        }
        let dts = ms as u64 * TICKS_PER_MS;
        let pts_ms = (ms + i64::from(v.composition_time)).max(ms);
        let pts = pts_ms as u64 * TICKS_PER_MS;
        let pcr = self.pcr_before_pes(dts, true);
        let track = self.video.as_ref().expect("checked by the caller");
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 + 2 * (nals.len() + 3));
        parts.push(if hevc { HEVC_AUD } else { AVC_AUD });
        if random_access && !has_ps {
            parts.extend(track.param_sets.iter().map(|p| &p[..]));
        }
        for n in &nals {
            let t = nal_type(n);
            let is_aud = if hevc { t == 35 } else { t == 9 };
            if !is_aud {
                parts.push(START_CODE);
                parts.push(n);
            }
        }
        let open = self.open.as_mut().expect("a segment is open");
        self.ts.write_pes(
            &mut open.buf,
            Pes {
                video: true,
                pts,
                dts: Some(dts),
                pcr,
                random_access,
                parts: &parts,
            },
        );
        Ok(())
    }

    /// Advance the mux clock to `dts`; write PCR-only packets to keep PCR gaps within
    /// 40 ms; return the PCR to put in this PES if it is on the PCR PID.
    fn pcr_before_pes(&mut self, dts: u64, video: bool) -> Option<u64> {
        self.clock = self.clock.max(dts);
        let target = self.clock.saturating_sub(PCR_DELAY);
        let on_pcr_pid = video || self.ts.video().is_none();
        let open = self.open.as_mut()?;
        if let Some(mut last) = self.last_pcr {
            // At most 1 s of fill; a larger step is a jump the stream has already made.
            let mut n = 0;
            while target > last + PCR_INTERVAL && n < 25 {
                last += PCR_INTERVAL;
                self.ts.write_pcr_only(&mut open.buf, last);
                n += 1;
            }
            self.last_pcr = Some(last);
        }
        if on_pcr_pid {
            let pcr = self.last_pcr.map_or(target, |l| l.max(target));
            self.last_pcr = Some(pcr);
            Some(pcr)
        } else {
            None
        }
    }

    fn flush_audio(&mut self) {
        if self.pending_audio.is_empty() {
            return;
        }
        let Some(ty) = self.audio.as_ref().map(|a| a.ty) else {
            self.pending_audio.clear();
            return;
        };
        if self.open.is_none() || self.ts.audio() != Some(ty) {
            // The segment's PMT has no (or another) audio stream: drop.
            self.skipped_tags += self.pending_audio.len() as u64;
            self.pending_audio.clear();
            return;
        }
        let pending = std::mem::take(&mut self.pending_audio);
        let pts = pending[0].ms as u64 * TICKS_PER_MS;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(pending.len() * 2);
        for p in &pending {
            if let Some(h) = &p.adts {
                parts.push(h);
            }
            parts.push(&p.data);
        }
        let pcr = self.pcr_before_pes(pts, false);
        let open = self.open.as_mut().expect("checked above");
        self.ts.write_pes(
            &mut open.buf,
            Pes {
                video: false,
                pts,
                dts: None,
                pcr,
                random_access: self.video.is_none(),
                parts: &parts,
            },
        );
        drop(parts);
        self.pending_audio = pending;
        self.pending_audio.clear();
    }

    fn open_segment(&mut self, ms: i64, independent: bool, now: SystemTime) {
        self.ts.set_streams(
            self.video.as_ref().map(|v| v.ty),
            self.audio.as_ref().map(|a| a.ty),
        );
        let mut buf = BytesMut::with_capacity(256 * 1024);
        self.ts.write_tables(&mut buf);
        self.open = Some(Open {
            buf,
            start_ms: ms,
            discontinuity: std::mem::take(&mut self.next_discontinuity),
            independent,
            pdt: now,
        });
    }

    /// Close the open segment; `next_ms` is the next segment's start (else estimated from
    /// the last frames).
    fn close_segment(&mut self, next_ms: Option<i64>) {
        if self.open.is_none() {
            return;
        }
        self.flush_audio();
        let open = self.open.take().expect("checked above");
        let end_ms = next_ms.unwrap_or_else(|| {
            let v = self.last_video_ms.map(|(t, d)| t + d);
            let a = self
                .last_audio_ms
                .map(|t| t + self.audio.as_ref().map_or(23, |a| a.frame_ms));
            v.max(a).unwrap_or(open.start_ms)
        });
        let duration = Duration::from_millis((end_ms - open.start_ms).max(1) as u64);
        let data = open.buf.freeze();
        let bits = data.len() as u64 * 8;
        self.bits_total += bits;
        self.duration_total += duration;
        self.peak_bandwidth = self
            .peak_bandwidth
            .max((bits as f64 / duration.as_secs_f64().max(0.001)) as u64);
        self.ready.push_back(Segment {
            sequence: self.next_sequence,
            discontinuity: open.discontinuity,
            independent: open.independent,
            duration,
            program_date_time: open.pdt,
            data,
        });
        self.next_sequence += 1;
        self.last_video_ms = None;
        self.last_audio_ms = None;
    }
}

fn mp3_track() -> AudioTrack {
    AudioTrack {
        ty: StreamType::Mp3,
        asc: None,
        codec: "mp4a.40.34".into(),
        frame_ms: 26,
    }
}

fn video_track(ty: StreamType, body: &Bytes) -> Result<VideoTrack> {
    let with_start = |n: &Bytes| {
        let mut b = BytesMut::with_capacity(4 + n.len());
        b.extend_from_slice(START_CODE);
        b.extend_from_slice(n);
        b.freeze()
    };
    if ty == StreamType::H264 {
        let c = AvcConfig::parse(body)?;
        let info = c.sps_info().ok();
        Ok(VideoTrack {
            ty,
            nal_len: usize::from(c.nalu_length_size),
            param_sets: c.sps.iter().chain(c.pps.iter()).map(with_start).collect(),
            codec: c.codec_string(),
            resolution: info.map(|i| (i.width, i.height)),
            frame_rate: info.and_then(|i| i.fps),
        })
    } else {
        let c = HevcConfig::parse(body)?;
        let info = c.sps_info().ok();
        let param_sets = [NAL_VPS, NAL_SPS, NAL_PPS]
            .into_iter()
            .flat_map(|t| c.nalus(t).map(with_start).collect::<Vec<_>>())
            .collect();
        Ok(VideoTrack {
            ty,
            nal_len: usize::from(c.nalu_length_size),
            param_sets,
            codec: c.codec_string(),
            resolution: info.map(|i| (i.width, i.height)),
            frame_rate: None,
        })
    }
}

/// Split length-prefixed NAL units (zero-copy slices of `body`).
fn split_nals(body: &Bytes, len_size: usize) -> Result<Vec<Bytes>> {
    if !(1..=4).contains(&len_size) || len_size == 3 {
        return Err(HlsError::invalid(
            "decoder configuration",
            format!("NAL length size {len_size}"),
        ));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body.len() - i < len_size {
            return Err(HlsError::invalid("coded frame", "truncated NAL length"));
        }
        let n = body[i..i + len_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        i += len_size;
        if n > body.len() - i {
            return Err(HlsError::invalid(
                "coded frame",
                format!("NAL unit of {n} bytes past the end of the frame"),
            ));
        }
        if n > 0 {
            out.push(body.slice(i..i + n));
        }
        i += n;
    }
    Ok(out)
}
