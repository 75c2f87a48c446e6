//! The import: verify an export directory completely, then restore its tenant.
//!
//! 1. **Verify, writing nothing**: the manifest's signature (by a key this instance trusts,
//!    or one given with `--trust-key`); that the directory holds exactly the manifest's
//!    files; every file's size, SHA-256 and rows, while decoding it in full (readings and
//!    audit entries streamed); the audit log against its checkpoints and the keys in
//!    `audit-keys.pem`, up to the head the manifest names; that the tenant does not exist here.
//! 2. **Restore**: the tenant with its registry, rules, agreements (fresh pseudonym keys)
//!    and retention in one transaction (`Store::restore_tenant`); missing partners; the audit
//!    entries verbatim in pages (`Store::import_audit`) and the checkpoints; the checkpoint
//!    keys added to this instance's trusted audit keys; the readings, batch by batch, in
//!    group commits; last, an `import` entry in the tenant's audit log.
//!
//! If step 2 stops half way (a crash, a full disk), the tenant exists with part of its
//! data; see `docs/export.md` for what to do.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use beffroi_audit::{
    AuditActor, AuditEntry, AuditHead, AuditKind, Checkpoint, NewAuditEntry, Verifier,
};
use beffroi_protocol::{TenantId, Timestamp, VerifyingKey};
use beffroi_store::{
    AlarmRule, CommitBatch, Partner, Placement, RestoredAgreement, RestoredGateway,
    RetentionPolicy, Sensor, Store, TenantRestore, Zone,
};
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use super::files::{self, ExportedAgreement};
use super::hashing::{FileDigest, HashingReader};
use super::manifest::{FileEntry, Manifest};
use super::readings::BatchReader;
use super::{ExportError, Progress};
use crate::audit::{read_public_keys, PlatformAuditKey};

/// Audit entries written per transaction.
const AUDIT_PAGE: usize = 1000;
/// Readings per group commit (whole batches; a batch larger than this is committed alone).
const COMMIT_READINGS: usize = 20_000;

/// What an import restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The tenant.
    pub tenant: TenantId,
    /// Batches committed.
    pub batches: u64,
    /// Readings committed.
    pub readings: u64,
    /// Audit entries imported (before the `import` entry).
    pub audit_entries: u64,
    /// Checkpoints imported.
    pub checkpoints: u64,
    /// Agreements given a new pseudonym key.
    pub pseudonym_keys: u64,
    /// The seq of the `import` entry.
    pub import_audit_seq: u64,
}

/// The small files, decoded and verified.
struct Verified {
    manifest: Manifest,
    manifest_sha256: String,
    gateways: Vec<RestoredGateway>,
    sensors: Vec<Sensor>,
    placements: Vec<Placement>,
    zones: Vec<Zone>,
    alarm_rules: Vec<AlarmRule>,
    retention: Vec<RetentionPolicy>,
    agreements: Vec<ExportedAgreement>,
    partners: Vec<Partner>,
    checkpoints: Vec<Checkpoint>,
    checkpoint_keys: Vec<VerifyingKey>,
}

