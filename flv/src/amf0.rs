//! AMF0 (Action Message Format 0): RTMP commands and FLV script data.
//!
//! ```
//! use videopick_flv::amf0::{self, Amf0Value};
//!
//! let values = vec![
//!     Amf0Value::String("connect".into()),
//!     Amf0Value::Number(1.0),
//!     Amf0Value::Object(vec![("app".into(), Amf0Value::String("live".into()))]),
//! ];
//! let bytes = amf0::encode_all(&values);
//! assert_eq!(amf0::decode_all(&bytes).unwrap(), values);
//! ```

use crate::amf3::{self, Amf3Value};
use crate::bits::Reader;
use crate::error::{FlvError, Result};

/// Limits applied while decoding AMF (both AMF0 and embedded AMF3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmfLimits {
    /// Deepest nesting of objects and arrays (default 32).
    pub max_depth: usize,
    /// Most values in one decoded top-level value, counting values copied through AMF3
    /// references (default 100,000).
    pub max_elements: usize,
}

impl Default for AmfLimits {
    fn default() -> Self {
        AmfLimits {
            max_depth: 32,
            max_elements: 100_000,
        }
    }
}

impl AmfLimits {
    /// Set [`AmfLimits::max_depth`].
    #[must_use]
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }
    /// Set [`AmfLimits::max_elements`].
    #[must_use]
    pub fn max_elements(mut self, n: usize) -> Self {
        self.max_elements = n;
        self
    }
}

/// One AMF0 value. Objects and ECMA arrays keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// 0x00: IEEE-754 double.
    Number(f64),
    /// 0x01.
    Boolean(bool),
    /// 0x02 (or 0x0C long string when decoded; encoded as long string above 65,535 bytes).
    String(String),
    /// 0x03: anonymous object.
    Object(Vec<(String, Amf0Value)>),
    /// 0x05.
    Null,
    /// 0x06.
    Undefined,
    /// 0x07: reference to an earlier complex value, kept unresolved.
    Reference(u16),
    /// 0x08: associative array (the count on the wire is advisory and is recomputed).
    EcmaArray(Vec<(String, Amf0Value)>),
    /// 0x0A.
    StrictArray(Vec<Amf0Value>),
    /// 0x0B: milliseconds since the epoch and a (reserved) time-zone offset.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Time-zone field (should be 0).
        timezone: i16,
    },
    /// 0x0D.
    Unsupported,
    /// 0x0F.
    XmlDocument(String),
    /// 0x10: object with a class name.
    TypedObject {
        /// The class name.
        class: String,
        /// Properties in wire order.
        properties: Vec<(String, Amf0Value)>,
    },
    /// 0x11: switch to AMF3 for one value.
    Avmplus(Amf3Value),
}

impl Amf0Value {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => Some(p),
            _ => None,
        }
    }

    /// Look up a property of an object, ECMA array or typed object by name.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const MOVIECLIP: u8 = 0x04;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const RECORDSET: u8 = 0x0E;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// Streaming decoder of consecutive AMF0 values in one complete buffer.
#[derive(Debug)]
pub struct Amf0Decoder<'a> {
    r: Reader<'a>,
    limits: AmfLimits,
    elements: usize,
}

impl<'a> Amf0Decoder<'a> {
    /// Decode values from `buf` under `limits`.
    pub fn new(buf: &'a [u8], limits: AmfLimits) -> Self {
        Amf0Decoder {
            r: Reader::new(buf),
            limits,
            elements: 0,
        }
    }

    /// Bytes not yet decoded.
    pub fn remaining(&self) -> &'a [u8] {
        self.r.rest()
    }

    /// The next value, or `None` at the end of the buffer.
    pub fn next_value(&mut self) -> Result<Option<Amf0Value>> {
        if self.r.remaining() == 0 {
            return Ok(None);
        }
        self.elements = 0;
        self.value(0).map(Some)
    }

    fn count(&mut self) -> Result<()> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(FlvError::TooManyElements(self.limits.max_elements));
        }
        Ok(())
    }

    fn string16(&mut self) -> Result<String> {
        let len = self.r.u16("AMF0 string length")?;
        utf8(self.r.bytes(usize::from(len), "AMF0 string")?)
    }

    fn string32(&mut self) -> Result<String> {
        let len = self.r.u32("AMF0 long string length")?;
        utf8(self.r.bytes(len as usize, "AMF0 long string")?)
    }

    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>> {
        let mut props = Vec::new();
        loop {
            let key = self.string16()?;
            if key.is_empty() && self.r.rest().first() == Some(&OBJECT_END) {
                self.r.u8("object end")?;
                return Ok(props);
            }
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value> {
        if depth > self.limits.max_depth {
            return Err(FlvError::DepthExceeded(self.limits.max_depth));
        }
        self.count()?;
        let marker = self.r.u8("AMF0 marker")?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.r.f64("AMF0 number")?),
            BOOLEAN => Amf0Value::Boolean(self.r.u8("AMF0 boolean")? != 0),
            STRING => Amf0Value::String(self.string16()?),
            LONG_STRING => Amf0Value::String(self.string32()?),
            OBJECT => Amf0Value::Object(self.properties(depth)?),
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            REFERENCE => Amf0Value::Reference(self.r.u16("AMF0 reference")?),
            ECMA_ARRAY => {
                let _advisory_count = self.r.u32("ECMA array count")?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            STRICT_ARRAY => {
                let n = self.r.u32("strict array count")? as usize;
                // Each element takes at least one byte: never trust the count for allocation.
                if n > self.r.remaining() {
                    return Err(FlvError::UnexpectedEof {
                        what: "strict array elements",
                    });
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            DATE => {
                let millis = self.r.f64("AMF0 date")?;
                let timezone = self.r.u16("AMF0 date time zone")?.cast_signed();
                Amf0Value::Date { millis, timezone }
            }
            UNSUPPORTED => Amf0Value::Unsupported,
            XML_DOCUMENT => Amf0Value::XmlDocument(self.string32()?),
            TYPED_OBJECT => {
                let class = self.string16()?;
                Amf0Value::TypedObject {
                    class,
                    properties: self.properties(depth)?,
                }
            }
            AVMPLUS => {
                let budget = self.limits.max_elements - self.elements;
                let limits = self
                    .limits
                    .max_depth(self.limits.max_depth - depth)
                    .max_elements(budget);
                let mut d = amf3::Amf3Decoder::new(self.r.rest(), limits);
                let v = d.decode()?;
                let used = self.r.remaining() - d.remaining().len();
                self.r.bytes(used, "AMF3 value")?;
                self.elements += d.elements();
                Amf0Value::Avmplus(v)
            }
            MOVIECLIP | RECORDSET | OBJECT_END => {
                return Err(FlvError::invalid(
                    "AMF0 value",
                    format!("marker {marker:#04x} is reserved or out of place"),
                ));
            }
            other => {
                return Err(FlvError::UnknownMarker {
                    version: 0,
                    marker: other,
                });
            }
        })
    }
}

fn utf8(b: &[u8]) -> Result<String> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| FlvError::InvalidUtf8)
}

