//! Reversibility (issue #8): `beffroi export` writes a tenant's whole state to a directory —
//! readings (RFC 4180 CSV and SenML JSON), registry, zones, alarm rules, retention, sharing
//! agreements (native and ODRL), partners, the audit log with its checkpoints and the public
//! keys that signed them — with a manifest of every file's size, SHA-256 and row count,
//! signed with the platform's audit key; `beffroi import` verifies all of it before writing
//! anything and restores the tenant into an instance that does not have it, so that a new
//! export of the imported tenant gives the same data files byte for byte.
//!
//! The format, what is left out (secrets) and why, are documented in `docs/export.md`.
//! Readings stream through both commands in pages of batches, so memory stays flat whatever
//! the size; a progress line goes to standard error.
//!
//! - [`csv`]: the RFC 4180 writer and reader (from `beffroi-formats`, which the API's grantee
//!   exports share);
//! - [`hashing`]: `Write`/`Read` adapters that hash and count what passes;
//! - [`files`]: file names and the JSON shapes of the small files;
//! - [`manifest`]: the manifest, its signature and its checks;
//! - [`readings`]: the readings files (batches, CSV, SenML), written and read batch by batch;
//! - [`progress`]: the progress line;
//! - [`write`]: the export; [`restore`]: the import; [`command`]: the CLI.

mod command;
pub use beffroi_formats::csv;
mod error;
pub mod files;
pub mod hashing;
pub mod manifest;
mod progress;
pub mod readings;
mod restore;
mod write;

pub use command::{run_export, run_import, ExportArgs, ImportArgs};
pub use error::ExportError;
pub use progress::Progress;
pub use restore::{import_tenant, ImportSummary};
pub use write::{export_tenant, ExportSummary};