/// Imports the export in `dir` into `store`, trusting the audit keys of `pki_dir` and
/// `extra_keys` for the manifest's signature; the `import` entry names `actor`.
pub async fn import_tenant(
    store: &dyn Store,
    pki_dir: &Path,
    dir: &Path,
    extra_keys: &[VerifyingKey],
    actor: AuditActor,
    show_progress: bool,
) -> Result<ImportSummary, ExportError> {
    let instance_key = PlatformAuditKey::load_or_create(pki_dir)?;
    let mut trusted = instance_key.keys().all();
    trusted.extend_from_slice(extra_keys);
    let verified = verify(dir, &trusted)?;
    let tenant = verified.manifest.tenant.id.clone();
    if store.tenant(&tenant).await?.is_some() {
        return Err(ExportError::Refused(format!(
            "tenant {tenant} already exists on this instance: import restores a tenant into an \
             instance that does not have it; nothing was written"
        )));
    }
    stream_files(dir, &verified, show_progress, None)
        .await
        .map_err(|e| explain(dir, &verified.manifest, e))?;

    let mut pseudonym_keys = 0;
    let mut agreements = Vec::with_capacity(verified.agreements.len());
    for exported in &verified.agreements {
        let pseudonym_key = if exported.pseudonym_key {
            pseudonym_keys += 1;
            Some(fresh_key()?)
        } else {
            None
        };
        agreements.push(RestoredAgreement {
            agreement: exported.agreement.clone(),
            created_at: exported.created_at,
            updated_at: exported.updated_at,
            pseudonym_key,
        });
    }
    store
        .restore_tenant(&TenantRestore {
            tenant: verified.manifest.tenant.clone(),
            gateways: verified.gateways.clone(),
            sensors: verified.sensors.clone(),
            placements: verified.placements.clone(),
            zones: verified.zones.clone(),
            alarm_rules: verified.alarm_rules.clone(),
            agreements,
            retention: verified.retention.clone(),
            restored_at: Timestamp::now(),
        })
        .await?;
    for partner in &verified.partners {
        if store.partner(&partner.id).await?.is_none() {
            store.create_partner(partner).await?;
        }
    }
    let (_, batches, readings) = stream_files(dir, &verified, show_progress, Some(store))
        .await
        .map_err(|e| explain(dir, &verified.manifest, e))?;
    for checkpoint in &verified.checkpoints {
        store.store_checkpoint(checkpoint).await?;
    }
    PlatformAuditKey::trust(pki_dir, &verified.checkpoint_keys)?;

    let manifest = &verified.manifest;
    let detail = serde_json::json!({
        "directory": dir.display().to_string(),
        "manifest_sha256": verified.manifest_sha256,
        "source_created_at": manifest.created_at,
        "source_platform_version": manifest.platform_version,
        "source_export_audit_seq": manifest.export_audit_seq,
        "audit_head": manifest.audit_head,
        "batches": batches,
        "readings": readings,
        "checkpoints": verified.checkpoints.len(),
        "pseudonym_keys_regenerated": pseudonym_keys,
    });
    let entry = NewAuditEntry::new(
        tenant.clone(),
        Timestamp::now(),
        actor,
        AuditKind::Import,
        &detail,
    )
    .map_err(|e| ExportError::Refused(format!("audit entry: {e}")))?;
    let recorded = store.append_audit(&[entry]).await?;
    Ok(ImportSummary {
        tenant,
        batches,
        readings,
        audit_entries: manifest.audit_head.seq,
        checkpoints: verified.checkpoints.len() as u64,
        pseudonym_keys,
        import_audit_seq: recorded.first().map_or(0, |e| e.seq),
    })
}

fn fresh_key() -> Result<[u8; 32], ExportError> {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key)
        .map_err(|e| ExportError::Refused(format!("random number generator: {e}")))?;
    Ok(key)
}

/// The manifest entry of `name`, or an error naming the file.
fn entry<'a>(manifest: &'a Manifest, name: &str) -> Result<&'a FileEntry, ExportError> {
    manifest
        .file(name)
        .ok_or_else(|| ExportError::file(name, "not listed in manifest.json"))
}

/// Compares what was read of `name` with its manifest entry.
fn check(entry: &FileEntry, digest: FileDigest, rows: u64) -> Result<(), ExportError> {
    if digest.bytes != entry.bytes || digest.sha256_hex() != entry.sha256 {
        return Err(ExportError::file(
            &entry.path,
            format!(
                "does not match manifest.json ({} bytes, SHA-256 {}; the manifest says {} \
                 bytes, {}): the file was altered or truncated",
                digest.bytes,
                digest.sha256_hex(),
                entry.bytes,
                entry.sha256
            ),
        ));
    }
    if rows != entry.rows {
        return Err(ExportError::file(
            &entry.path,
            format!("{rows} rows, the manifest says {}", entry.rows),
        ));
    }
    Ok(())
}

/// Reads a small file whole and checks its size and hash (its rows are checked by the
/// caller once decoded).
fn read_checked(dir: &Path, entry: &FileEntry) -> Result<Vec<u8>, ExportError> {
    let path = dir.join(&entry.path);
    let bytes = std::fs::read(&path).map_err(ExportError::io(&path))?;
    let digest = FileDigest {
        bytes: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    };
    check(entry, digest, entry.rows)?;
    Ok(bytes)
}

