//! Bounds-checked big-endian reading and writing. Every read that runs past the end
//! fails with the error the reader was created with, so a short action reports
//! "bad action length" and a short match "bad match length", as OVS does.

use super::error::OfpError;

/// A cursor over received bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    short: OfpError,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], short: OfpError) -> Self {
        Reader { buf, pos: 0, short }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], OfpError> {
        if self.remaining() < n {
            return Err(self.short);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `n` bytes as their own reader, failing with `short` when they run out.
    pub(crate) fn sub(&mut self, n: usize, short: OfpError) -> Result<Reader<'a>, OfpError> {
        Ok(Reader::new(self.bytes(n)?, short))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), OfpError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn peek_u16(&self) -> Result<u16, OfpError> {
        let b = self.buf.get(self.pos..self.pos + 2).ok_or(self.short)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], OfpError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, OfpError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, OfpError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, OfpError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, OfpError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A NUL-padded fixed-size string field, up to its first NUL and at most `n - 1`
    /// bytes (the writer always leaves room for the NUL, as OVS does). Names on the wire
    /// are ASCII; any other byte reads as `?`, so what is read writes back the same.
    pub(crate) fn string(&mut self, n: usize) -> Result<String, OfpError> {
        let raw = self.bytes(n)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(n).min(n.saturating_sub(1));
        Ok(raw[..end].iter().map(|&b| if b.is_ascii() { b as char } else { '?' }).collect())
    }
}

/// An output buffer with the few operations the encoders need.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// Pads with zeros until `len() - start` is a multiple of 8.
    pub(crate) fn pad8_from(&mut self, start: usize) {
        let n = (self.len() - start).next_multiple_of(8) - (self.len() - start);
        self.zeros(n);
    }

    /// A NUL-padded fixed-size string field; longer strings are cut to `n - 1` bytes.
    pub(crate) fn string(&mut self, s: &str, n: usize) {
        let b = s.as_bytes();
        // Cut at a character boundary, leaving room for the NUL.
        let mut take = b.len().min(n - 1);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes(&b[..take]);
        self.zeros(n - take);
    }

    /// Overwrites the u16 at `at` (a length field written before its contents).
    pub(crate) fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the openflow fuzz target: a 16-byte name field with no NUL and bytes
    /// that are not UTF-8 must read as something that writes back to the same reading.
    #[test]
    fn fixed_strings_read_what_they_write() {
        let raw = [0xd8u8, 0xd8, b'e', b't', b'h', 0xd8, 0xd8, b'0', 1, 2, 3, 4, 5, 6, 7, 8];
        let s = Reader::new(&raw, OfpError::BadLen).string(16).unwrap();
        assert_eq!(s, "??eth??0\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}");
        let mut w = Writer::default();
        w.string(&s, 16);
        assert_eq!(Reader::new(&w.buf, OfpError::BadLen).string(16).unwrap(), s);
        // A name too long for the field is cut at a character boundary.
        let mut w = Writer::default();
        w.string("ééééééééé", 16);
        assert_eq!(&w.buf[..15], "ééééééé\u{0}".as_bytes().get(..15).unwrap_or_default());
        assert_eq!(w.buf[14..], [0, 0]);
    }
}
