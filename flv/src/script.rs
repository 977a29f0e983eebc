//! Script data tags and the typed `onMetaData`.

use bytes::Bytes;

use crate::amf0::{self, Amf0Value, AmfLimits};
use crate::error::{FlvError, Result};

/// A script data tag body: a name (`onMetaData`, …) and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptData {
    /// The handler name.
    pub name: String,
    /// The arguments.
    pub values: Vec<Amf0Value>,
}

impl ScriptData {
    /// Parse a script tag body (or an RTMP data message). An RTMP publisher's
    /// `@setDataFrame` wrapper is removed: `["@setDataFrame", "onMetaData", {…}]` becomes
    /// `onMetaData` with `[{…}]`.
    pub fn parse(data: &[u8]) -> Result<ScriptData> {
        Self::parse_with(data, AmfLimits::default())
    }

    /// [`ScriptData::parse`] under explicit AMF limits.
    pub fn parse_with(data: &[u8], limits: AmfLimits) -> Result<ScriptData> {
        let mut values = amf0::decode_all_with(data, limits)?.into_iter();
        let Some(Amf0Value::String(name)) = values.next() else {
            return Err(FlvError::invalid(
                "script data",
                "does not start with a name string",
            ));
        };
        let mut rest: Vec<Amf0Value> = values.collect();
        if name == "@setDataFrame"
            && let Some(Amf0Value::String(inner)) = rest.first()
        {
            let inner = inner.clone();
            rest.remove(0);
            return Ok(ScriptData {
                name: inner,
                values: rest,
            });
        }
        Ok(ScriptData { name, values: rest })
    }

    /// Encode as a script tag body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        amf0::encode(&Amf0Value::String(self.name.clone()), &mut out);
        for v in &self.values {
            amf0::encode(v, &mut out);
        }
        Bytes::from(out)
    }
}

/// A codec id as found in metadata: a legacy number or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, PartialEq)]
pub enum CodecId {
    /// Legacy numeric id (7 = AVC, 10 = AAC, …).
    Number(f64),
    /// A FourCC (Enhanced RTMP sends e.g. `hvc1` as a number of its four bytes, or a string).
    FourCc(String),
}

/// `onMetaData` with the well-known keys typed and every other key kept in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnMetaData {
    /// `duration` in seconds (0 for live).
    pub duration: Option<f64>,
    /// `width` in pixels.
    pub width: Option<f64>,
    /// `height` in pixels.
    pub height: Option<f64>,
    /// `videodatarate` in kbit/s.
    pub video_data_rate: Option<f64>,
    /// `framerate` in frames per second.
    pub frame_rate: Option<f64>,
    /// `videocodecid`.
    pub video_codec_id: Option<CodecId>,
    /// `audiodatarate` in kbit/s.
    pub audio_data_rate: Option<f64>,
    /// `audiosamplerate` in Hz.
    pub audio_sample_rate: Option<f64>,
    /// `audiosamplesize` in bits.
    pub audio_sample_size: Option<f64>,
    /// `stereo`.
    pub stereo: Option<bool>,
    /// `audiocodecid`.
    pub audio_codec_id: Option<CodecId>,
    /// `encoder`.
    pub encoder: Option<String>,
    /// `filesize` in bytes.
    pub file_size: Option<f64>,
    /// Every other key, in wire order.
    pub other: Vec<(String, Amf0Value)>,
}

fn codec_id(v: &Amf0Value) -> Option<CodecId> {
    match v {
        Amf0Value::Number(n) => {
            // Enhanced RTMP may put a FourCC's four bytes in the number.
            if *n >= f64::from(0x2020_2020u32) && n.fract() == 0.0 && *n <= f64::from(u32::MAX) {
                #[allow(clippy::cast_sign_loss)] // range checked just above
                let b = (*n as u32).to_be_bytes();
                if b.iter().all(u8::is_ascii_graphic) {
                    return Some(CodecId::FourCc(String::from_utf8_lossy(&b).into_owned()));
                }
            }
            Some(CodecId::Number(*n))
        }
        Amf0Value::String(s) => Some(CodecId::FourCc(s.clone())),
        _ => None,
    }
}

fn codec_value(c: &CodecId) -> Amf0Value {
    match c {
        CodecId::Number(n) => Amf0Value::Number(*n),
        CodecId::FourCc(s) => Amf0Value::String(s.clone()),
    }
}

