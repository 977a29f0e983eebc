//! Audio tag bodies (AUDIODATA) and the AAC AudioSpecificConfig.

use bytes::{BufMut, Bytes, BytesMut};

use crate::bits::BitReader;
use crate::error::{FlvError, Result};

/// FLV SoundFormat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SoundFormat {
    /// 0: linear PCM, platform endian.
    LinearPcmPlatform,
    /// 1: ADPCM.
    Adpcm,
    /// 2: MP3.
    Mp3,
    /// 3: linear PCM, little endian.
    LinearPcmLe,
    /// 4: Nellymoser 16 kHz mono.
    Nellymoser16kMono,
    /// 5: Nellymoser 8 kHz mono.
    Nellymoser8kMono,
    /// 6: Nellymoser.
    Nellymoser,
    /// 7: G.711 A-law.
    G711ALaw,
    /// 8: G.711 mu-law.
    G711MuLaw,
    /// 9: reserved (Enhanced RTMP v2 uses it for ExAudioTagHeader).
    Reserved,
    /// 10: AAC.
    Aac,
    /// 11: Speex.
    Speex,
    /// 14: MP3 8 kHz.
    Mp3_8k,
    /// 15: device-specific sound.
    DeviceSpecific,
    /// 12, 13: undefined values.
    Other(u8),
}

impl SoundFormat {
    /// From the 4-bit field.
    pub fn from_bits(v: u8) -> SoundFormat {
        match v {
            0 => SoundFormat::LinearPcmPlatform,
            1 => SoundFormat::Adpcm,
            2 => SoundFormat::Mp3,
            3 => SoundFormat::LinearPcmLe,
            4 => SoundFormat::Nellymoser16kMono,
            5 => SoundFormat::Nellymoser8kMono,
            6 => SoundFormat::Nellymoser,
            7 => SoundFormat::G711ALaw,
            8 => SoundFormat::G711MuLaw,
            9 => SoundFormat::Reserved,
            10 => SoundFormat::Aac,
            11 => SoundFormat::Speex,
            14 => SoundFormat::Mp3_8k,
            15 => SoundFormat::DeviceSpecific,
            other => SoundFormat::Other(other & 0x0f),
        }
    }

    /// The 4-bit field.
    pub fn bits(self) -> u8 {
        match self {
            SoundFormat::LinearPcmPlatform => 0,
            SoundFormat::Adpcm => 1,
            SoundFormat::Mp3 => 2,
            SoundFormat::LinearPcmLe => 3,
            SoundFormat::Nellymoser16kMono => 4,
            SoundFormat::Nellymoser8kMono => 5,
            SoundFormat::Nellymoser => 6,
            SoundFormat::G711ALaw => 7,
            SoundFormat::G711MuLaw => 8,
            SoundFormat::Reserved => 9,
            SoundFormat::Aac => 10,
            SoundFormat::Speex => 11,
            SoundFormat::Mp3_8k => 14,
            SoundFormat::DeviceSpecific => 15,
            SoundFormat::Other(v) => v & 0x0f,
        }
    }
}

/// AAC packet type (second byte of an AAC audio tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AacPacketType {
    /// 0: AudioSpecificConfig.
    SequenceHeader,
    /// 1: raw AAC frame.
    Raw,
}

/// A parsed audio tag body; `body` is a slice of the tag's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioData {
    /// SoundFormat.
    pub format: SoundFormat,
    /// SoundRate field: 0 = 5.5 kHz, 1 = 11 kHz, 2 = 22 kHz, 3 = 44 kHz.
    pub rate: u8,
    /// SoundSize: true for 16-bit samples.
    pub sixteen_bit: bool,
    /// SoundType: true for stereo.
    pub stereo: bool,
    /// For AAC: the packet type.
    pub aac_packet_type: Option<AacPacketType>,
    /// The payload after the header byte(s).
    pub body: Bytes,
}

impl AudioData {
    /// Parse an audio tag body without copying its payload.
    pub fn parse(data: &Bytes) -> Result<AudioData> {
        let first = *data.first().ok_or(FlvError::UnexpectedEof {
            what: "audio tag header",
        })?;
        let format = SoundFormat::from_bits(first >> 4);
        if format == SoundFormat::Reserved {
            return Err(FlvError::Unsupported(
                "Enhanced RTMP v2 audio (ExAudioTagHeader)".into(),
            ));
        }
        let (aac_packet_type, skip) = if format == SoundFormat::Aac {
            let t = *data.get(1).ok_or(FlvError::UnexpectedEof {
                what: "AAC packet type",
            })?;
            let t = match t {
                0 => AacPacketType::SequenceHeader,
                1 => AacPacketType::Raw,
                other => {
                    return Err(FlvError::invalid("AAC packet type", format!("{other}")));
                }
            };
            (Some(t), 2)
        } else {
            (None, 1)
        };
        Ok(AudioData {
            format,
            rate: (first >> 2) & 3,
            sixteen_bit: first & 2 != 0,
            stereo: first & 1 != 0,
            aac_packet_type,
            body: data.slice(skip..),
        })
    }

    /// True for an AAC sequence header (AudioSpecificConfig).
    pub fn is_sequence_header(&self) -> bool {
        self.aac_packet_type == Some(AacPacketType::SequenceHeader)
    }

    /// The header byte(s) of this tag.
    pub fn header_bytes(&self) -> ([u8; 2], usize) {
        let first = (self.format.bits() << 4)
            | ((self.rate & 3) << 2)
            | (u8::from(self.sixteen_bit) << 1)
            | u8::from(self.stereo);
        match self.aac_packet_type {
            Some(t) => ([first, u8::from(t == AacPacketType::Raw)], 2),
            None => ([first, 0], 1),
        }
    }