/// Decode every value in `buf` with default limits.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>> {
    decode_all_with(buf, AmfLimits::default())
}

/// Decode every value in `buf` under `limits`.
pub fn decode_all_with(buf: &[u8], limits: AmfLimits) -> Result<Vec<Amf0Value>> {
    let mut d = Amf0Decoder::new(buf, limits);
    let mut out = Vec::new();
    while let Some(v) = d.next_value()? {
        out.push(v);
    }
    Ok(out)
}

fn put_string16(out: &mut Vec<u8>, s: &str) {
    // Keys and class names longer than 65,535 bytes cannot be represented; cut at a char
    // boundary rather than emit a corrupt length.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Amf0Value)]) {
    for (k, v) in props {
        put_string16(out, k);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Append the encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Amf0Value::String(s) => {
            if let Ok(len) = u16::try_from(s.len()) {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
            } else {
                out.push(LONG_STRING);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Amf0Value::Object(props) => {
            out.push(OBJECT);
            put_properties(out, props);
        }
        Amf0Value::Null => out.push(NULL),
        Amf0Value::Undefined => out.push(UNDEFINED),
        Amf0Value::Reference(i) => {
            out.push(REFERENCE);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Amf0Value::EcmaArray(props) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(props.len() as u32).to_be_bytes());
            put_properties(out, props);
        }
        Amf0Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for v in items {
                encode(v, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
        Amf0Value::Unsupported => out.push(UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.push(XML_DOCUMENT);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Amf0Value::TypedObject { class, properties } => {
            out.push(TYPED_OBJECT);
            put_string16(out, class);
            put_properties(out, properties);
        }
        Amf0Value::Avmplus(v) => {
            out.push(AVMPLUS);
            amf3::encode(v, out);
        }
    }
}

/// Encode `values` one after another.
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes() {
        let mut out = Vec::new();
        encode(&Amf0Value::String("connect".into()), &mut out);
        encode(&Amf0Value::Number(1.0), &mut out);
        assert_eq!(
            out,
            [
                2, 0, 7, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0
            ]
        );
        let obj = [3, 0, 1, b'a', 1, 1, 0, 0, 9];
        assert_eq!(
            decode_all(&obj).unwrap(),
            vec![Amf0Value::Object(vec![(
                "a".into(),
                Amf0Value::Boolean(true)
            )])]
        );
    }

    #[test]
    fn long_string_decodes_and_large_strings_encode_long() {
        let v = decode_all(&[0x0c, 0, 0, 0, 2, b'h', b'i']).unwrap();
        assert_eq!(v, vec![Amf0Value::String("hi".into())]);
        let big = "x".repeat(70_000);
        let mut out = Vec::new();
        encode(&Amf0Value::String(big.clone()), &mut out);
        assert_eq!(out[0], LONG_STRING);
        assert_eq!(decode_all(&out).unwrap(), vec![Amf0Value::String(big)]);
    }

    #[test]
    fn hostile_inputs_are_errors() {
        // Truncated object, deep nesting, huge strict-array count, reserved marker.
        assert!(decode_all(&[3, 0, 1, b'a']).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([STRICT_ARRAY, 0, 0, 0, 1], 100)
            .flatten()
            .chain([NULL])
            .collect();
        assert_eq!(decode_all(&deep), Err(FlvError::DepthExceeded(32)));
        assert!(decode_all(&[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_all(&[MOVIECLIP]).is_err());
        assert_eq!(
            decode_all(&[0x42]),
            Err(FlvError::UnknownMarker {
                version: 0,
                marker: 0x42
            })
        );
        assert_eq!(decode_all(&[2, 0, 1, 0xff]), Err(FlvError::InvalidUtf8));
        let many: Vec<u8> = [STRICT_ARRAY, 0, 0, 0x0f, 0xff]
            .into_iter()
            .chain(std::iter::repeat_n(NULL, 0xfff))
            .collect();
        assert_eq!(
            decode_all_with(&many, AmfLimits::default().max_elements(100)),
            Err(FlvError::TooManyElements(100))
        );
    }

    #[test]
    fn lookup_helpers() {
        let v = Amf0Value::Object(vec![
            ("app".into(), Amf0Value::String("live".into())),
            ("n".into(), Amf0Value::Number(3.0)),
        ]);
        assert_eq!(v.get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(v.get("n").and_then(Amf0Value::as_f64), Some(3.0));
        assert!(v.get("zz").is_none());
    }
}
