//! MPEG-TS packetization (ISO 13818-1): PAT/PMT sections, PES packets split into 188-byte
//! transport packets with continuity counters, PCR and random-access flags in adaptation
//! fields, and adaptation-field stuffing for the last packet of each PES.
//!
//! [`TsWriter`] knows nothing about codecs: the segmenter hands it access units already in
//! their elementary-stream form (Annex B video, ADTS audio).

use bytes::{BufMut, BytesMut};

use crate::crc::crc32_mpeg2;

/// Bytes in a transport packet.
pub const TS_PACKET_LEN: usize = 188;
/// Sync byte that starts every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the Program Association Table.
pub const PAT_PID: u16 = 0x0000;
/// PID of the Program Map Table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream.
pub const VIDEO_PID: u16 = 0x0100;
/// PID of the audio elementary stream.
pub const AUDIO_PID: u16 = 0x0101;
/// The 33-bit timestamp space of PTS, DTS and PCR base (90 kHz).
pub const TS_MASK: u64 = (1 << 33) - 1;

/// Elementary stream types this muxer writes (ISO 13818-1 Table 2-34 and its amendments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// 0x1b: H.264 / AVC (Annex B).
    H264,
    /// 0x24: H.265 / HEVC (Annex B).
    H265,
    /// 0x0f: AAC in ADTS.
    Aac,
    /// 0x03: MPEG-1 audio (MP3).
    Mp3,
}

impl StreamType {
    /// The `stream_type` byte in the PMT.
    pub fn code(self) -> u8 {
        match self {
            StreamType::H264 => 0x1b,
            StreamType::H265 => 0x24,
            StreamType::Aac => 0x0f,
            StreamType::Mp3 => 0x03,
        }
    }

    /// Whether this is a video stream type.
    pub fn is_video(self) -> bool {
        matches!(self, StreamType::H264 | StreamType::H265)
    }
}

/// Writes transport packets for one program with up to one video and one audio stream.
/// Continuity counters persist across calls (and so across segments).
#[derive(Debug, Clone)]
pub struct TsWriter {
    video: Option<StreamType>,
    audio: Option<StreamType>,
    pmt_version: u8,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
}

impl Default for TsWriter {
    fn default() -> Self {
        TsWriter::new()
    }
}

impl TsWriter {
    /// A writer with no streams yet.
    pub fn new() -> TsWriter {
        TsWriter {
            video: None,
            audio: None,
            pmt_version: 0,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
        }
    }

    /// Set the program's streams; a change bumps the PMT version.
    pub fn set_streams(&mut self, video: Option<StreamType>, audio: Option<StreamType>) {
        if (video, audio) != (self.video, self.audio) {
            if self.video.is_some() || self.audio.is_some() {
                self.pmt_version = (self.pmt_version + 1) & 0x1f;
            }
            self.video = video;
            self.audio = audio;
        }
    }

    /// The video stream type, if any.
    pub fn video(&self) -> Option<StreamType> {
        self.video
    }

    /// The audio stream type, if any.
    pub fn audio(&self) -> Option<StreamType> {
        self.audio
    }

    /// The PID that carries the PCR: video if present, else audio.
    pub fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    /// Write a PAT and a PMT (one packet each).
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        // PAT: one program (1) mapped to the PMT PID.
        let mut pat = [0u8; 16];
        let pat_len = {
            let s = &mut pat;
            s[0] = 0x00;
            let section_length: u16 = 5 + 4 + 4;
            s[1] = 0xB0 | (section_length >> 8) as u8;
            s[2] = section_length as u8;
            s[3..5].copy_from_slice(&1u16.to_be_bytes()); // transport_stream_id
            s[5] = 0xC1; // version 0, current
            s[6] = 0;
            s[7] = 0;
            s[8..10].copy_from_slice(&1u16.to_be_bytes()); // program_number
            s[10] = 0xE0 | (PMT_PID >> 8) as u8;
            s[11] = PMT_PID as u8;
            let crc = crc32_mpeg2(&s[..12]);
            s[12..16].copy_from_slice(&crc.to_be_bytes());
            16
        };
        let cc = next_cc(&mut self.cc_pat);
        write_psi_packet(out, PAT_PID, cc, &pat[..pat_len]);