    /// Encode the tag body (header + payload).
    pub fn to_bytes(&self) -> Bytes {
        let (h, n) = self.header_bytes();
        let mut out = BytesMut::with_capacity(n + self.body.len());
        out.put_slice(&h[..n]);
        out.put_slice(&self.body);
        out.freeze()
    }
}

const AAC_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// MPEG-4 AudioSpecificConfig (ISO 14496-3), as carried in an AAC sequence header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS/HE-AACv2, …).
    pub object_type: u8,
    /// Sampling frequency index (0..=12), or 15 when the rate is explicit.
    pub frequency_index: u8,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo, … 7 = 7.1).
    pub channel_config: u8,
}

impl AudioSpecificConfig {
    /// Parse from the AAC sequence header payload.
    pub fn parse(data: &[u8]) -> Result<AudioSpecificConfig> {
        let mut r = BitReader::new(data);
        let mut object_type = r.bits(5)? as u8;
        if object_type == 31 {
            object_type = 32 + r.bits(6)? as u8;
        }
        let frequency_index = r.bits(4)? as u8;
        let sample_rate = if frequency_index == 15 {
            r.bits(24)?
        } else {
            *AAC_RATES.get(usize::from(frequency_index)).ok_or_else(|| {
                FlvError::invalid(
                    "AudioSpecificConfig",
                    format!("sampling frequency index {frequency_index}"),
                )
            })?
        };
        let channel_config = r.bits(4)? as u8;
        if object_type == 0 {
            return Err(FlvError::invalid("AudioSpecificConfig", "object type 0"));
        }
        Ok(AudioSpecificConfig {
            object_type,
            frequency_index,
            sample_rate,
            channel_config,
        })
    }

    /// Encode as a 2-byte AudioSpecificConfig (object types < 31, table rates only).
    pub fn to_bytes(&self) -> Result<[u8; 2]> {
        if self.object_type >= 31 || self.frequency_index >= 13 {
            return Err(FlvError::Unsupported(
                "encoding escaped object types or explicit rates".into(),
            ));
        }
        let v: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.frequency_index) << 7)
            | (u16::from(self.channel_config & 0x0f) << 3);
        Ok(v.to_be_bytes())
    }

    /// Number of channels (channel configuration 7 is 8 channels).
    pub fn channels(&self) -> u8 {
        match self.channel_config {
            7 => 8,
            c => c,
        }
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The 7-byte ADTS header (no CRC) for a raw AAC frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> Result<[u8; 7]> {
        let frame_len = payload_len + 7;
        if frame_len > 0x1fff {
            return Err(FlvError::TooLarge {
                what: "ADTS frame",
                len: frame_len as u64,
                max: 0x1fff,
            });
        }
        if self.frequency_index >= 13 {
            return Err(FlvError::Unsupported(
                "ADTS with an explicit sampling rate".into(),
            ));
        }
        // ADTS profile is object type − 1, 2 bits: only object types 1..=4 fit; HE-AAC is
        // signalled implicitly as AAC-LC.
        let profile = match self.object_type {
            1..=4 => self.object_type - 1,
            _ => 1,
        };
        let fl = frame_len as u32;
        Ok([
            0xff,
            0xf1,
            (profile << 6) | (self.frequency_index << 2) | ((self.channel_config >> 2) & 1),
            ((self.channel_config & 3) << 6) | ((fl >> 11) as u8 & 3),
            (fl >> 3) as u8,
            (((fl & 7) as u8) << 5) | 0x1f,
            0xfc,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_header_and_config() {
        // AAC, 44 kHz, 16-bit, stereo; sequence header with AAC-LC 44.1 kHz stereo.
        let tag = Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]);
        let a = AudioData::parse(&tag).unwrap();
        assert_eq!(a.format, SoundFormat::Aac);
        assert!(a.is_sequence_header() && a.stereo && a.sixteen_bit && a.rate == 3);
        let asc = AudioSpecificConfig::parse(&a.body).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels()),
            (2, 44_100, 2)
        );
        assert_eq!(asc.codec_string(), "mp4a.40.2");
        assert_eq!(asc.to_bytes().unwrap(), [0x12, 0x10]);
        assert_eq!(a.to_bytes(), tag);
        // ADTS for a 100-byte frame.
        let h = asc.adts_header(100).unwrap();
        assert_eq!(h[0..2], [0xff, 0xf1]);
        let len = (u32::from(h[3] & 3) << 11) | (u32::from(h[4]) << 3) | u32::from(h[5] >> 5);
        assert_eq!(len, 107);
    }

    #[test]
    fn bad_audio() {
        assert!(AudioData::parse(&Bytes::new()).is_err());
        assert!(AudioData::parse(&Bytes::from_static(&[0xaf])).is_err());
        assert!(AudioData::parse(&Bytes::from_static(&[0xaf, 7])).is_err());
        assert!(matches!(
            AudioData::parse(&Bytes::from_static(&[0x9f, 0])),
            Err(FlvError::Unsupported(_))
        ));
        assert!(AudioSpecificConfig::parse(&[0x17, 0x80]).is_err()); // index 15 needs 24 bits
        assert!(AudioSpecificConfig::parse(&[0x16, 0x90]).is_err()); // index 13
        let mp3 = AudioData::parse(&Bytes::from_static(&[0x2f, 1, 2])).unwrap();
        assert_eq!(
            (mp3.format, &mp3.body[..]),
            (SoundFormat::Mp3, &[1u8, 2][..])
        );
    }
}
