//! One segment file: an append-only run of records named after the seq of its first record,
//! plus the compact in-memory index of the records it still holds unacknowledged.
//!
//! Writes use positional IO (`pwrite`/`pread`), so the file offset never matters and a
//! payload can be read back while the segment is still being appended to.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::{self, HEADER_LEN};

/// Extension of segment files.
const EXTENSION: &str = ".seg";
/// Digits in a segment file name (`u64::MAX` has 20).
const NAME_DIGITS: usize = 20;
/// Read buffer used while scanning; bounds memory whatever the record sizes.
const SCAN_BUFFER: usize = 64 * 1024;

/// File name of the segment whose first record has `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{EXTENSION}")
}

/// Parses a segment file name back into its first seq; `None` for any other file.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Index entry of one record still held unacknowledged (about 40 bytes, no payload).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Batch seq.
    pub seq: u64,
    /// Offset of the record header in the segment file.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
    /// Readings in the batch.
    pub readings: u32,
    /// Append time, unix milliseconds.
    pub appended_at_ms: u64,
    /// Acknowledged "above a hole"; such entries are skipped and popped once at the front.
    pub acked: bool,
}

/// What a scan at open found in one segment file.
#[derive(Debug, Default)]
pub struct Scan {
    /// Highest seq of a valid record, acknowledged or not.
    pub highest_seq: Option<u64>,
    /// File length before any truncation.
    pub file_len: u64,
    /// Length of the valid prefix.
    pub valid_len: u64,
    /// Why scanning stopped early, if it did.
    pub corruption: Option<&'static str>,
    /// Valid records skipped because they were already acknowledged.
    pub skipped_acked: u64,
}

/// An open segment file and the index of its unacknowledged records.
#[derive(Debug)]
pub struct Segment {
    /// Seq of the first record written to the file (its name).
    pub first_seq: u64,
    /// Path of the file.
    pub path: PathBuf,
    file: File,
    /// Bytes the file occupies (its length, corrupt tail of a sealed segment included).
    pub len: u64,
    /// Unacknowledged records in seq order; the front entry is never `acked`.
    pub entries: VecDeque<Entry>,
    /// Number of entries not marked `acked`.
    pub unacked: usize,
    /// Written since the last fsync.
    pub unsynced: bool,
}

impl Segment {
    /// Creates a new, empty segment file for records starting at `first_seq`.
    pub fn create(dir: &Path, first_seq: u64) -> Result<Segment> {
        let path = dir.join(file_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io("create segment", &path))?;
        Ok(Segment {
            first_seq,
            path,
            file,
            len: 0,
            entries: VecDeque::new(),
            unacked: 0,
            unsynced: true,
        })
    }