        let mut pmt = [0u8; 32];
        let streams: Vec<(StreamType, u16)> = self
            .video
            .map(|v| (v, VIDEO_PID))
            .into_iter()
            .chain(self.audio.map(|a| (a, AUDIO_PID)))
            .collect();
        let section_length = 9 + 5 * streams.len() + 4;
        pmt[0] = 0x02;
        pmt[1] = 0xB0 | (section_length >> 8) as u8;
        pmt[2] = section_length as u8;
        pmt[3..5].copy_from_slice(&1u16.to_be_bytes()); // program_number
        pmt[5] = 0xC1 | (self.pmt_version << 1);
        pmt[6] = 0;
        pmt[7] = 0;
        let pcr = self.pcr_pid();
        pmt[8] = 0xE0 | (pcr >> 8) as u8;
        pmt[9] = pcr as u8;
        pmt[10] = 0xF0; // program_info_length 0
        pmt[11] = 0x00;
        let mut i = 12;
        for (ty, pid) in streams {
            pmt[i] = ty.code();
            pmt[i + 1] = 0xE0 | (pid >> 8) as u8;
            pmt[i + 2] = pid as u8;
            pmt[i + 3] = 0xF0;
            pmt[i + 4] = 0x00;
            i += 5;
        }
        let crc = crc32_mpeg2(&pmt[..i]);
        pmt[i..i + 4].copy_from_slice(&crc.to_be_bytes());
        let cc = next_cc(&mut self.cc_pmt);
        write_psi_packet(out, PMT_PID, cc, &pmt[..i + 4]);
    }

    /// Write one PES packet carrying `parts` (concatenated) on the video or audio PID.
    /// `pts`/`dts` are 90 kHz (masked to 33 bits); `dts` is written only when it differs
    /// from `pts`. `pcr` (27 MHz base in 90 kHz units) goes in the first packet's
    /// adaptation field, as does the random-access indicator.
    pub fn write_pes(&mut self, out: &mut BytesMut, pes: Pes<'_>) {
        let video = pes.video;
        let (pid, stream_id) = if video {
            (VIDEO_PID, 0xE0)
        } else {
            (AUDIO_PID, 0xC0)
        };
        let pts = pes.pts & TS_MASK;
        let dts = pes.dts.map(|d| d & TS_MASK).filter(|&d| d != pts);
        let data_len: usize = pes.parts.iter().map(|p| p.len()).sum();
        let header_data_len = if dts.is_some() { 10 } else { 5 };
        let mut h = [0u8; 19];
        h[0..3].copy_from_slice(&[0, 0, 1]);
        h[3] = stream_id;
        let pes_len = 3 + header_data_len + data_len;
        // 0 (unbounded) is allowed for video only; audio PES are kept below the limit.
        let field = if pes_len <= 0xFFFF { pes_len as u16 } else { 0 };
        h[4..6].copy_from_slice(&field.to_be_bytes());
        h[6] = if video { 0x84 } else { 0x80 }; // '10', data_alignment_indicator for AUs
        if let Some(d) = dts {
            h[7] = 0xC0;
            h[8] = 10;
            put_timestamp(&mut h[9..14], 0x3, pts);
            put_timestamp(&mut h[14..19], 0x1, d);
        } else {
            h[7] = 0x80;
            h[8] = 5;
            put_timestamp(&mut h[9..14], 0x2, pts);
        }
        let header = &h[..9 + header_data_len];
        let cc = if video {
            &mut self.cc_video
        } else {
            &mut self.cc_audio
        };
        write_payload_packets(out, pid, cc, pes.pcr, pes.random_access, header, pes.parts);
    }

    /// Write a packet with only an adaptation field carrying a PCR, on the PCR PID
    /// (the continuity counter does not advance for a packet without payload).
    pub fn write_pcr_only(&mut self, out: &mut BytesMut, pcr: u64) {
        let pid = self.pcr_pid();
        let cc = if pid == VIDEO_PID {
            self.cc_video
        } else {
            self.cc_audio
        };
        // The counter of a payload-less packet repeats the previous packet's value.
        let cc = cc.wrapping_sub(1) & 0x0f;
        out.reserve(TS_PACKET_LEN);
        out.put_u8(SYNC_BYTE);
        out.put_u8((pid >> 8) as u8 & 0x1f);
        out.put_u8(pid as u8);
        out.put_u8(0x20 | cc);
        out.put_u8(183);
        out.put_u8(0x10);
        out.put_slice(&pcr_bytes(pcr));
        out.put_bytes(0xFF, 183 - 7);
    }
}