/// Decodes a JSON array file and checks its rows.
fn json_rows<T: DeserializeOwned>(
    dir: &Path,
    manifest: &Manifest,
    name: &str,
) -> Result<Vec<T>, ExportError> {
    let entry = entry(manifest, name)?;
    let bytes = read_checked(dir, entry)?;
    let rows: Vec<T> =
        serde_json::from_slice(&bytes).map_err(|e| ExportError::file(name, e.to_string()))?;
    check_rows(entry, rows.len())?;
    Ok(rows)
}

fn check_rows(entry: &FileEntry, rows: usize) -> Result<(), ExportError> {
    if rows as u64 != entry.rows {
        return Err(ExportError::file(
            &entry.path,
            format!("{rows} rows, the manifest says {}", entry.rows),
        ));
    }
    Ok(())
}

/// Step 1 for the manifest and the small files; the large ones are checked by
/// [`stream_files`].
fn verify(dir: &Path, trusted: &[VerifyingKey]) -> Result<Verified, ExportError> {
    let manifest_path = dir.join(files::MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ExportError::file(
                files::MANIFEST,
                format!(
                    "not found in {}: not an export (or an unfinished one)",
                    dir.display()
                ),
            )
        } else {
            ExportError::io(&manifest_path)(e)
        }
    })?;
    let (manifest, _signer) = Manifest::verify(&text, trusted)?;
    check_listing(dir, &manifest)?;
    let tenant = &manifest.tenant.id;

    let zones_entry = entry(&manifest, files::ZONES)?;
    let zones_doc: serde_json::Value = serde_json::from_slice(&read_checked(dir, zones_entry)?)
        .map_err(|e| ExportError::file(files::ZONES, e.to_string()))?;
    let zones = zones_from_geojson(tenant, &zones_doc)?;
    check_rows(zones_entry, zones.len())?;

    let odrl: Vec<serde_json::Value> = json_rows(dir, &manifest, files::AGREEMENTS_ODRL)?;
    let agreements: Vec<ExportedAgreement> = json_rows(dir, &manifest, files::AGREEMENTS)?;
    if odrl.len() != agreements.len() {
        return Err(ExportError::file(
            files::AGREEMENTS_ODRL,
            format!(
                "{} policies for {} agreements",
                odrl.len(),
                agreements.len()
            ),
        ));
    }
    let partners = if manifest.file(files::PARTNERS).is_some() {
        json_rows(dir, &manifest, files::PARTNERS)?
    } else {
        Vec::new()
    };
    let keys_entry = entry(&manifest, files::AUDIT_KEYS)?;
    read_checked(dir, keys_entry)?;
    let checkpoint_keys = if keys_entry.rows == 0 {
        Vec::new()
    } else {
        read_public_keys(&dir.join(files::AUDIT_KEYS))
            .map_err(|e| ExportError::file(files::AUDIT_KEYS, e.to_string()))?
    };
    check_rows(keys_entry, checkpoint_keys.len())?;
    let readings_rows = entry(&manifest, files::READINGS_CSV)?.rows;
    if entry(&manifest, files::READINGS_SENML)?.rows != readings_rows {
        return Err(ExportError::file(
            files::READINGS_SENML,
            format!(
                "the manifest counts another number of rows than for {}",
                files::READINGS_CSV
            ),
        ));
    }
    let sensors: Vec<Sensor> = json_rows(dir, &manifest, files::SENSORS)?;
    let placements = match manifest.file(files::PLACEMENTS) {
        Some(_) => json_rows(dir, &manifest, files::PLACEMENTS)?,
        None => placed_since_epoch(&sensors),
    };
    Ok(Verified {
        manifest_sha256: hex::encode(Sha256::digest(text.as_bytes())),
        gateways: json_rows(dir, &manifest, files::GATEWAYS)?,
        sensors,
        placements,
        zones,
        alarm_rules: json_rows(dir, &manifest, files::ALARM_RULES)?,
        retention: json_rows(dir, &manifest, files::RETENTION)?,
        agreements,
        partners,
        checkpoints: json_rows(dir, &manifest, files::AUDIT_CHECKPOINTS)?,
        checkpoint_keys,
        manifest,
    })
}