impl OnMetaData {
    /// Build from the properties of the metadata object or ECMA array. A well-known key
    /// with an unexpected type is kept in [`OnMetaData::other`].
    pub fn from_amf(value: &Amf0Value) -> Result<OnMetaData> {
        let props = value.properties().ok_or_else(|| {
            FlvError::invalid("onMetaData", "argument is not an object or ECMA array")
        })?;
        let mut m = OnMetaData::default();
        for (k, v) in props {
            let typed = match (k.as_str(), v) {
                ("duration", Amf0Value::Number(n)) => m.duration.replace(*n).is_none(),
                ("width", Amf0Value::Number(n)) => m.width.replace(*n).is_none(),
                ("height", Amf0Value::Number(n)) => m.height.replace(*n).is_none(),
                ("videodatarate", Amf0Value::Number(n)) => m.video_data_rate.replace(*n).is_none(),
                ("framerate", Amf0Value::Number(n)) => m.frame_rate.replace(*n).is_none(),
                ("audiodatarate", Amf0Value::Number(n)) => m.audio_data_rate.replace(*n).is_none(),
                ("audiosamplerate", Amf0Value::Number(n)) => {
                    m.audio_sample_rate.replace(*n).is_none()
                }
                ("audiosamplesize", Amf0Value::Number(n)) => {
                    m.audio_sample_size.replace(*n).is_none()
                }
                ("stereo", Amf0Value::Boolean(b)) => m.stereo.replace(*b).is_none(),
                ("filesize", Amf0Value::Number(n)) => m.file_size.replace(*n).is_none(),
                ("encoder", Amf0Value::String(s)) => m.encoder.replace(s.clone()).is_none(),
                ("videocodecid", v) => match codec_id(v) {
                    Some(c) => m.video_codec_id.replace(c).is_none(),
                    None => false,
                },
                ("audiocodecid", v) => match codec_id(v) {
                    Some(c) => m.audio_codec_id.replace(c).is_none(),
                    None => false,
                },
                _ => false,
            };
            if !typed {
                m.other.push((k.clone(), v.clone()));
            }
        }
        Ok(m)
    }

    /// Parse a whole `onMetaData` script tag body (with or without `@setDataFrame`).
    pub fn parse(data: &[u8]) -> Result<OnMetaData> {
        let script = ScriptData::parse(data)?;
        if script.name != "onMetaData" {
            return Err(FlvError::invalid(
                "onMetaData",
                format!("script data is named {:?}", script.name),
            ));
        }
        let arg = script
            .values
            .first()
            .ok_or_else(|| FlvError::invalid("onMetaData", "no argument"))?;
        OnMetaData::from_amf(arg)
    }

    /// As an ECMA array (typed keys first, then the others in order).
    pub fn to_amf(&self) -> Amf0Value {
        let mut p: Vec<(String, Amf0Value)> = Vec::new();
        let mut num = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                p.push((k.into(), Amf0Value::Number(v)));
            }
        };
        num("duration", self.duration);
        num("width", self.width);
        num("height", self.height);
        num("videodatarate", self.video_data_rate);
        num("framerate", self.frame_rate);
        if let Some(c) = &self.video_codec_id {
            p.push(("videocodecid".into(), codec_value(c)));
        }
        let mut num = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                p.push((k.into(), Amf0Value::Number(v)));
            }
        };
        num("audiodatarate", self.audio_data_rate);
        num("audiosamplerate", self.audio_sample_rate);
        num("audiosamplesize", self.audio_sample_size);
        if let Some(b) = self.stereo {
            p.push(("stereo".into(), Amf0Value::Boolean(b)));
        }
        if let Some(c) = &self.audio_codec_id {
            p.push(("audiocodecid".into(), codec_value(c)));
        }
        if let Some(e) = &self.encoder {
            p.push(("encoder".into(), Amf0Value::String(e.clone())));
        }
        if let Some(n) = self.file_size {
            p.push(("filesize".into(), Amf0Value::Number(n)));
        }
        p.extend(self.other.iter().cloned());
        Amf0Value::EcmaArray(p)
    }

    /// As a script tag body: `onMetaData` and the ECMA array.
    pub fn to_script_bytes(&self) -> Bytes {
        ScriptData {
            name: "onMetaData".into(),
            values: vec![self.to_amf()],
        }
        .to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_data_frame_and_typed_keys() {
        let body = amf0::encode_all(&[
            Amf0Value::String("@setDataFrame".into()),
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("videocodecid".into(), Amf0Value::Number(7.0)),
                ("encoder".into(), Amf0Value::String("Lavf59.27.100".into())),
                ("custom".into(), Amf0Value::Boolean(true)),
                ("height".into(), Amf0Value::String("oops".into())),
                (
                    "audiocodecid".into(),
                    Amf0Value::Number(f64::from(u32::from_be_bytes(*b"Opus"))),
                ),
            ]),
        ]);
        let m = OnMetaData::parse(&body).unwrap();
        assert_eq!(m.width, Some(1280.0));
        assert_eq!(m.video_codec_id, Some(CodecId::Number(7.0)));
        assert_eq!(m.audio_codec_id, Some(CodecId::FourCc("Opus".into())));
        assert_eq!(m.encoder.as_deref(), Some("Lavf59.27.100"));
        assert_eq!(m.height, None);
        assert_eq!(m.other.len(), 2, "{:?}", m.other);
        // Round trip through the tag body.
        let again = OnMetaData::parse(&m.to_script_bytes()).unwrap();
        assert_eq!(again.width, m.width);
        assert_eq!(again.other, m.other);
    }

    #[test]
    fn bad_script_data() {
        assert!(ScriptData::parse(&[]).is_err());
        assert!(ScriptData::parse(&amf0::encode_all(&[Amf0Value::Number(1.0)])).is_err());
        let not_meta = amf0::encode_all(&[Amf0Value::String("onCuePoint".into()), Amf0Value::Null]);
        assert!(OnMetaData::parse(&not_meta).is_err());
    }
}
