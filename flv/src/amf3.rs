//! AMF3: RTMP commands and data sent by Flex/AIR clients (message types 15 and 17), and the
//! payload of AMF0's AVM+ switch.
//!
//! References (strings, objects, traits) are resolved while decoding: a referenced value is
//! copied into the tree, and the copies count against [`AmfLimits::max_elements`], so a small
//! message cannot expand into a huge one. Cyclic references cannot be represented in a tree
//! and are rejected. The encoder writes strings by reference when they repeat.
//!
//! ```
//! use videopick_flv::amf3::{self, Amf3Value};
//!
//! let v = Amf3Value::Array {
//!     assoc: vec![("name".into(), Amf3Value::String("cam".into()))],
//!     dense: vec![Amf3Value::Integer(7), Amf3Value::String("cam".into())],
//! };
//! let mut bytes = Vec::new();
//! amf3::encode(&v, &mut bytes);
//! assert_eq!(amf3::decode(&bytes).unwrap(), v);
//! ```

use std::collections::HashMap;

use crate::amf0::AmfLimits;
use crate::bits::Reader;
use crate::error::{FlvError, Result};

/// One AMF3 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf3Value {
    /// 0x00.
    Undefined,
    /// 0x01.
    Null,
    /// 0x02 / 0x03.
    Boolean(bool),
    /// 0x04: 29-bit signed integer (values outside −2²⁸..2²⁸ are encoded as doubles).
    Integer(i32),
    /// 0x05.
    Double(f64),
    /// 0x06.
    String(String),
    /// 0x07: legacy XML document.
    XmlDocument(String),
    /// 0x08: milliseconds since the epoch (UTC).
    Date(f64),
    /// 0x09: associative part (wire order) and dense part.
    Array {
        /// Named members.
        assoc: Vec<(String, Amf3Value)>,
        /// Indexed members.
        dense: Vec<Amf3Value>,
    },
    /// 0x0A.
    Object(Box<Amf3Object>),
    /// 0x0B: E4X XML.
    Xml(String),
    /// 0x0C.
    ByteArray(Vec<u8>),
    /// 0x0D.
    VectorInt {
        /// Fixed length.
        fixed: bool,
        /// Items.
        items: Vec<i32>,
    },
    /// 0x0E.
    VectorUint {
        /// Fixed length.
        fixed: bool,
        /// Items.
        items: Vec<u32>,
    },
    /// 0x0F.
    VectorDouble {
        /// Fixed length.
        fixed: bool,
        /// Items.
        items: Vec<f64>,
    },
    /// 0x10.
    VectorObject {
        /// Fixed length.
        fixed: bool,
        /// Item type name (`*` for any).
        type_name: String,
        /// Items.
        items: Vec<Amf3Value>,
    },
    /// 0x11.
    Dictionary {
        /// Weakly referenced keys.
        weak_keys: bool,
        /// Key/value pairs.
        entries: Vec<(Amf3Value, Amf3Value)>,
    },
}

/// An AMF3 object: its traits and members.
#[derive(Debug, Clone, PartialEq)]
pub struct Amf3Object {
    /// Class name (empty for anonymous objects).
    pub class_name: String,
    /// Whether dynamic members follow the sealed ones.
    pub dynamic: bool,
    /// Sealed members, in trait order.
    pub sealed: Vec<(String, Amf3Value)>,
    /// Dynamic members, in wire order.
    pub dynamic_members: Vec<(String, Amf3Value)>,
    /// For the externalizable Flex wrappers this crate understands
    /// (`flex.messaging.io.ArrayCollection`, `flex.messaging.io.ObjectProxy`): the wrapped
    /// value.
    pub external: Option<Amf3Value>,
}

const UNDEFINED: u8 = 0x00;
const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INTEGER: u8 = 0x04;
const DOUBLE: u8 = 0x05;
const STRING: u8 = 0x06;
const XML_DOC: u8 = 0x07;
const DATE: u8 = 0x08;
const ARRAY: u8 = 0x09;
const OBJECT: u8 = 0x0A;
const XML: u8 = 0x0B;
const BYTE_ARRAY: u8 = 0x0C;
const VECTOR_INT: u8 = 0x0D;
const VECTOR_UINT: u8 = 0x0E;
const VECTOR_DOUBLE: u8 = 0x0F;
const VECTOR_OBJECT: u8 = 0x10;
const DICTIONARY: u8 = 0x11;

