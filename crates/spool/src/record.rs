//! The record format: one batch on disk, header then payload, checksummed with CRC32C.
//!
//! See the crate documentation for the byte layout. This module is pure: it encodes and
//! checks headers; reading files is [`segment`](crate::segment)'s job.

/// Magic bytes opening every record.
pub const MAGIC: [u8; 4] = *b"BFSP";
/// Record format version.
pub const VERSION: u8 = 1;
/// Size of the fixed record header in bytes.
pub const HEADER_LEN: u64 = 36;
/// Offset of the CRC field; the CRC covers bytes `0..CRC_OFFSET` of the header and the payload.
const CRC_OFFSET: usize = 32;

/// Header fields of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length in bytes.
    pub len: u32,
    /// Batch seq.
    pub seq: u64,
    /// Number of readings in the batch.
    pub readings: u32,
    /// Append time, unix milliseconds.
    pub appended_at_ms: u64,
    /// Stored CRC32C (over the header fields and the payload).
    pub crc: u32,
}

impl Header {
    /// Size of the whole record (header and payload) on disk.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN + u64::from(self.len)
    }
}

/// Encodes the header for `payload` into `out` (cleared first), followed by the payload.
pub fn encode(out: &mut Vec<u8>, seq: u64, readings: u32, appended_at_ms: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&readings.to_le_bytes());
    out.extend_from_slice(&appended_at_ms.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..CRC_OFFSET]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Decodes a header, checking magic, version and the reserved bytes. The CRC is checked by
/// the caller once the payload is read: start with [`Header::crc_seed`].
pub fn decode(bytes: &[u8; HEADER_LEN as usize]) -> Result<Header, &'static str> {
    if bytes[0..4] != MAGIC {
        return Err("bad magic");
    }
    if bytes[4] != VERSION {
        return Err("unknown record version");
    }
    if bytes[5..8] != [0, 0, 0] {
        return Err("reserved header bytes are not zero");
    }
    Ok(Header {
        len: u32::from_le_bytes(le(&bytes[8..12])),
        seq: u64::from_le_bytes(le(&bytes[12..20])),
        readings: u32::from_le_bytes(le(&bytes[20..24])),
        appended_at_ms: u64::from_le_bytes(le(&bytes[24..32])),
        crc: u32::from_le_bytes(le(&bytes[32..36])),
    })
}

/// CRC32C state after the header fields: continue with `crc32c_append` over the payload and
/// compare the result to [`Header::crc`].
pub fn crc_seed(bytes: &[u8; HEADER_LEN as usize]) -> u32 {
    crc32c::crc32c(&bytes[..CRC_OFFSET])
}

/// Copies a fixed-size little-endian field; `N` always matches the slice it is given.
fn le<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(buf: &[u8]) -> [u8; HEADER_LEN as usize] {
        buf[..HEADER_LEN as usize]
            .try_into()
            .expect("buffer holds a header")
    }

    #[test]
    fn round_trip_and_crc() {
        let mut buf = Vec::new();
        encode(&mut buf, 42, 7, 1_700_000_000_000, b"hello");
        assert_eq!(buf.len() as u64, HEADER_LEN + 5);
        let head = header_of(&buf);
        let header = decode(&head).expect("valid header");
        assert_eq!((header.len, header.seq, header.readings), (5, 42, 7));
        assert_eq!(header.appended_at_ms, 1_700_000_000_000);
        let crc = crc32c::crc32c_append(crc_seed(&head), &buf[HEADER_LEN as usize..]);
        assert_eq!(crc, header.crc);
    }

    #[test]
    fn rejects_bad_magic_version_reserved() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 1, 0, b"x");
        for (at, reason) in [
            (0, "bad magic"),
            (4, "unknown record version"),
            (6, "reserved"),
        ] {
            let mut head = header_of(&buf);
            head[at] ^= 0xff;
            let err = decode(&head).expect_err("corrupted header");
            assert!(err.starts_with(reason), "{err}");
        }
    }
}
