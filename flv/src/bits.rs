//! Bounded byte and bit readers over complete buffers.

use crate::error::{FlvError, Result};

/// A cursor over a complete byte slice; every read is bounds-checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(FlvError::UnexpectedEof { what });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A 16-bit length followed by that many bytes, returned as a zero-copy slice of `data`
    /// (the buffer this reader reads).
    pub(crate) fn slice16(
        &mut self,
        data: &bytes::Bytes,
        what: &'static str,
    ) -> Result<bytes::Bytes> {
        let len = usize::from(self.u16(what)?);
        let start = self.pos;
        self.bytes(len, what)?;
        Ok(data.slice(start..start + len))
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64> {
        let b = self.bytes(8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }
}

/// Signed 24-bit big-endian integer (FLV composition time).
pub(crate) fn si24(b: [u8; 3]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

/// Encode a signed 24-bit big-endian integer (clamped to the representable range).
pub(crate) fn put_si24(v: i32) -> [u8; 3] {
    let v = v.clamp(-(1 << 23), (1 << 23) - 1);
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

/// MSB-first bit reader over an RBSP (emulation-prevention bytes already removed).
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, bit: 0 }
    }

    pub(crate) fn bit(&mut self) -> Result<u32> {
        let byte = self
            .buf
            .get(self.bit / 8)
            .ok_or(FlvError::UnexpectedEof { what: "bitstream" })?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(u32::from(v))
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        if self.bit + n > self.buf.len() * 8 {
            return Err(FlvError::UnexpectedEof { what: "bitstream" });
        }
        self.bit += n;
        Ok(())
    }

    /// Unsigned Exp-Golomb code, bounded to 32 bits.
    pub(crate) fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(FlvError::invalid("exp-golomb code", "longer than 32 bits"));
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed Exp-Golomb code (its full range needs 33 bits, hence `i64`).
    pub(crate) fn se(&mut self) -> Result<i64> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Remove H.264/H.265 emulation-prevention bytes (00 00 03 → 00 00).
pub(crate) fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si24_round_trip() {
        for v in [0, 1, -1, 40, -40, (1 << 23) - 1, -(1 << 23)] {
            assert_eq!(si24(put_si24(v)), v);
        }
        assert_eq!(si24([0xff, 0xff, 0xd8]), -40);
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        let mut r = BitReader::new(&[0, 0, 0, 0, 0]);
        assert!(r.ue().is_err());
    }

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
