//! `beffroi export` and `beffroi import`: open the instance's store and audit key as the
//! other admin commands do, run the library function, print a summary.

use std::path::PathBuf;

use anyhow::Context as _;
use beffroi_protocol::{TenantId, VerifyingKey};

use crate::admin::{local_operator, open_store};
use crate::audit::{read_public_keys, PlatformAuditKey};
use crate::config::PlatformConfig;
use crate::export::{export_tenant, import_tenant};

/// `beffroi export` arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The tenant to export.
    #[arg(long)]
    pub tenant: TenantId,
    /// The directory to write (created; refused if it exists and is not empty).
    #[arg(long)]
    pub out: PathBuf,
    /// No progress line on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// `beffroi import` arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The export directory (as `beffroi export` wrote it).
    #[arg(long)]
    pub dir: PathBuf,
    /// Also trust the audit public keys in this PEM file for the manifest's signature (the
    /// source instance's `beffroi audit public-key --all`); this instance's own audit keys
    /// are always trusted.
    #[arg(long)]
    pub trust_key: Vec<PathBuf>,
    /// No progress line on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `beffroi export`.
pub async fn run_export(config: PlatformConfig, args: ExportArgs) -> anyhow::Result<()> {
    let key = PlatformAuditKey::load_or_create(&config.pki_dir()).context("audit key")?;
    let store = open_store(&config).await?;
    let result = export_tenant(
        store.as_ref(),
        &key,
        &args.tenant,
        &args.out,
        local_operator(),
        !args.quiet,
    )
    .await;
    store.close().await;
    let summary = result.context("export")?;
    let manifest = &summary.manifest;
    for file in &manifest.files {
        println!(
            "{}\t{} rows\t{} bytes\t{}",
            file.path, file.rows, file.bytes, file.sha256
        );
    }
    println!(
        "tenant {} exported to {} (audit log up to seq {}; the export is entry {})",
        manifest.tenant.id,
        args.out.display(),
        manifest.audit_head.seq,
        manifest.export_audit_seq
    );
    Ok(())
}

/// Runs `beffroi import`.
pub async fn run_import(config: PlatformConfig, args: ImportArgs) -> anyhow::Result<()> {
    let mut extra: Vec<VerifyingKey> = Vec::new();
    for path in &args.trust_key {
        extra.extend(read_public_keys(path).context("--trust-key")?);
    }
    let store = open_store(&config).await?;
    let result = import_tenant(
        store.as_ref(),
        &config.pki_dir(),
        &args.dir,
        &extra,
        local_operator(),
        !args.quiet,
    )
    .await;
    store.close().await;
    let summary = result.context("import")?;
    println!(
        "tenant {} imported: {} batches, {} readings, {} audit entries, {} checkpoints; {} \
         agreements got a new pseudonym key (their pseudonyms change); the import is audit \
         entry {}",
        summary.tenant,
        summary.batches,
        summary.readings,
        summary.audit_entries,
        summary.checkpoints,
        summary.pseudonym_keys,
        summary.import_audit_seq
    );
    Ok(())
}