/// Externalizable classes whose body is a single AMF3 value.
const KNOWN_EXTERNALIZABLE: [&str; 2] = [
    "flex.messaging.io.ArrayCollection",
    "flex.messaging.io.ObjectProxy",
];

const INT_MIN: i32 = -(1 << 28);
const INT_MAX: i32 = (1 << 28) - 1;

#[derive(Debug, Clone)]
struct Traits {
    class_name: String,
    dynamic: bool,
    externalizable: bool,
    sealed: Vec<String>,
}

/// Decoder of one AMF3 value, with its own reference tables.
#[derive(Debug)]
pub struct Amf3Decoder<'a> {
    r: Reader<'a>,
    limits: AmfLimits,
    elements: usize,
    strings: Vec<String>,
    /// Complex values by reference index, with their element counts; `None` while the value
    /// is still being decoded (a reference to it would be a cycle).
    objects: Vec<Option<(Amf3Value, usize)>>,
    traits: Vec<Traits>,
}

impl<'a> Amf3Decoder<'a> {
    /// A decoder over `buf` under `limits`.
    pub fn new(buf: &'a [u8], limits: AmfLimits) -> Self {
        Amf3Decoder {
            r: Reader::new(buf),
            limits,
            elements: 0,
            strings: Vec::new(),
            objects: Vec::new(),
            traits: Vec::new(),
        }
    }

