//! The export: a tenant's state into a new directory, every file hashed while it is
//! written, then an `export` entry in the tenant's audit log, then the signed manifest.
//!
//! The audit log is exported up to the head read first; the `export` entry comes after that
//! head (its seq is in the manifest), so it is not inside the `audit.jsonl` it describes and
//! two exports of the same state have the same `audit.jsonl`. The manifest is written last,
//! after the `export` entry: a directory without a manifest is not an export (import refuses
//! it), so an export the audit log could not record is never usable.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use beffroi_audit::{AuditActor, AuditHead, AuditKind, NewAuditEntry};
use beffroi_policy::Grantee;
use beffroi_protocol::{key_id_for, TenantId, Timestamp};
use beffroi_store::{AuditFilter, BatchKey, RestoredGateway, Store};
use serde::Serialize;

use super::files::{self, ExportedAgreement};
use super::hashing::{FileDigest, HashingWriter};
use super::manifest::{FileEntry, Manifest, FORMAT, VERSION};
use super::readings::ReadingsWriter;
use super::{ExportError, Progress};
use crate::audit::{public_keys_pem, PlatformAuditKey};

/// Batches read per page.
const BATCH_PAGE: u32 = 500;
/// Audit entries read per page.
const AUDIT_PAGE: u32 = 1000;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    /// The manifest as written.
    pub manifest: Manifest,
}

/// A file being written, hashed on the way.
type Out = HashingWriter<BufWriter<File>>;

fn create(dir: &Path, name: &str) -> Result<Out, ExportError> {
    let path = dir.join(name);
    let file = File::create_new(&path).map_err(ExportError::io(&path))?;
    Ok(HashingWriter::new(BufWriter::with_capacity(
        256 * 1024,
        file,
    )))
}

fn close(dir: &Path, name: &str, out: Out) -> Result<FileDigest, ExportError> {
    let path = dir.join(name);
    let (buffered, digest) = out.finish().map_err(ExportError::io(&path))?;
    let file = buffered
        .into_inner()
        .map_err(|e| ExportError::io(&path)(e.into_error()))?;
    file.sync_all().map_err(ExportError::io(&path))?;
    Ok(digest)
}

/// Writes `value` as pretty JSON with a final newline; `rows` is what the manifest counts.
fn write_json<T: Serialize + ?Sized>(
    dir: &Path,
    name: &str,
    value: &T,
    rows: usize,
    files: &mut Vec<FileEntry>,
) -> Result<(), ExportError> {
    let mut out = create(dir, name)?;
    let path = dir.join(name);
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| ExportError::file(name, e.to_string()))?;
    out.write_all(b"\n").map_err(ExportError::io(&path))?;
    let digest = close(dir, name, out)?;
    files.push(FileEntry::new(name, digest, rows as u64));
    Ok(())
}

/// Refuses an existing non-empty directory; creates it otherwise.
fn prepare(out: &Path) -> Result<(), ExportError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::Refused(format!(
                    "{} is not empty: export into a new or empty directory",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(ExportError::io(out))
        }
        Err(e) => Err(ExportError::io(out)(e)),
    }
}

/// Exports `tenant` from `store` into `out` (a new or empty directory), signs the manifest
/// with `key`, and records the export in the tenant's audit log as `actor`.
pub async fn export_tenant(
    store: &dyn Store,
    key: &PlatformAuditKey,
    tenant: &TenantId,
    out: &Path,
    actor: AuditActor,
    show_progress: bool,
) -> Result<ExportSummary, ExportError> {
    let record = store
        .tenant(tenant)
        .await?
        .ok_or_else(|| ExportError::Refused(format!("tenant {tenant} does not exist")))?;
    prepare(out)?;
    let head = store
        .audit_head(tenant)
        .await?
        .unwrap_or(AuditHead::GENESIS);
    let mut files = Vec::new();
    write_readings(store, tenant, out, &mut files, show_progress).await?;
    write_registry(store, tenant, out, &mut files).await?;
    write_governance(store, tenant, out, &mut files).await?;
    write_audit(store, key, tenant, head, out, &mut files, show_progress).await?;

    let created_at = Timestamp::now();
    let detail = serde_json::json!({
        "directory": out.display().to_string(),
        "audit_head": head,
        "files": files,
    });
    let entry = NewAuditEntry::new(
        tenant.clone(),
        created_at,
        actor,
        AuditKind::Export,
        &detail,
    )
    .map_err(|e| ExportError::Refused(format!("audit entry: {e}")))?;
    let recorded = store.append_audit(&[entry]).await.map_err(|e| {
        ExportError::Refused(format!(
            "the export could not be recorded in the audit log, so no manifest was written \
             ({} is not a usable export): {e}",
            out.display()
        ))
    })?;
    let export_audit_seq = recorded.first().map_or(head.seq + 1, |e| e.seq);
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        tenant: record,
        created_at,
        platform_version: env!("CARGO_PKG_VERSION").to_owned(),
        audit_head: head,
        export_audit_seq,
        files,
        signature: None,
    };
    let text = manifest.clone().signed_text(key.signing_key())?;
    let path = out.join(files::MANIFEST);
    std::fs::write(&path, text).map_err(ExportError::io(&path))?;
    Ok(ExportSummary { manifest })
}

