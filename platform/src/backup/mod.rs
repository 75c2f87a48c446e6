//! Backup and restore of a whole platform (docs/backup.md): `beffroi backup --out DIR` while
//! it runs, `beffroi restore --from DIR` into a fresh database and data directory.
//!
//! A backup directory holds:
//! - the database: `database.sqlite` (a consistent copy taken with SQLite's `VACUUM INTO`
//!   while the platform runs) or `database.pgdump` (`pg_dump --format=custom`, one
//!   consistent snapshot). Readings, registry, rules, alarms, agreements, the audit log and
//!   its signed checkpoints all live there;
//! - `pki/`: every file of the PKI directory (CA, gate certificate, audit signing key and
//!   public keys, key-encryption key, rollover state), modes kept;
//! - `kek/pseudonym.kek`: the key-encryption key, when `store.kek_file` is outside the PKI
//!   directory;
//! - `beffroi.toml`: the configuration file the command was given, for reference;
//! - `manifest.json` ([`manifest::Manifest`]): every file above with its size, SHA-256 and
//!   mode, written last (a directory without it is an unfinished backup).
//!
//! The directory holds the platform's secrets (CA and audit keys, the KEK): store it like
//! them. `restore` checks every file against the manifest, refuses a database that is not
//! empty and PKI files that differ from what is already in place, then loads the database
//! (`pg_restore`, or the SQLite file put in place) and writes the PKI files. The configuration
//! file is not applied: the restored node runs with its own.

mod database;
pub mod manifest;

use std::path::{Path, PathBuf};

use crate::config::PlatformConfig;
use manifest::{Manifest, ManifestEntry};

/// Where the database dump lies in a backup, by backend.
pub use database::Backend;

/// `beffroi backup` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// The directory to write (created; must be empty if it exists).
    #[arg(long)]
    pub out: PathBuf,
}

/// `beffroi restore` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// A directory written by `beffroi backup`.
    #[arg(long)]
    pub from: PathBuf,
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The database refused a statement.
    #[error("database ({what}): {source}")]
    Database {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// `pg_dump` or `pg_restore` could not run or failed.
    #[error("{tool}: {reason}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// What happened (its standard error when it ran).
        reason: String,
    },
    /// The backup directory does not match its manifest, or has none.
    #[error("backup {dir}: {reason}")]
    Manifest {
        /// The backup directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The target of a backup or a restore already holds something.
    #[error("refusing to {action}: {what}")]
    NotEmpty {
        /// `back up` or `restore`.
        action: &'static str,
        /// What is in the way, and what to do.
        what: String,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where the PKI directory's files go in a backup.
const PKI_DIR: &str = "pki";
/// Where a key-encryption key kept outside the PKI directory goes in a backup.
const KEK_DIR: &str = "kek";
/// Where the configuration file goes in a backup.
const CONFIG_FILE: &str = "beffroi.toml";

/// Backs up the platform of `config` (running or not) into `args.out`; `config_file` is the
/// file `config` came from, copied for reference. Returns what to tell the operator.
pub async fn run_backup(
    config: &PlatformConfig,
    config_file: Option<&Path>,
    args: &BackupArgs,
) -> Result<String, BackupError> {
    let out = &args.out;
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(io_error(out))?
            .next()
            .is_some()
    {
        return Err(BackupError::NotEmpty {
            action: "back up",
            what: format!("{} is not empty: give a new directory", out.display()),
        });
    }
    let pki = config.pki_dir();
    if !pki.join("ca.crt").exists() {
        return Err(BackupError::Manifest {
            dir: out.clone(),
            reason: format!(
                "{} holds no CA (ca.crt): is this the platform's configuration?",
                pki.display()
            ),
        });
    }
    manifest::create_private_dir(out)?;
    let backend = Backend::of(&config.database);
    let dump = out.join(backend.dump_file());
    database::dump(&config.database, &dump).await?;
    let mut files = vec![ManifestEntry::of(out, &dump)?];
    files.extend(manifest::copy_tree(&pki, out, Path::new(PKI_DIR))?);
    if !config.kek_file.starts_with(&pki) {
        files.push(manifest::copy_file(
            &config.kek_file,
            out,
            &Path::new(KEK_DIR).join(crate::kek::KEK_FILE),
        )?);
    }
    if let Some(file) = config_file {
        files.push(manifest::copy_file(file, out, Path::new(CONFIG_FILE))?);
    }
    let manifest = Manifest::new(backend, files);
    manifest.write(out)?;
    Ok(format!(
        "backup written to {} ({} files, database {}); it holds the platform's secret keys: \
         store it like them",
        out.display(),
        manifest.files.len(),
        backend.dump_file()
    ))
}

/// Restores the backup in `args.from` into the database and PKI directory of `config`.
/// Returns what to tell the operator.
pub async fn run_restore(
    config: &PlatformConfig,
    args: &RestoreArgs,
) -> Result<String, BackupError> {
    let from = &args.from;
    let manifest = Manifest::read_verified(from)?;
    let backend = Backend::of(&config.database);
    if backend != manifest.database {
        return Err(BackupError::Manifest {
            dir: from.clone(),
            reason: format!(
                "it holds a {} database and `database` is {}: restore into the same kind",
                manifest.database.name(),
                backend.name()
            ),
        });
    }
    // Every check before anything is written.
    database::ensure_empty(&config.database).await?;
    let pki = config.pki_dir();
    let placed: Vec<(PathBuf, &ManifestEntry)> = manifest
        .files
        .iter()
        .filter_map(|entry| {
            if let Ok(rest) = Path::new(&entry.path).strip_prefix(PKI_DIR) {
                Some((pki.join(rest), entry))
            } else if Path::new(&entry.path).starts_with(KEK_DIR) {
                Some((config.kek_file.clone(), entry))
            } else {
                None
            }
        })
        .collect();
    let mut kept = 0;
    for (target, entry) in &placed {
        if manifest::same_content(target, entry)? {
            kept += 1;
        } else if target.exists() {
            return Err(BackupError::NotEmpty {
                action: "restore",
                what: format!(
                    "{} exists and differs from the backup's {}: restore into a fresh PKI \
                     directory",
                    target.display(),
                    entry.path
                ),
            });
        }
    }
    database::restore(&config.database, &from.join(backend.dump_file())).await?;
    for (target, entry) in &placed {
        if !target.exists() {
            manifest::restore_file(from, entry, target)?;
        }
    }
    Ok(format!(
        "restored {} database and {} PKI files ({} already in place) from {}; the backed-up \
         configuration is {} (not applied). Start the platform.",
        backend.name(),
        placed.len() - kept,
        kept,
        from.display(),
        from.join(CONFIG_FILE).display()
    ))
}