    /// Bytes not yet decoded.
    pub fn remaining(&self) -> &'a [u8] {
        self.r.rest()
    }

    /// Values decoded so far (including copies made through references).
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Decode the next value (reference tables carry over between calls, as within one
    /// AMF3 message body).
    pub fn decode(&mut self) -> Result<Amf3Value> {
        self.value(0)
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > self.limits.max_elements {
            return Err(FlvError::TooManyElements(self.limits.max_elements));
        }
        Ok(())
    }

    fn u29(&mut self) -> Result<u32> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.r.u8("AMF3 U29")?;
            if i == 3 {
                return Ok((v << 8) | u32::from(b));
            }
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(v)
    }

    /// A length or count from a U29 header, checked against the bytes left (each item takes
    /// at least `min_item_bytes`).
    fn count(&self, n: u32, min_item_bytes: usize, what: &'static str) -> Result<usize> {
        let n = n as usize;
        if n.saturating_mul(min_item_bytes) > self.r.remaining() {
            return Err(FlvError::UnexpectedEof { what });
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let h = self.u29()?;
        if h & 1 == 0 {
            let i = (h >> 1) as usize;
            let s = self
                .strings
                .get(i)
                .ok_or(FlvError::BadReference {
                    table: "string",
                    index: i,
                })?
                .clone();
            return Ok(s);
        }
        let len = (h >> 1) as usize;
        let b = self.r.bytes(len, "AMF3 string")?;
        let s = std::str::from_utf8(b)
            .map_err(|_| FlvError::InvalidUtf8)?
            .to_owned();
        if !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// Reads a U29O-ref header: `Ok(Err(value))` for a resolved reference, `Ok(Ok(bits))`
    /// for an inline value whose remaining header bits are `bits`.
    fn object_header(&mut self) -> Result<std::result::Result<u32, Amf3Value>> {
        let h = self.u29()?;
        if h & 1 == 1 {
            return Ok(Ok(h >> 1));
        }
        let i = (h >> 1) as usize;
        let (v, n) = self
            .objects
            .get(i)
            .and_then(Option::as_ref)
            .ok_or(FlvError::BadReference {
                table: "object",
                index: i,
            })?
            .clone();
        self.charge(n)?;
        Ok(Err(v))
    }

    fn reserve_object(&mut self) -> usize {
        self.objects.push(None);
        self.objects.len() - 1
    }

    fn finish_object(&mut self, slot: usize, v: &Amf3Value, elements_before: usize) {
        let n = self.elements - elements_before;
        self.objects[slot] = Some((v.clone(), n.max(1)));
    }

    fn value(&mut self, depth: usize) -> Result<Amf3Value> {
        if depth > self.limits.max_depth {
            return Err(FlvError::DepthExceeded(self.limits.max_depth));
        }
        self.charge(1)?;
        let marker = self.r.u8("AMF3 marker")?;
        Ok(match marker {
            UNDEFINED => Amf3Value::Undefined,
            NULL => Amf3Value::Null,
            FALSE => Amf3Value::Boolean(false),
            TRUE => Amf3Value::Boolean(true),
            INTEGER => {
                let u = self.u29()?;
                // Sign-extend the 29-bit value.
                Amf3Value::Integer(((u << 3).cast_signed()) >> 3)
            }
            DOUBLE => Amf3Value::Double(self.r.f64("AMF3 double")?),
            STRING => Amf3Value::String(self.string()?),
            XML_DOC | XML | BYTE_ARRAY | DATE => self.simple_complex(marker)?,
            ARRAY => self.array(depth)?,
            OBJECT => self.object(depth)?,
            VECTOR_INT | VECTOR_UINT | VECTOR_DOUBLE | VECTOR_OBJECT => {
                self.vector(marker, depth)?
            }
            DICTIONARY => self.dictionary(depth)?,
            other => {
                return Err(FlvError::UnknownMarker {
                    version: 3,
                    marker: other,
                });
            }
        })
    }

    /// Date, XML, XML document and byte array: complex (referencable) but not nested.
    fn simple_complex(&mut self, marker: u8) -> Result<Amf3Value> {
        let bits = match self.object_header()? {
            Ok(bits) => bits,
            Err(v) => return Ok(v),
        };
        let v = if marker == DATE {
            Amf3Value::Date(self.r.f64("AMF3 date")?)
        } else {
            let b = self.r.bytes(bits as usize, "AMF3 byte data")?;
            match marker {
                BYTE_ARRAY => Amf3Value::ByteArray(b.to_vec()),
                XML => Amf3Value::Xml(utf8(b)?),
                _ => Amf3Value::XmlDocument(utf8(b)?),
            }
        };
        self.objects.push(Some((v.clone(), 1)));
        Ok(v)
    }

    fn array(&mut self, depth: usize) -> Result<Amf3Value> {
        let dense_len = match self.object_header()? {
            Ok(bits) => bits,
            Err(v) => return Ok(v),
        };
        let before = self.elements;
        let slot = self.reserve_object();
        let mut assoc = Vec::new();
        loop {
            let key = self.string()?;
            if key.is_empty() {
                break;
            }
            let v = self.value(depth + 1)?;
            assoc.push((key, v));
        }
        let n = self.count(dense_len, 1, "AMF3 array items")?;
        let mut dense = Vec::with_capacity(n);
        for _ in 0..n {
            dense.push(self.value(depth + 1)?);
        }
        let v = Amf3Value::Array { assoc, dense };
        self.finish_object(slot, &v, before);
        Ok(v)
    }

    fn traits(&mut self, bits: u32) -> Result<Traits> {
        // bits = U29O-traits without the object-inline bit.
        if bits & 1 == 0 {
            let i = (bits >> 1) as usize;
            return self.traits.get(i).cloned().ok_or(FlvError::BadReference {
                table: "traits",
                index: i,
            });
        }
        let externalizable = bits & 2 != 0;
        let dynamic = bits & 4 != 0;
        let sealed_count = self.count(bits >> 3, 1, "AMF3 sealed member names")?;
        let class_name = self.string()?;
        let mut sealed = Vec::with_capacity(sealed_count);
        for _ in 0..sealed_count {
            sealed.push(self.string()?);
        }
        let t = Traits {
            class_name,
            dynamic,
            externalizable,
            sealed,
        };
        self.traits.push(t.clone());
        Ok(t)
    }

    fn object(&mut self, depth: usize) -> Result<Amf3Value> {
        let bits = match self.object_header()? {
            Ok(bits) => bits,
            Err(v) => return Ok(v),
        };
        let before = self.elements;
        let slot = self.reserve_object();
        let traits = self.traits(bits)?;
        let mut obj = Amf3Object {
            class_name: traits.class_name.clone(),
            dynamic: traits.dynamic,
            sealed: Vec::with_capacity(traits.sealed.len()),
            dynamic_members: Vec::new(),
            external: None,
        };
        if traits.externalizable {
            if !KNOWN_EXTERNALIZABLE.contains(&traits.class_name.as_str()) {
                return Err(FlvError::Unsupported(format!(
                    "externalizable AMF3 class {:?}",
                    traits.class_name
                )));
            }
            obj.external = Some(self.value(depth + 1)?);
        } else {
            for name in &traits.sealed {
                let v = self.value(depth + 1)?;
                obj.sealed.push((name.clone(), v));
            }
            if traits.dynamic {
                loop {
                    let key = self.string()?;
                    if key.is_empty() {
                        break;
                    }
                    let v = self.value(depth + 1)?;
                    obj.dynamic_members.push((key, v));
                }
            }
        }
        let v = Amf3Value::Object(Box::new(obj));
        self.finish_object(slot, &v, before);
        Ok(v)
    }

    fn vector(&mut self, marker: u8, depth: usize) -> Result<Amf3Value> {
        let len = match self.object_header()? {
            Ok(bits) => bits,
            Err(v) => return Ok(v),
        };
        let before = self.elements;
        let slot = self.reserve_object();
        let fixed = self.r.u8("AMF3 vector fixed flag")? != 0;
        let v = match marker {
            VECTOR_INT | VECTOR_UINT => {
                let n = self.count(len, 4, "AMF3 vector items")?;
                self.charge(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.r.u32("AMF3 vector item")?);
                }
                if marker == VECTOR_INT {
                    Amf3Value::VectorInt {
                        fixed,
                        items: items.into_iter().map(u32::cast_signed).collect(),
                    }
                } else {
                    Amf3Value::VectorUint { fixed, items }
                }
            }
            VECTOR_DOUBLE => {
                let n = self.count(len, 8, "AMF3 vector items")?;
                self.charge(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.r.f64("AMF3 vector item")?);
                }
                Amf3Value::VectorDouble { fixed, items }
            }
            _ => {
                let type_name = self.string()?;
                let n = self.count(len, 1, "AMF3 vector items")?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Amf3Value::VectorObject {
                    fixed,
                    type_name,
                    items,
                }
            }
        };
        self.finish_object(slot, &v, before);
        Ok(v)
    }

    fn dictionary(&mut self, depth: usize) -> Result<Amf3Value> {
        let len = match self.object_header()? {
            Ok(bits) => bits,
            Err(v) => return Ok(v),
        };
        let before = self.elements;
        let slot = self.reserve_object();
        let weak_keys = self.r.u8("AMF3 dictionary weak flag")? != 0;
        let n = self.count(len, 2, "AMF3 dictionary entries")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        let v = Amf3Value::Dictionary { weak_keys, entries };
        self.finish_object(slot, &v, before);
        Ok(v)
    }
}

