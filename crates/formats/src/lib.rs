//! The interchange formats Beffroi hands out data in, shared by the tenant export
//! (`beffroi export`) and the grantee export route of the API:
//!
//! - [`csv`]: RFC 4180 CSV, written and read one record at a time;
//! - [`senml`]: RFC 8428 SenML JSON records, and the text of values and times they use.
//!
//! Both work on `std::io` writers and readers, one record at a time, so that memory stays
//! flat whatever the size; neither opens a file or a socket.

pub mod csv;
pub mod senml;