    /// Opens an existing segment and indexes its valid records with seq > `acked_through`.
    ///
    /// Scanning stops at the first record failing a check (magic, version, length, CRC, or a
    /// seq not above `prev_seq` and the previous record). When `truncate` is set (the last
    /// segment) the invalid tail is cut off and the file fsynced.
    pub fn open(
        path: PathBuf,
        first_seq: u64,
        acked_through: u64,
        prev_seq: u64,
        truncate: bool,
    ) -> Result<(Segment, Scan)> {
        let file = OpenOptions::new()
            .read(true)
            .write(truncate)
            .open(&path)
            .map_err(Error::io("open segment", &path))?;
        let file_len = file
            .metadata()
            .map_err(Error::io("stat segment", &path))?
            .len();
        let mut scan = Scan {
            file_len,
            ..Scan::default()
        };
        let mut entries = VecDeque::new();
        let mut reader = BufReader::with_capacity(SCAN_BUFFER, &file);
        let mut chunk = vec![0u8; SCAN_BUFFER];
        let mut last_seq = prev_seq;
        let mut pos = 0u64;
        while pos < file_len {
            let remaining = file_len - pos;
            if remaining < HEADER_LEN {
                scan.corruption = Some("truncated header");
                break;
            }
            let mut head = [0u8; HEADER_LEN as usize];
            reader
                .read_exact(&mut head)
                .map_err(Error::io("read segment", &path))?;
            let header = match record::decode(&head) {
                Ok(header) => header,
                Err(reason) => {
                    scan.corruption = Some(reason);
                    break;
                }
            };
            if header.record_len() > remaining {
                scan.corruption = Some("length runs past the end of the file");
                break;
            }
            let mut crc = record::crc_seed(&head);
            let mut left = header.len as usize;
            while left > 0 {
                let take = left.min(chunk.len());
                reader
                    .read_exact(&mut chunk[..take])
                    .map_err(Error::io("read segment", &path))?;
                crc = crc32c::crc32c_append(crc, &chunk[..take]);
                left -= take;
            }
            if crc != header.crc {
                scan.corruption = Some("crc mismatch");
                break;
            }
            if header.seq <= last_seq {
                scan.corruption = Some("seq not increasing");
                break;
            }
            last_seq = header.seq;
            scan.highest_seq = Some(header.seq);
            if header.seq > acked_through {
                entries.push_back(Entry {
                    seq: header.seq,
                    offset: pos,
                    len: header.len,
                    readings: header.readings,
                    appended_at_ms: header.appended_at_ms,
                    acked: false,
                });
            } else {
                scan.skipped_acked += 1;
            }
            pos += header.record_len();
        }
        drop(reader);
        scan.valid_len = pos;
        let mut len = file_len;
        if truncate && pos < file_len {
            file.set_len(pos)
                .map_err(Error::io("truncate segment", &path))?;
            file.sync_all().map_err(Error::io("fsync segment", &path))?;
            len = pos;
        }
        let unacked = entries.len();
        let segment = Segment {
            first_seq,
            path,
            file,
            len,
            entries,
            unacked,
            unsynced: false,
        };
        Ok((segment, scan))
    }

    /// Writes one encoded record at the end of the file and indexes it. On a failed write
    /// the file is cut back to its previous length (best effort) and the error returned; the
    /// caller must then stop appending to this segment.
    pub fn append(&mut self, encoded: &[u8], entry: Entry) -> Result<()> {
        let offset = self.len;
        if let Err(source) = self.file.write_all_at(encoded, offset) {
            if let Err(undo) = self.file.set_len(offset) {
                tracing::warn!(path = %self.path.display(), error = %undo, "spool: cannot cut back a failed append");
            }
            return Err(Error::Io {
                op: "write segment",
                path: self.path.clone(),
                source,
            });
        }
        self.len += encoded.len() as u64;
        self.entries.push_back(Entry { offset, ..entry });
        self.unacked += 1;
        self.unsynced = true;
        Ok(())
    }

    /// Fsyncs the file's data if anything was written since the last sync.
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.file
                .sync_data()
                .map_err(Error::io("fsync segment", &self.path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Position of `seq` among the entries, if indexed.
    pub fn position(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }

    /// Drops acknowledged entries from the front so the front entry is unacknowledged.
    pub fn pop_acked_front(&mut self) {
        while self.entries.front().is_some_and(|e| e.acked) {
            self.entries.pop_front();
        }
    }

    /// Reads the payload of `entry` back from disk, checking the header and CRC again.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>> {
        let corrupt = |reason| Error::CorruptRecord {
            path: self.path.clone(),
            offset: entry.offset,
            reason,
        };
        let mut head = [0u8; HEADER_LEN as usize];
        self.file
            .read_exact_at(&mut head, entry.offset)
            .map_err(Error::io("read segment", &self.path))?;
        let header = record::decode(&head).map_err(corrupt)?;
        if header.seq != entry.seq || header.len != entry.len {
            return Err(corrupt("header differs from the index"));
        }
        let mut payload = vec![0u8; header.len as usize];
        self.file
            .read_exact_at(&mut payload, entry.offset + HEADER_LEN)
            .map_err(Error::io("read segment", &self.path))?;
        if crc32c::crc32c_append(record::crc_seed(&head), &payload) != header.crc {
            return Err(corrupt("crc mismatch"));
        }
        Ok(payload)
    }

    /// Deletes the file. The directory must be fsynced afterwards for the removal to last.
    pub fn remove(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path).map_err(Error::io("remove segment", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_files_are_ignored() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("00000000000000000042.tmp"), None);
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_name("99999999999999999999.seg"), None);
    }
}