fn utf8(b: &[u8]) -> Result<String> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| FlvError::InvalidUtf8)
}

/// Decode one value from `buf` with default limits (trailing bytes are ignored).
pub fn decode(buf: &[u8]) -> Result<Amf3Value> {
    Amf3Decoder::new(buf, AmfLimits::default()).decode()
}

/// Encoder state: the string reference table.
#[derive(Debug, Default)]
struct Encoder {
    strings: HashMap<String, usize>,
}

fn put_u29(out: &mut Vec<u8>, v: u32) {
    let v = v & 0x1fff_ffff;
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[((v >> 7) as u8) | 0x80, (v & 0x7f) as u8]);
    } else if v < 0x20_0000 {
        out.extend_from_slice(&[
            ((v >> 14) as u8) | 0x80,
            ((v >> 7) as u8) | 0x80,
            (v & 0x7f) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            ((v >> 22) as u8) | 0x80,
            ((v >> 15) as u8) | 0x80,
            ((v >> 8) as u8) | 0x80,
            v as u8,
        ]);
    }
}

/// Longest string or byte array representable in a U29 length (2²⁸ − 1 bytes).
const MAX_INLINE: usize = (1 << 28) - 1;

impl Encoder {
    fn string(&mut self, out: &mut Vec<u8>, s: &str) {
        if s.is_empty() {
            out.push(0x01);
            return;
        }
        if let Some(&i) = self.strings.get(s) {
            put_u29(out, (i as u32) << 1);
            return;
        }
        let bytes = &s.as_bytes()[..s.len().min(MAX_INLINE)];
        put_u29(out, ((bytes.len() as u32) << 1) | 1);
        out.extend_from_slice(bytes);
        let n = self.strings.len();
        self.strings.insert(s.to_owned(), n);
    }

    fn inline_bytes(out: &mut Vec<u8>, b: &[u8]) {
        let b = &b[..b.len().min(MAX_INLINE)];
        put_u29(out, ((b.len() as u32) << 1) | 1);
        out.extend_from_slice(b);
    }

    fn members(&mut self, out: &mut Vec<u8>, members: &[(String, Amf3Value)]) {
        for (k, v) in members {
            if k.is_empty() {
                // An empty key would end the member list; it cannot be represented.
                continue;
            }
            self.string(out, k);
            self.value(out, v);
        }
        out.push(0x01);
    }

