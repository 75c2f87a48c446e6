//! RFC 4180 CSV: records end with CRLF; a field containing a comma, a double quote, CR or LF
//! is enclosed in double quotes, with its double quotes doubled; other fields are written
//! as they are. The reader accepts exactly that (CRLF line ends, quotes only around whole
//! fields) and reads one record at a time, so that memory stays flat: a record longer than
//! [`MAX_RECORD_BYTES`] is refused before more of it is buffered.

use std::io::{self, BufRead, Read as _, Write};

/// Longest record the reader accepts, line ends and quotes included. Beffroi's files have
/// records of a few hundred bytes (a string value holds at most 256); without a bound, a file
/// without a line end would be buffered whole.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Writes one record: `fields` separated by commas, quoted where needed, then CRLF.
pub fn write_record<W: Write, S: AsRef<str>>(out: &mut W, fields: &[S]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let field = field.as_ref();
        if field.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The underlying reader failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The text is not RFC 4180 CSV as written by [`write_record`].
    #[error("record {record}: {reason}")]
    Malformed {
        /// The 1-based record number (the header is record 1).
        record: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads records one at a time.
#[derive(Debug)]
pub struct CsvReader<R> {
    inner: R,
    records: u64,
    line: Vec<u8>,
}

impl<R: BufRead> CsvReader<R> {
    /// A reader of `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            records: 0,
            line: Vec::new(),
        }
    }

    /// Records read so far (the header included).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next record into `fields` (cleared first); `false` at the end of the input.
    pub fn next_record(&mut self, fields: &mut Vec<String>) -> Result<bool, CsvError> {
        fields.clear();
        let record = self.records + 1;
        let malformed = |reason| CsvError::Malformed { record, reason };
        let mut field = Vec::new();
        let mut quoted = false;
        let mut closed = false;
        let mut started = false;
        let mut record_bytes = 0;
        loop {
            self.line.clear();
            // One byte over the limit tells a record at the limit from a longer one.
            let allowed = (MAX_RECORD_BYTES - record_bytes + 1) as u64;
            let read = (&mut self.inner)
                .take(allowed)
                .read_until(b'\n', &mut self.line)?;
            if read == 0 {
                return match (started, quoted) {
                    (false, _) => Ok(false),
                    (true, true) => Err(malformed("a quoted field is not closed")),
                    (true, false) => Err(malformed("the last record does not end with CRLF")),
                };
            }
            record_bytes += read;
            if record_bytes > MAX_RECORD_BYTES {
                return Err(malformed("the record is longer than 65536 bytes"));
            }
            started = true;
            let mut bytes = self.line.iter().copied().peekable();
            while let Some(b) = bytes.next() {
                if quoted {
                    if b == b'"' {
                        if bytes.peek() == Some(&b'"') {
                            bytes.next();
                            field.push(b'"');
                        } else {
                            quoted = false;
                            closed = true;
                        }
                    } else {
                        field.push(b);
                    }
                    continue;
                }
                match b {
                    b',' => {
                        fields.push(utf8(std::mem::take(&mut field), record)?);
                        closed = false;
                    }
                    b'"' if field.is_empty() && !closed => quoted = true,
                    b'"' => return Err(malformed("a double quote inside an unquoted field")),
                    b'\r' if bytes.peek() == Some(&b'\n') => {
                        fields.push(utf8(std::mem::take(&mut field), record)?);
                        self.records = record;
                        return Ok(true);
                    }
                    b'\n' => return Err(malformed("a line ends with LF alone, not CRLF")),
                    _ if closed => return Err(malformed("text after a closing double quote")),
                    _ => field.push(b),
                }
            }
            if !quoted {
                // Only a quoted field may hold a line break; the line ended without one.
                return Err(malformed("the last record does not end with CRLF"));
            }
        }
    }
}

fn utf8(bytes: Vec<u8>, record: u64) -> Result<String, CsvError> {
    String::from_utf8(bytes).map_err(|_| CsvError::Malformed {
        record,
        reason: "not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(fields: &[&str]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn read_all(text: &[u8]) -> Result<Vec<Vec<String>>, CsvError> {
        let mut reader = CsvReader::new(text);
        let mut records = Vec::new();
        let mut fields = Vec::new();
        while reader.next_record(&mut fields)? {
            records.push(fields.clone());
        }
        Ok(records)
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(written(&["a", "", "ug/m3"]), "a,,ug/m3\r\n");
        assert_eq!(
            written(&["a,b", "say \"hi\"", "x\r\ny", "l\nf", "'"]),
            "\"a,b\",\"say \"\"hi\"\"\",\"x\r\ny\",\"l\nf\",'\r\n"
        );
    }

    #[test]
    fn reads_back_what_it_writes() {
        let records: [&[&str]; 4] = [
            &["gateway", "unit", "value"],
            &["gw-1", "a,b", "he said \"5\", then left"],
            &["", "\"", "multi\r\nline\nvalue"],
            &["é€😀", ",", ""],
        ];
        let text: String = records.iter().map(|r| written(r)).collect();
        let read = read_all(text.as_bytes()).unwrap();
        assert_eq!(
            read,
            records.map(|r| r.iter().map(|f| f.to_string()).collect::<Vec<_>>())
        );
    }

    #[test]
    fn refuses_what_rfc_4180_does_not_allow() {
        for (text, reason) in [
            ("a,b\n", "LF alone"),
            ("a,b", "does not end with CRLF"),
            ("a,\"b\r\n", "not closed"),
            ("a,b\"c\r\n", "inside an unquoted field"),
            ("\"a\"b,c\r\n", "after a closing double quote"),
        ] {
            let error = read_all(text.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
            assert!(error.starts_with("record 1:"), "{error}");
        }
        let error = read_all(b"a\r\n\xff\r\n").unwrap_err();
        assert!(error.to_string().contains("record 2"), "{error}");
    }

    #[test]
    fn refuses_a_record_over_the_limit_without_buffering_the_rest() {
        let field = |len: usize| "x".repeat(len);
        // At the limit: the field, CRLF.
        let at_limit = format!("{}\r\n", field(MAX_RECORD_BYTES - 2));
        assert_eq!(
            read_all(at_limit.as_bytes()).unwrap()[0][0].len(),
            MAX_RECORD_BYTES - 2
        );
        // One byte over, on one line or across the lines of a quoted field.
        for text in [
            format!("{}\r\n", field(MAX_RECORD_BYTES - 1)),
            format!("\"{}\r\n{}\"\r\n", field(40_000), field(40_000)),
        ] {
            let error = read_all(text.as_bytes()).unwrap_err().to_string();
            assert!(error.contains("longer than 65536 bytes"), "{error}");
        }
        // An endless line is refused after reading just over the limit.
        let mut endless = CsvReader::new(io::BufReader::new(io::repeat(b'x')));
        let error = endless.next_record(&mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
        assert!(endless.line.capacity() < 4 * MAX_RECORD_BYTES);
    }
}
