//! A strict reader and writer for the deterministic CBOR subset the wire format uses.
//!
//! The writer emits RFC 8949 §4.2.1 core deterministic encoding: shortest argument heads,
//! definite lengths only, floats in the shortest form that keeps their value, map keys in
//! bytewise order of their encodings. The reader accepts only that encoding, so one value has
//! exactly one byte string: a decoded message re-encodes to the bytes that were signed.
//!
//! The reader never allocates on the strength of a declared length: a length is checked
//! against the bytes that remain before anything is sliced or reserved.

use crate::error::DecodeError;

const MAJOR_UINT: u8 = 0;
const MAJOR_NINT: u8 = 1;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_SIMPLE: u8 = 7;

const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;

/// Appends deterministic CBOR to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        match arg {
            0..=23 => self.buf.push(m | arg as u8),
            24..=0xff => self.buf.extend_from_slice(&[m | 24, arg as u8]),
            0x100..=0xffff => {
                self.buf.push(m | 25);
                self.buf.extend_from_slice(&(arg as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(m | 26);
                self.buf.extend_from_slice(&(arg as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(m | 27);
                self.buf.extend_from_slice(&arg.to_be_bytes());
            }
        }
    }

    pub(crate) fn uint(&mut self, value: u64) {
        self.head(MAJOR_UINT, value);
    }

    pub(crate) fn int(&mut self, value: i64) {
        if value >= 0 {
            self.head(MAJOR_UINT, value as u64);
        } else {
            self.head(MAJOR_NINT, !(value as u64));
        }
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.head(MAJOR_TEXT, value.len() as u64);
        self.buf.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn array(&mut self, len: usize) {
        self.head(MAJOR_ARRAY, len as u64);
    }

    pub(crate) fn map(&mut self, len: usize) {
        self.head(MAJOR_MAP, len as u64);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.buf.push(if value { TRUE } else { FALSE });
    }

    pub(crate) fn null(&mut self) {
        self.buf.push(NULL);
    }

    /// A finite float in its shortest lossless width (half, single or double).
    pub(crate) fn float(&mut self, value: f64) {
        let half = half::f16::from_f64(value);
        if half.to_f64().to_bits() == value.to_bits() {
            self.buf.push(0xf9);
            self.buf.extend_from_slice(&half.to_bits().to_be_bytes());
            return;
        }
        let single = value as f32;
        if f64::from(single).to_bits() == value.to_bits() {
            self.buf.push(0xfa);
            self.buf.extend_from_slice(&single.to_bits().to_be_bytes());
            return;
        }
        self.buf.push(0xfb);
        self.buf.extend_from_slice(&value.to_bits().to_be_bytes());
    }
}

/// Encoded size of a head with argument `arg`.
pub(crate) const fn head_len(arg: u64) -> usize {
    match arg {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Encoded size of a text string.
pub(crate) const fn text_len(value: &str) -> usize {
    head_len(value.len() as u64) + value.len()
}

/// Encoded size of a signed integer.
pub(crate) const fn int_len(value: i64) -> usize {
    if value >= 0 {
        head_len(value as u64)
    } else {
        head_len(!(value as u64))
    }
}

/// Encoded size of a float in its shortest lossless width.
pub(crate) fn float_len(value: f64) -> usize {
    if half::f16::from_f64(value).to_f64().to_bits() == value.to_bits() {
        3
    } else if f64::from(value as f32).to_bits() == value.to_bits() {
        5
    } else {
        9
    }
}

/// What the next item is, without consuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Text,
    Array,
    Map,
    Bool,
    Null,
    Float,
    Other,
}

/// Reads deterministic CBOR from a byte slice, borrowing text from it.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!("needs {n} bytes, {} remain", self.remaining())));
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn peek(&self) -> Result<Kind> {
        let Some(&initial) = self.data.get(self.pos) else {
            return Err(self.error("unexpected end of input"));
        };
        Ok(match (initial >> 5, initial) {
            (MAJOR_UINT | MAJOR_NINT, _) => Kind::Int,
            (MAJOR_TEXT, _) => Kind::Text,
            (MAJOR_ARRAY, _) => Kind::Array,
            (MAJOR_MAP, _) => Kind::Map,
            (_, FALSE | TRUE) => Kind::Bool,
            (_, NULL) => Kind::Null,
            (_, 0xf9..=0xfb) => Kind::Float,
            _ => Kind::Other,
        })
    }

    /// Reads a head, checking it uses the shortest form; returns (major type, argument).
    fn head(&mut self) -> Result<(u8, u64)> {
        let start = self.pos;
        let initial = self.byte()?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            31 => {
                self.pos = start;
                return Err(self.error("indefinite length is not allowed"));
            }
            _ => {
                self.pos = start;
                return Err(self.error("reserved additional information"));
            }
        };
        if major != MAJOR_SIMPLE && head_len(arg) != self.pos - start {
            self.pos = start;
            return Err(self.error("non-shortest integer or length encoding"));
        }
        Ok((major, arg))
    }

    fn expect_major(&mut self, want: u8, what: &str) -> Result<u64> {
        let start = self.pos;
        let (major, arg) = self.head()?;
        if major != want {
            self.pos = start;
            return Err(self.error(format!("expected {what}")));
        }
        Ok(arg)
    }

    pub(crate) fn uint(&mut self) -> Result<u64> {
        self.expect_major(MAJOR_UINT, "unsigned integer")
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        let start = self.pos;
        let (major, arg) = self.head()?;
        let value = match major {
            MAJOR_UINT => i64::try_from(arg).ok(),
            MAJOR_NINT => i64::try_from(arg).ok().map(|a| -1 - a),
            _ => None,
        };
        value.ok_or_else(|| {
            self.pos = start;
            self.error("expected integer in i64 range")
        })
    }

    /// Reads text and parses it (ids, names), reporting the text's offset on failure.
    pub(crate) fn parsed<T>(
        &mut self,
        parse: impl FnOnce(&'a str) -> crate::Result<T>,
    ) -> Result<T> {
        let at = self.pos;
        let text = self.text()?;
        parse(text).map_err(|e| DecodeError {
            offset: at,
            reason: e.to_string(),
        })
    }

    pub(crate) fn text(&mut self) -> Result<&'a str> {
        let len = self.expect_major(MAJOR_TEXT, "text string")?;
        let len = usize::try_from(len).map_err(|_| self.error("text length overflows"))?;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError {
            offset: start,
            reason: "text is not valid UTF-8".into(),
        })
    }

    /// An array head; the length is checked against the bytes left (each item takes one at
    /// least), so callers may reserve that many slots.
    pub(crate) fn array(&mut self) -> Result<usize> {
        let len = self.expect_major(MAJOR_ARRAY, "array")?;
        self.bounded(len)
    }

    /// A map head; like [`Reader::array`], counting two bytes an entry.
    pub(crate) fn map(&mut self) -> Result<usize> {
        let len = self.expect_major(MAJOR_MAP, "map")?;
        let len = self.bounded(len)?;
        if len.saturating_mul(2) > self.remaining() {
            return Err(self.error("map longer than the input"));
        }
        Ok(len)
    }

    fn bounded(&self, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => Ok(len),
            _ => Err(self.error(format!("declared {len} items, longer than the input"))),
        }
    }

    /// An array whose length must be exactly `len`.
    pub(crate) fn array_of(&mut self, len: usize) -> Result<()> {
        let start = self.pos;
        let found = self.array()?;
        if found != len {
            self.pos = start;
            return Err(self.error(format!("expected an array of {len}, found {found}")));
        }
        Ok(())
    }

    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.byte()? {
            FALSE => Ok(false),
            TRUE => Ok(true),
            _ => {
                self.pos -= 1;
                Err(self.error("expected boolean"))
            }
        }
    }

    /// `None` for CBOR null, else an unsigned integer.
    pub(crate) fn optional_uint(&mut self) -> Result<Option<u64>> {
        if self.peek()? == Kind::Null {
            self.pos += 1;
            return Ok(None);
        }
        self.uint().map(Some)
    }

    /// A finite float in its shortest lossless width.
    pub(crate) fn float(&mut self) -> Result<f64> {
        let start = self.pos;
        let value = match self.byte()? {
            0xf9 => {
                let b = self.take(2)?;
                half::f16::from_bits(u16::from_be_bytes([b[0], b[1]])).to_f64()
            }
            0xfa => {
                let b = self.take(4)?;
                f64::from(f32::from_bits(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            0xfb => {
                let b = self.take(8)?;
                f64::from_bits(u64::from_be_bytes([
                    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                ]))
            }
            _ => {
                self.pos = start;
                return Err(self.error("expected float"));
            }
        };
        let fail = |reason: &str| DecodeError {
            offset: start,
            reason: reason.into(),
        };
        if !value.is_finite() {
            return Err(fail("float must be finite"));
        }
        if float_len(value) != self.pos - start {
            return Err(fail("float not in its shortest lossless width"));
        }
        Ok(value)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<()> {
        if self.remaining() != 0 {
            return Err(self.error(format!("{} trailing bytes", self.remaining())));
        }
        Ok(())
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        f(&mut w);
        w.into_bytes()
    }

    #[test]
    fn rfc8949_appendix_a_examples() {
        assert_eq!(encode(|w| w.uint(0)), [0x00]);
        assert_eq!(encode(|w| w.uint(24)), [0x18, 0x18]);
        assert_eq!(encode(|w| w.uint(1000)), [0x19, 0x03, 0xe8]);
        assert_eq!(encode(|w| w.int(-1000)), [0x39, 0x03, 0xe7]);
        assert_eq!(encode(|w| w.float(1.5)), [0xf9, 0x3e, 0x00]);
        assert_eq!(
            encode(|w| w.float(100000.0)),
            [0xfa, 0x47, 0xc3, 0x50, 0x00]
        );
        assert_eq!(
            encode(|w| w.float(1.1)),
            [0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]
        );
        assert_eq!(encode(|w| w.text("IETF")), [0x64, 0x49, 0x45, 0x54, 0x46]);
    }

    #[test]
    fn rejects_non_shortest_forms() {
        assert!(Reader::new(&[0x18, 0x05]).uint().is_err());
        assert!(Reader::new(&[0xfa, 0x3f, 0xc0, 0x00, 0x00])
            .float()
            .is_err());
        assert!(Reader::new(&[0x9f, 0xff]).array().is_err());
        assert!(
            Reader::new(&[0xf9, 0x7c, 0x00]).float().is_err(),
            "infinity"
        );
    }

    #[test]
    fn rejects_lengths_beyond_input() {
        assert!(
            Reader::new(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .array()
                .is_err()
        );
        assert!(Reader::new(&[0x7a, 0x00, 0x01, 0x00, 0x00, b'a'])
            .text()
            .is_err());
    }

    #[test]
    fn int_extremes_round_trip() {
        for v in [i64::MIN, -1, 0, 23, 24, i64::MAX] {
            let bytes = encode(|w| w.int(v));
            assert_eq!(bytes.len(), int_len(v));
            assert_eq!(Reader::new(&bytes).int(), Ok(v));
        }
    }
}