/// The directory holds the manifest and exactly the files it lists, each a known one, and
/// every file an export always has.
fn check_listing(dir: &Path, manifest: &Manifest) -> Result<(), ExportError> {
    for (i, file) in manifest.files.iter().enumerate() {
        if !files::DATA_FILES.contains(&file.path.as_str()) {
            return Err(ExportError::file(
                files::MANIFEST,
                format!("lists {:?}, which is not a file of an export", file.path),
            ));
        }
        if manifest.files[..i].iter().any(|f| f.path == file.path) {
            return Err(ExportError::file(
                files::MANIFEST,
                format!("lists {} twice", file.path),
            ));
        }
    }
    for name in files::DATA_FILES {
        if !files::OPTIONAL.contains(&name) {
            entry(manifest, name)?;
        }
    }
    let listing = std::fs::read_dir(dir).map_err(ExportError::io(dir))?;
    for item in listing {
        let item = item.map_err(ExportError::io(dir))?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name != files::MANIFEST && manifest.file(&name).is_none() {
            return Err(ExportError::file(
                &name,
                "not listed in manifest.json: the directory holds more than the export",
            ));
        }
    }
    Ok(())
}

/// The placements of an export made before moves were kept: each sensor with a position
/// stood there since the epoch (what the store's migration assumes of such sensors).
fn placed_since_epoch(sensors: &[Sensor]) -> Vec<Placement> {
    sensors
        .iter()
        .filter(|s| s.lat.is_some() && s.lon.is_some())
        .map(|s| Placement {
            tenant: s.tenant.clone(),
            sensor: s.id.clone(),
            since: Timestamp::from_unix_micros(0),
            lat: s.lat,
            lon: s.lon,
        })
        .collect()
}

/// Zones from the GeoJSON FeatureCollection of `zones.geojson`.
fn zones_from_geojson(
    tenant: &TenantId,
    doc: &serde_json::Value,
) -> Result<Vec<Zone>, ExportError> {
    let bad = |reason: String| ExportError::file(files::ZONES, reason);
    if doc.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection") {
        return Err(bad("not a GeoJSON FeatureCollection".into()));
    }
    let features = doc
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or_else(|| bad("no features array".into()))?;
    features
        .iter()
        .enumerate()
        .map(|(i, feature)| {
            let id = feature
                .get("id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad(format!("feature {i}: no string id")))?;
            let name = feature
                .pointer("/properties/name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad(format!("feature {i}: no properties.name")))?;
            let geometry = feature
                .get("geometry")
                .cloned()
                .ok_or_else(|| bad(format!("feature {i}: no geometry")))?;
            Ok(Zone {
                tenant: tenant.clone(),
                id: beffroi_store::ZoneId::new(id).map_err(|e| bad(format!("feature {i}: {e}")))?,
                name: name.to_owned(),
                geometry,
            })
        })
        .collect()
}

/// A file that does not decode was most likely altered: if it no longer matches the
/// manifest, says that (the clearer message) instead of the decoding error.
fn explain(dir: &Path, manifest: &Manifest, error: ExportError) -> ExportError {
    let ExportError::File { file, .. } = &error else {
        return error;
    };
    let Ok(entry) = entry(manifest, file) else {
        return error;
    };
    match File::open(dir.join(file)).and_then(|f| HashingReader::new(f).finish()) {
        Ok(digest) => check(entry, digest, entry.rows).err().unwrap_or(error),
        Err(_) => error,
    }
}

fn open(dir: &Path, name: &str) -> Result<BufReader<HashingReader<File>>, ExportError> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(ExportError::io(&path))?;
    Ok(BufReader::with_capacity(
        256 * 1024,
        HashingReader::new(file),
    ))
}

fn finish(
    dir: &Path,
    reader: BufReader<HashingReader<File>>,
    name: &str,
) -> Result<FileDigest, ExportError> {
    reader
        .into_inner()
        .finish()
        .map_err(ExportError::io(&dir.join(name)))
}

