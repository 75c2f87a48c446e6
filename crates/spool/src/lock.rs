//! The directory lock: one `Spool` per directory, across processes.
//!
//! An advisory `flock`-style exclusive lock on `spool.lock`, taken with
//! [`std::fs::File::try_lock`], released when the handle is dropped or the process dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// Name of the lock file in the spool directory.
pub const LOCK_FILE: &str = "spool.lock";

/// Holds the exclusive lock for as long as it lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the exclusive lock on `dir`, failing with [`Error::Locked`] if it is held.
pub fn acquire(dir: &Path) -> Result<DirLock> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(TryLockError::Error(err)) => Err(Error::io("lock", &path)(err)),
    }
}
