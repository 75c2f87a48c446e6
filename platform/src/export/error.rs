//! Why an export or an import did not succeed.

use std::path::{Path, PathBuf};

/// An export or import failure. Import failures found while verifying the directory name
/// the file and say what is wrong; nothing has been written then.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] beffroi_store::Error),
    /// The platform's audit key could not be loaded or updated.
    #[error("audit key: {0}")]
    AuditKey(#[from] crate::audit::AuditKeyError),
    /// An exported file does not verify or does not decode (import), or a record cannot be
    /// written (export).
    #[error("{file}: {reason}")]
    File {
        /// The file, relative to the export directory.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest's signature is missing, invalid or by an untrusted key.
    #[error("manifest.json: {0}")]
    Signature(String),
    /// The command refuses to go on (non-empty output directory, missing tenant, tenant
    /// already present…).
    #[error("{0}")]
    Refused(String),
}

impl ExportError {
    /// An IO error on `path`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    }

    /// A problem with the exported `file`.
    pub(crate) fn file(file: &str, reason: impl Into<String>) -> ExportError {
        ExportError::File {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}
