//! The backup's `manifest.json`: every file of the backup with its size, SHA-256 and mode,
//! and the copies that fill it and empty it.
//!
//! ```json
//! {"format": "beffroi-backup/1", "created_at": "2026-12-05T00:00:00Z", "version": "0.1.0",
//!  "database": "postgres",
//!  "files": [{"path": "pki/ca.key", "bytes": 227, "sha256": "…", "mode": 384}, …]}
//! ```
//! Paths are relative to the backup directory, `/`-separated, never `..`.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::database::Backend;
use super::{io_error, BackupError, MANIFEST_FILE};
use crate::export::hashing::{FileDigest, HashingReader};

/// The manifest's format tag.
const FORMAT: &str = "beffroi-backup/1";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Relative to the backup directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Permission bits it had, and gets back when restored.
    pub mode: u32,
}

/// A backup's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the backup was taken (RFC 3339).
    pub created_at: String,
    /// The platform version that took it.
    pub version: String,
    /// The database's backend.
    pub database: Backend,
    /// Every file but the manifest.
    pub files: Vec<ManifestEntry>,
}

fn digest(path: &Path) -> Result<FileDigest, BackupError> {
    let file = File::open(path).map_err(io_error(path))?;
    HashingReader::new(file).finish().map_err(io_error(path))
}

impl ManifestEntry {
    /// The entry of `file`, a file under `root`.
    pub fn of(root: &Path, file: &Path) -> Result<Self, BackupError> {
        let digest = digest(file)?;
        let mode = std::fs::metadata(file)
            .map_err(io_error(file))?
            .permissions()
            .mode()
            & 0o777;
        let relative = file.strip_prefix(root).unwrap_or(file);
        Ok(Self {
            path: relative.to_string_lossy().into_owned(),
            bytes: digest.bytes,
            sha256: digest.sha256_hex(),
            mode,
        })
    }
}

/// Creates `dir` (and its parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Copies `from` to `root/relative` with its mode; returns its entry.
pub fn copy_file(from: &Path, root: &Path, relative: &Path) -> Result<ManifestEntry, BackupError> {
    let to = root.join(relative);
    if let Some(parent) = to.parent() {
        create_private_dir(parent)?;
    }
    let mode = std::fs::metadata(from)
        .map_err(io_error(from))?
        .permissions()
        .mode()
        & 0o777;
    write_new(&to, &std::fs::read(from).map_err(io_error(from))?, mode)?;
    ManifestEntry::of(root, &to)
}

/// Copies every regular file under `dir` (subdirectories included) to `root/relative/…`;
/// returns their entries. A missing `dir` copies nothing.
pub fn copy_tree(
    dir: &Path,
    root: &Path,
    relative: &Path,
) -> Result<Vec<ManifestEntry>, BackupError> {
    let mut entries = Vec::new();
    if !dir.exists() {
        return Ok(entries);
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_error(dir))?;
    names.sort();
    for path in names {
        let name = path.file_name().unwrap_or_default();
        // A Kubernetes secret volume holds `..data` links: follow only what the files name.
        if name.to_string_lossy().starts_with("..") {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
        if meta.is_dir() {
            entries.extend(copy_tree(&path, root, &relative.join(name))?);
        } else if meta.is_file() {
            entries.push(copy_file(&path, root, &relative.join(name))?);
        }
    }
    Ok(entries)
}

/// Writes `bytes` to a new file `path` with `mode`, synced; an existing file is an error.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BackupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))?;
    // The umask may have narrowed the mode at creation.
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Whether `target` exists with exactly the content of `entry`.
pub fn same_content(target: &Path, entry: &ManifestEntry) -> Result<bool, BackupError> {
    if !target.exists() {
        return Ok(false);
    }
    let digest = digest(target)?;
    Ok(digest.bytes == entry.bytes && digest.sha256_hex() == entry.sha256)
}

/// Copies the backup's file of `entry` to `target` (parents created 0700) with its mode.
pub fn restore_file(from: &Path, entry: &ManifestEntry, target: &Path) -> Result<(), BackupError> {
    if let Some(parent) = target.parent() {
        create_private_dir(parent)?;
    }
    let source = from.join(&entry.path);
    write_new(
        target,
        &std::fs::read(&source).map_err(io_error(&source))?,
        entry.mode,
    )
}

impl Manifest {
    /// A manifest of `files`, taken now.
    pub fn new(database: Backend, files: Vec<ManifestEntry>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            created_at: beffroi_protocol::Timestamp::now().to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database,
            files,
        }
    }

    /// Writes `manifest.json` in `dir` (last: its presence marks a finished backup).
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| BackupError::Manifest {
            dir: dir.to_owned(),
            reason: e.to_string(),
        })?;
        write_new(&path, format!("{text}\n").as_bytes(), 0o600)
    }

    /// Reads the manifest of `dir` and checks every file it lists (size and SHA-256).
    pub fn read_verified(dir: &Path) -> Result<Self, BackupError> {
        let bad = |reason: String| BackupError::Manifest {
            dir: dir.to_owned(),
            reason,
        };
        let path = dir.join(MANIFEST_FILE);
        if !path.exists() {
            return Err(bad(format!(
                "no {MANIFEST_FILE}: not a backup, or an unfinished one"
            )));
        }
        let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| bad(format!("{MANIFEST_FILE}: {e}")))?;
        if manifest.format != FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {FORMAT:?}",
                manifest.format
            )));
        }
        for entry in &manifest.files {
            let relative = Path::new(&entry.path);
            if relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(bad(format!("{}: not a plain relative path", entry.path)));
            }
            let file = dir.join(relative);
            if !same_content(&file, entry)? {
                return Err(bad(format!(
                    "{} is missing or differs from the manifest (size or SHA-256)",
                    entry.path
                )));
            }
        }
        if !manifest
            .files
            .iter()
            .any(|e| e.path == manifest.database.dump_file())
        {
            return Err(bad(format!(
                "the manifest lists no {}",
                manifest.database.dump_file()
            )));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir(source.path().join("next")).unwrap();
        std::fs::write(source.path().join("next").join("ca.crt"), "cert").unwrap();
        crate::pki::write_private(&source.path().join("ca.key"), "key").unwrap();
        let mut files = copy_tree(source.path(), dir.path(), Path::new("pki")).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "pki/ca.key");
        assert_eq!(files[0].mode, 0o600);
        assert_eq!(files[1].path, "pki/next/ca.crt");
        let dump = dir.path().join(Backend::Sqlite.dump_file());
        std::fs::write(&dump, "db").unwrap();
        files.push(ManifestEntry::of(dir.path(), &dump).unwrap());
        Manifest::new(Backend::Sqlite, files)
            .write(dir.path())
            .unwrap();
        assert_eq!(Manifest::read_verified(dir.path()).unwrap().files.len(), 3);

        std::fs::write(&dump, "dB").unwrap();
        let error = Manifest::read_verified(dir.path()).unwrap_err().to_string();
        assert!(error.contains("database.sqlite"), "{error}");
        std::fs::remove_file(&dump).unwrap();
        assert!(Manifest::read_verified(dir.path()).is_err());
        std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        let error = Manifest::read_verified(dir.path()).unwrap_err().to_string();
        assert!(error.contains("unfinished"), "{error}");
    }
}