async fn write_readings(
    store: &dyn Store,
    tenant: &TenantId,
    out: &Path,
    files: &mut Vec<FileEntry>,
    show_progress: bool,
) -> Result<(), ExportError> {
    let total = store.reading_count(tenant).await?;
    let mut progress = if show_progress {
        Progress::new("export readings", total)
    } else {
        Progress::hidden("export readings", total)
    };
    let io = |name: &str| ExportError::io(&out.join(name));
    let mut writer = ReadingsWriter::new(
        create(out, files::BATCHES)?,
        create(out, files::READINGS_CSV)?,
        create(out, files::READINGS_SENML)?,
    )
    .map_err(io(files::BATCHES))?;
    let mut after: Option<BatchKey> = None;
    loop {
        let keys = store.batch_keys(tenant, after.as_ref(), BATCH_PAGE).await?;
        for key in &keys {
            let batch = store
                .batch(tenant, &key.gateway, key.seq)
                .await?
                .ok_or_else(|| {
                    ExportError::Refused(format!(
                        "batch {}/{} disappeared during the export (retention?): run it again",
                        key.gateway, key.seq
                    ))
                })?;
            writer.batch(&batch).map_err(io(files::READINGS_CSV))?;
            progress.advance(batch.readings.len() as u64);
        }
        if keys.len() < BATCH_PAGE as usize {
            break;
        }
        after = keys.last().cloned();
    }
    progress.finish();
    let (batches, readings, senml, batch_rows, reading_rows) =
        writer.finish().map_err(io(files::READINGS_SENML))?;
    files.push(FileEntry::new(
        files::BATCHES,
        close(out, files::BATCHES, batches)?,
        batch_rows,
    ));
    files.push(FileEntry::new(
        files::READINGS_CSV,
        close(out, files::READINGS_CSV, readings)?,
        reading_rows,
    ));
    files.push(FileEntry::new(
        files::READINGS_SENML,
        close(out, files::READINGS_SENML, senml)?,
        reading_rows,
    ));
    Ok(())
}