/// One PES packet for [`TsWriter::write_pes`].
#[derive(Debug, Clone, Copy)]
pub struct Pes<'a> {
    /// Video (true) or audio PID.
    pub video: bool,
    /// Presentation time, 90 kHz.
    pub pts: u64,
    /// Decoding time, 90 kHz (omitted when equal to `pts`).
    pub dts: Option<u64>,
    /// PCR to put in the first packet.
    pub pcr: Option<u64>,
    /// Set the random-access indicator (key frames).
    pub random_access: bool,
    /// The access unit, in pieces that are written back to back.
    pub parts: &'a [&'a [u8]],
}

fn next_cc(cc: &mut u8) -> u8 {
    let v = *cc;
    *cc = (*cc + 1) & 0x0f;
    v
}

fn put_timestamp(out: &mut [u8], prefix: u8, ts: u64) {
    out[0] = (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1;
    out[1] = (ts >> 22) as u8;
    out[2] = (((ts >> 15) as u8) << 1) | 1;
    out[3] = (ts >> 7) as u8;
    out[4] = ((ts as u8) << 1) | 1;
}

fn pcr_bytes(pcr: u64) -> [u8; 6] {
    let base = pcr & TS_MASK;
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base as u8 & 1) << 7) | 0x7E, // 6 reserved bits, extension 0
        0,
    ]
}

fn write_psi_packet(out: &mut BytesMut, pid: u16, cc: u8, section: &[u8]) {
    out.reserve(TS_PACKET_LEN);
    out.put_u8(SYNC_BYTE);
    out.put_u8(0x40 | ((pid >> 8) as u8 & 0x1f)); // payload_unit_start
    out.put_u8(pid as u8);
    out.put_u8(0x10 | cc);
    out.put_u8(0); // pointer_field
    out.put_slice(section);
    out.put_bytes(0xFF, TS_PACKET_LEN - 5 - section.len());
}

/// Split `header` + `parts` into transport packets on `pid`.
fn write_payload_packets(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    pcr: Option<u64>,
    random_access: bool,
    header: &[u8],
    parts: &[&[u8]],
) {
    let total = header.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    out.reserve((total / 176 + 2) * TS_PACKET_LEN);
    let mut left = total;
    let mut src = Pieces {
        header,
        parts,
        part: 0,
        offset: 0,
    };
    let mut first = true;
    while left > 0 {
        // Adaptation field body (after its length byte) for the first packet.
        let mut af = [0u8; 7];
        let mut af_len = 0;
        if first && (pcr.is_some() || random_access) {
            af[0] = if random_access { 0x40 } else { 0 };
            af_len = 1;
            if let Some(p) = pcr {
                af[0] |= 0x10;
                af[1..7].copy_from_slice(&pcr_bytes(p));
                af_len = 7;
            }
        }
        let space = if af_len > 0 { 183 - af_len } else { 184 };
        let payload = left.min(space);
        let stuffing = space - payload;
        let with_af = af_len > 0 || stuffing > 0;
        out.put_u8(SYNC_BYTE);
        out.put_u8(if first { 0x40 } else { 0 } | ((pid >> 8) as u8 & 0x1f));
        out.put_u8(pid as u8);
        out.put_u8(if with_af { 0x30 } else { 0x10 } | next_cc(cc));
        if af_len > 0 {
            out.put_u8((af_len + stuffing) as u8);
            out.put_slice(&af[..af_len]);
            out.put_bytes(0xFF, stuffing);
        } else if stuffing == 1 {
            out.put_u8(0);
        } else if stuffing > 1 {
            out.put_u8((stuffing - 1) as u8);
            out.put_u8(0);
            out.put_bytes(0xFF, stuffing - 2);
        }
        src.copy_to(out, payload);
        left -= payload;
        first = false;
    }
}

struct Pieces<'a> {
    header: &'a [u8],
    parts: &'a [&'a [u8]],
    part: usize,
    offset: usize,
}

impl Pieces<'_> {
    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        if !self.header.is_empty() {
            let k = n.min(self.header.len());
            out.put_slice(&self.header[..k]);
            self.header = &self.header[k..];
            n -= k;
        }
        while n > 0 {
            let p = self.parts[self.part];
            let k = n.min(p.len() - self.offset);
            out.put_slice(&p[self.offset..self.offset + k]);
            self.offset += k;
            n -= k;
            if self.offset == p.len() {
                self.part += 1;
                self.offset = 0;
            }
        }
    }
}
