//! `Write` and `Read` adapters that hash (SHA-256) and count the bytes that pass, so that an
//! exported file is hashed while it is written and checked while it is read, in one pass.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

/// A file's size and SHA-256, as the manifest lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

impl FileDigest {
    /// The SHA-256 in lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Hashes and counts what is written through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes `inner` and returns it with the digest of everything written.
    pub fn finish(mut self) -> io::Result<(W, FileDigest)> {
        self.inner.flush()?;
        let digest = FileDigest {
            bytes: self.bytes,
            sha256: self.hash.finalize().into(),
        };
        Ok((self.inner, digest))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts what is read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then returns the digest of everything `inner` held.
    pub fn finish(mut self) -> io::Result<FileDigest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(FileDigest {
            bytes: self.bytes,
            sha256: self.hash.finalize().into(),
        })
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_give_the_digest_of_the_bytes() {
        let text = b"gateway,seq\r\ngw-1,1\r\n".repeat(1000);
        let mut writer = HashingWriter::new(Vec::new());
        for chunk in text.chunks(7) {
            writer.write_all(chunk).unwrap();
        }
        let (written, digest) = writer.finish().unwrap();
        assert_eq!(written, text);
        let expected: [u8; 32] = Sha256::digest(&text).into();
        assert_eq!(digest.sha256, expected);
        assert_eq!(digest.bytes, text.len() as u64);

        let mut reader = HashingReader::new(&text[..]);
        let mut start = [0u8; 10];
        reader.read_exact(&mut start).unwrap();
        assert_eq!(reader.finish().unwrap(), digest);
    }
}