async fn write_registry(
    store: &dyn Store,
    tenant: &TenantId,
    out: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<(), ExportError> {
    let gateways: Vec<RestoredGateway> = store
        .list_gateways(tenant)
        .await?
        .into_iter()
        .map(|g| RestoredGateway {
            id: g.id,
            key_id: g.key_id,
            public_key: g.public_key_hex,
            cert_fingerprint: g.cert_fingerprint,
            cert_not_after: g.cert_not_after,
            revoked: g.revoked,
            revoked_at: g.revoked_at,
            created_at: g.created_at,
            keys: g.keys,
        })
        .collect();
    write_json(out, files::GATEWAYS, &gateways, gateways.len(), files)?;
    let sensors = store.list_sensors(tenant).await?;
    write_json(out, files::SENSORS, &sensors, sensors.len(), files)?;
    let placements = store.sensor_placements(tenant).await?;
    write_json(out, files::PLACEMENTS, &placements, placements.len(), files)?;
    let zones = store.list_zones(tenant).await?;
    let features: Vec<serde_json::Value> = zones
        .iter()
        .map(|z| {
            serde_json::json!({
                "type": "Feature",
                "id": z.id,
                "properties": {"name": z.name},
                "geometry": z.geometry,
            })
        })
        .collect();
    let collection = serde_json::json!({"type": "FeatureCollection", "features": features});
    write_json(out, files::ZONES, &collection, zones.len(), files)?;
    let rules = store.list_alarm_rules(tenant).await?;
    write_json(out, files::ALARM_RULES, &rules, rules.len(), files)?;
    let retention = store.retention_policies(tenant).await?;
    write_json(out, files::RETENTION, &retention, retention.len(), files)?;
    Ok(())
}

async fn write_governance(
    store: &dyn Store,
    tenant: &TenantId,
    out: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<(), ExportError> {
    let mut agreements = Vec::new();
    let mut partners = Vec::new();
    for record in store.list_agreements(tenant).await? {
        let key = store
            .pseudonym_key(tenant, &record.agreement.id)
            .await?
            .is_some();
        if let Grantee::Partner(id) = &record.agreement.grantee {
            if !partners
                .iter()
                .any(|p: &beffroi_store::Partner| &p.id == id)
            {
                let partner = store.partner(id).await?.ok_or_else(|| {
                    ExportError::Refused(format!(
                        "agreement {} names partner {id}, which does not exist",
                        record.agreement.id
                    ))
                })?;
                partners.push(partner);
            }
        }
        agreements.push(ExportedAgreement {
            agreement: record.agreement,
            created_at: record.created_at,
            updated_at: record.updated_at,
            pseudonym_key: key,
        });
    }
    write_json(out, files::AGREEMENTS, &agreements, agreements.len(), files)?;
    let odrl: Vec<serde_json::Value> = agreements
        .iter()
        .map(|a| beffroi_policy::to_odrl(&a.agreement))
        .collect();
    write_json(out, files::AGREEMENTS_ODRL, &odrl, odrl.len(), files)?;
    if !partners.is_empty() {
        partners.sort_by(|a, b| a.id.cmp(&b.id));
        write_json(out, files::PARTNERS, &partners, partners.len(), files)?;
    }
    Ok(())
}

async fn write_audit(
    store: &dyn Store,
    key: &PlatformAuditKey,
    tenant: &TenantId,
    head: AuditHead,
    out: &Path,
    files: &mut Vec<FileEntry>,
    show_progress: bool,
) -> Result<(), ExportError> {
    let path = out.join(files::AUDIT);
    let mut progress = if show_progress {
        Progress::new("export audit entries", head.seq)
    } else {
        Progress::hidden("export audit entries", head.seq)
    };
    let mut log = create(out, files::AUDIT)?;
    let mut after = 0;
    while after < head.seq {
        let page = store
            .audit_entries(tenant, &AuditFilter::default(), after, AUDIT_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in page.iter().filter(|e| e.seq <= head.seq) {
            serde_json::to_writer(&mut log, entry)
                .map_err(|e| ExportError::file(files::AUDIT, e.to_string()))?;
            log.write_all(b"\n").map_err(ExportError::io(&path))?;
            progress.advance(1);
        }
    }
    let rows = progress.done();
    progress.finish();
    if rows != head.seq {
        return Err(ExportError::Refused(format!(
            "the audit log of {tenant} has {rows} entries up to its head at seq {}: run \
             `beffroi audit verify --tenant {tenant}`",
            head.seq
        )));
    }
    files.push(FileEntry::new(
        files::AUDIT,
        close(out, files::AUDIT, log)?,
        rows,
    ));

    let checkpoints: Vec<_> = store
        .audit_checkpoints(tenant)
        .await?
        .into_iter()
        .filter(|cp| cp.seq <= head.seq)
        .collect();
    write_json(
        out,
        files::AUDIT_CHECKPOINTS,
        &checkpoints,
        checkpoints.len(),
        files,
    )?;
    // The trusted keys that signed them, in the instance's order (current first).
    let signers: Vec<_> = key
        .keys()
        .all()
        .into_iter()
        .filter(|k| checkpoints.iter().any(|cp| cp.key_id == key_id_for(k)))
        .collect();
    let pem = public_keys_pem(&signers).map_err(|e| ExportError::file(files::AUDIT_KEYS, e))?;
    let mut keys_file = create(out, files::AUDIT_KEYS)?;
    keys_file
        .write_all(pem.as_bytes())
        .map_err(ExportError::io(&out.join(files::AUDIT_KEYS)))?;
    files.push(FileEntry::new(
        files::AUDIT_KEYS,
        close(out, files::AUDIT_KEYS, keys_file)?,
        signers.len() as u64,
    ));
    Ok(())
}