    #[allow(clippy::too_many_lines)] // one arm per type marker reads best as a single match
    fn value(&mut self, out: &mut Vec<u8>, v: &Amf3Value) {
        match v {
            Amf3Value::Undefined => out.push(UNDEFINED),
            Amf3Value::Null => out.push(NULL),
            Amf3Value::Boolean(false) => out.push(FALSE),
            Amf3Value::Boolean(true) => out.push(TRUE),
            Amf3Value::Integer(i) if (INT_MIN..=INT_MAX).contains(i) => {
                out.push(INTEGER);
                put_u29(out, i.cast_unsigned());
            }
            Amf3Value::Integer(i) => {
                out.push(DOUBLE);
                out.extend_from_slice(&f64::from(*i).to_be_bytes());
            }
            Amf3Value::Double(d) => {
                out.push(DOUBLE);
                out.extend_from_slice(&d.to_be_bytes());
            }
            Amf3Value::String(s) => {
                out.push(STRING);
                self.string(out, s);
            }
            Amf3Value::XmlDocument(s) => {
                out.push(XML_DOC);
                Self::inline_bytes(out, s.as_bytes());
            }
            Amf3Value::Xml(s) => {
                out.push(XML);
                Self::inline_bytes(out, s.as_bytes());
            }
            Amf3Value::ByteArray(b) => {
                out.push(BYTE_ARRAY);
                Self::inline_bytes(out, b);
            }
            Amf3Value::Date(ms) => {
                out.push(DATE);
                out.push(0x01);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Amf3Value::Array { assoc, dense } => {
                out.push(ARRAY);
                put_u29(out, ((dense.len() as u32) << 1) | 1);
                self.members(out, assoc);
                for v in dense {
                    self.value(out, v);
                }
            }
            Amf3Value::Object(obj) => {
                out.push(OBJECT);
                if let Some(ext) = &obj.external {
                    // Inline traits, externalizable, no sealed members.
                    put_u29(out, 0b0111);
                    self.string(out, &obj.class_name);
                    self.value(out, ext);
                    return;
                }
                let flags =
                    ((obj.sealed.len() as u32) << 4) | (u32::from(obj.dynamic) << 3) | 0b011;
                put_u29(out, flags);
                self.string(out, &obj.class_name);
                for (k, _) in &obj.sealed {
                    self.string(out, k);
                }
                for (_, v) in &obj.sealed {
                    self.value(out, v);
                }
                if obj.dynamic {
                    self.members(out, &obj.dynamic_members);
                }
            }
            Amf3Value::VectorInt { fixed, items } => {
                out.push(VECTOR_INT);
                put_u29(out, ((items.len() as u32) << 1) | 1);
                out.push(u8::from(*fixed));
                for i in items {
                    out.extend_from_slice(&i.to_be_bytes());
                }
            }
            Amf3Value::VectorUint { fixed, items } => {
                out.push(VECTOR_UINT);
                put_u29(out, ((items.len() as u32) << 1) | 1);
                out.push(u8::from(*fixed));
                for i in items {
                    out.extend_from_slice(&i.to_be_bytes());
                }
            }
            Amf3Value::VectorDouble { fixed, items } => {
                out.push(VECTOR_DOUBLE);
                put_u29(out, ((items.len() as u32) << 1) | 1);
                out.push(u8::from(*fixed));
                for d in items {
                    out.extend_from_slice(&d.to_be_bytes());
                }
            }
            Amf3Value::VectorObject {
                fixed,
                type_name,
                items,
            } => {
                out.push(VECTOR_OBJECT);
                put_u29(out, ((items.len() as u32) << 1) | 1);
                out.push(u8::from(*fixed));
                self.string(out, type_name);
                for v in items {
                    self.value(out, v);
                }
            }
            Amf3Value::Dictionary { weak_keys, entries } => {
                out.push(DICTIONARY);
                put_u29(out, ((entries.len() as u32) << 1) | 1);
                out.push(u8::from(*weak_keys));
                for (k, v) in entries {
                    self.value(out, k);
                    self.value(out, v);
                }
            }
        }
    }
}

/// Append the encoding of `value` to `out` (strings that repeat are written by reference).
pub fn encode(value: &Amf3Value, out: &mut Vec<u8>) {
    Encoder::default().value(out, value);
}

/// Encode several values sharing one reference table (as in one AMF3 command message).
pub fn encode_all(values: &[Amf3Value]) -> Vec<u8> {
    let mut e = Encoder::default();
    let mut out = Vec::new();
    for v in values {
        e.value(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(b: &[u8]) -> Result<Amf3Value> {
        decode(b)
    }

    #[test]
    fn u29_edges() {
        for v in [
            0,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            0x1fff_ffff,
        ] {
            let mut out = vec![INTEGER];
            put_u29(&mut out, v);
            let Amf3Value::Integer(i) = dec(&out).unwrap() else {
                panic!()
            };
            assert_eq!(i.cast_unsigned() & 0x1fff_ffff, v);
        }
        assert_eq!(
            dec(&[INTEGER, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            Amf3Value::Integer(-1)
        );
    }

    #[test]
    fn string_and_object_references_resolve() {
        // ["ab", ref 0] as dense array, then the same array by reference inside another.
        let v = Amf3Value::Array {
            assoc: vec![],
            dense: vec![
                Amf3Value::String("ab".into()),
                Amf3Value::String("ab".into()),
            ],
        };
        let mut out = Vec::new();
        encode(&v, &mut out);
        // Second "ab" is a reference: 0x06 0x00.
        assert!(out.ends_with(&[STRING, 0x00]), "{out:?}");
        assert_eq!(dec(&out).unwrap(), v);

        // Outer array [inner, ref to object 1 (inner)].
        let bytes = [ARRAY, 0x05, 0x01, ARRAY, 0x03, 0x01, TRUE, ARRAY, 0x02];
        let got = dec(&bytes).unwrap();
        let inner = Amf3Value::Array {
            assoc: vec![],
            dense: vec![Amf3Value::Boolean(true)],
        };
        assert_eq!(
            got,
            Amf3Value::Array {
                assoc: vec![],
                dense: vec![inner.clone(), inner]
            }
        );
    }

    #[test]
    fn cycles_and_bad_references_are_rejected() {
        // Array whose first item references itself (object 0, still being decoded).
        assert_eq!(
            dec(&[ARRAY, 0x03, 0x01, ARRAY, 0x00]),
            Err(FlvError::BadReference {
                table: "object",
                index: 0
            })
        );
        assert!(dec(&[STRING, 0x02]).is_err());
        assert!(dec(&[OBJECT, 0x01]).is_err());
    }

    #[test]
    fn reference_bombs_hit_the_element_limit() {
        // a0 = [true x 8]; a1 = [a0 x 8]; a2 = [a1 x 8] ... each level 8x the previous.
        let mut b = vec![ARRAY, 0x03, 0x01, ARRAY, 0x11, 0x01];
        b.extend(std::iter::repeat_n(TRUE, 8));
        let mut idx = 1u8;
        let mut levels = 0;
        let mut body = Vec::new();
        while levels < 8 {
            body.extend_from_slice(&[ARRAY, 0x11, 0x01]);
            body.extend(std::iter::repeat_n([ARRAY, idx << 1], 8).flatten());
            idx += 1;
            levels += 1;
        }
        // Wrap: outer dense array with 1 + levels items.
        let mut all = vec![ARRAY, ((1 + levels) << 1) | 1, 0x01];
        all.extend_from_slice(&b[3..]);
        all.extend_from_slice(&body);
        let err = dec(&all).unwrap_err();
        assert_eq!(err, FlvError::TooManyElements(100_000));
    }

    #[test]
    fn objects_with_traits_and_externalizable() {
        let obj = Amf3Value::Object(Box::new(Amf3Object {
            class_name: "Point".into(),
            dynamic: true,
            sealed: vec![
                ("x".into(), Amf3Value::Integer(1)),
                ("y".into(), Amf3Value::Double(2.5)),
            ],
            dynamic_members: vec![("tag".into(), Amf3Value::String("x".into()))],
            external: None,
        }));
        let coll = Amf3Value::Object(Box::new(Amf3Object {
            class_name: "flex.messaging.io.ArrayCollection".into(),
            dynamic: false,
            sealed: vec![],
            dynamic_members: vec![],
            external: Some(Amf3Value::Array {
                assoc: vec![],
                dense: vec![obj.clone()],
            }),
        }));
        let bytes = encode_all(&[obj.clone(), coll.clone()]);
        let mut d = Amf3Decoder::new(&bytes, AmfLimits::default());
        assert_eq!(d.decode().unwrap(), obj);
        assert_eq!(d.decode().unwrap(), coll);
        // An unknown externalizable class is a clear error.
        let mut out = vec![OBJECT, 0x07];
        Encoder::default().string(&mut out, "com.example.Secret");
        assert!(matches!(dec(&out), Err(FlvError::Unsupported(_))));
    }
}