/// Reads the large files — `audit.jsonl`, `batches.csv` with `readings.csv`, and
/// `readings.senml.json` — decoding and hashing them. Without `store` (step 1) it checks
/// the audit log and every file against the manifest; with it (step 2) it also writes the
/// audit entries and the batches, and checks again that nothing changed meanwhile. Returns
/// the audit head and the batches and readings read.
async fn stream_files(
    dir: &Path,
    verified: &Verified,
    show_progress: bool,
    store: Option<&dyn Store>,
) -> Result<(AuditHead, u64, u64), ExportError> {
    let manifest = &verified.manifest;
    let tenant = &manifest.tenant.id;
    let head = stream_audit(dir, verified, store).await?;

    let total = entry(manifest, files::READINGS_CSV)?.rows;
    let what = if store.is_some() {
        "import readings"
    } else {
        "verify readings"
    };
    let mut progress = if show_progress {
        Progress::new(what, total)
    } else {
        Progress::hidden(what, total)
    };
    let mut reader = BatchReader::new(
        tenant.clone(),
        open(dir, files::BATCHES)?,
        open(dir, files::READINGS_CSV)?,
    )?;
    let mut group: Vec<CommitBatch> = Vec::new();
    let mut in_group = 0;
    while let Some(batch) = reader.next_batch()? {
        in_group += batch.readings.len();
        progress.advance(batch.readings.len() as u64);
        if let Some(store) = store {
            group.push(batch);
            if in_group >= COMMIT_READINGS {
                store.commit(&group).await?;
                group.clear();
                in_group = 0;
            }
        }
    }
    if let (Some(store), false) = (store, group.is_empty()) {
        store.commit(&group).await?;
    }
    progress.finish();
    let (batch_rows, reading_rows) = reader.rows();
    let (batches, readings) = reader.into_inner();
    check(
        entry(manifest, files::BATCHES)?,
        finish(dir, batches, files::BATCHES)?,
        batch_rows,
    )?;
    check(
        entry(manifest, files::READINGS_CSV)?,
        finish(dir, readings, files::READINGS_CSV)?,
        reading_rows,
    )?;
    if store.is_none() {
        let senml = entry(manifest, files::READINGS_SENML)?;
        check(
            senml,
            finish(
                dir,
                open(dir, files::READINGS_SENML)?,
                files::READINGS_SENML,
            )?,
            senml.rows,
        )?;
    }
    Ok((head, batch_rows, reading_rows))
}

/// Reads `audit.jsonl`: step 1 verifies the chain against the checkpoints and keys of the
/// export and that it ends at the manifest's head; step 2 appends the entries verbatim.
async fn stream_audit(
    dir: &Path,
    verified: &Verified,
    store: Option<&dyn Store>,
) -> Result<AuditHead, ExportError> {
    let manifest = &verified.manifest;
    let tenant = &manifest.tenant.id;
    let mut verifier = Verifier::new(
        tenant.clone(),
        AuditHead::GENESIS,
        &verified.checkpoints,
        &verified.checkpoint_keys,
    );
    let mut reader = open(dir, files::AUDIT)?;
    let mut line = String::new();
    let mut page: Vec<AuditEntry> = Vec::new();
    let mut rows = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| ExportError::file(files::AUDIT, format!("line {}: {e}", rows + 1)))?;
        if read == 0 {
            break;
        }
        rows += 1;
        let entry: AuditEntry = serde_json::from_str(line.trim_end_matches('\n'))
            .map_err(|e| ExportError::file(files::AUDIT, format!("line {rows}: {e}")))?;
        verifier.push(&entry);
        if let Some(store) = store {
            page.push(entry);
            if page.len() >= AUDIT_PAGE {
                store.import_audit(tenant, &page).await?;
                page.clear();
            }
        }
    }
    if let (Some(store), false) = (store, page.is_empty()) {
        store.import_audit(tenant, &page).await?;
    }
    check(
        entry(manifest, files::AUDIT)?,
        finish(dir, reader, files::AUDIT)?,
        rows,
    )?;
    let report = verifier.finish();
    if let Some(seq) = report.first_bad_seq {
        let what = report
            .problems
            .iter()
            .find(|p| p.seq() == seq)
            .map_or("problem", |p| p.label());
        return Err(ExportError::file(
            files::AUDIT,
            format!("the audit log does not verify: first problem at seq {seq} ({what})"),
        ));
    }
    if report.head != manifest.audit_head {
        return Err(ExportError::file(
            files::AUDIT,
            format!(
                "ends at seq {} ({}), the manifest says seq {} ({})",
                report.head.seq,
                report.head.hash,
                manifest.audit_head.seq,
                manifest.audit_head.hash
            ),
        ));
    }
    Ok(report.head)
}
