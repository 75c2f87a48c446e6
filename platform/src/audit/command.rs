//! `beffroi audit …`: verify a tenant's log, run a checkpoint round, print or rotate the
//! platform's audit key.
//!
//! Exit codes: 0 when all is well; 1 when a log has problems (`verify`, or `checkpoint`
//! finding a damaged log), each named with its seq and kind; 2 when the command could not do
//! its work (configuration, database, key files).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use beffroi_api::audit::{anchor_at_or_below, check_log, LogCheck};
use beffroi_audit::AuditHead;
use beffroi_protocol::{TenantId, VerifyingKey};
use beffroi_telemetry::Metrics;
use clap::Subcommand;

use crate::admin::open_store;
use crate::audit::{
    public_keys_pem, read_public_keys, Checkpointer, PlatformAuditKey, TenantOutcome,
    PUBLIC_KEYS_FILE,
};
use crate::config::PlatformConfig;

/// `beffroi audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a tenant's audit log (chain, checkpoints, signatures) and print who accessed
    /// what, when, under which agreement. Exit 0: intact; 1: problems (listed by seq);
    /// 2: could not verify.
    Verify {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check only from the last valid checkpoint at or below this seq.
        #[arg(long)]
        since_seq: Option<u64>,
        /// Trusted public keys (PEM file) instead of `<data_dir>/pki/audit-keys.pem`.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Run one checkpoint round now: verify and sign the head of every tenant's log that
    /// moved (the server does it every `audit.checkpoint_interval_s`).
    Checkpoint,
    /// Print the platform's audit public key (SubjectPublicKeyInfo PEM, after its key id),
    /// to verify checkpoints offline.
    PublicKey {
        /// Also the retired keys (what `--keys` of `verify` wants).
        #[arg(long)]
        all: bool,
        /// The 32 key bytes in hex instead of PEM, one `key_id hex` line per key.
        #[arg(long)]
        hex: bool,
    },
    /// Make a new audit signing key current; the old public key stays trusted, so older
    /// checkpoints stay verifiable. Restart the platform (every node, with the new
    /// `pki/audit.key` and `pki/audit-keys.pem`) afterwards.
    RotateKey,
}

/// Why an audit command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A log has problems (exit code 1).
    #[error("{0}")]
    Tampered(String),
    /// The command could not do its work (exit code 2).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CommandError {
    /// The process exit code: 1 for a damaged log, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Tampered(_) => 1,
            CommandError::Failed(_) => 2,
        }
    }
}

/// Runs `command` with `config` (its loading error is reported with exit code 2).
pub async fn run(
    config: anyhow::Result<PlatformConfig>,
    command: AuditCommand,
) -> Result<(), CommandError> {
    let config = config?;
    match command {
        AuditCommand::Verify {
            tenant,
            json,
            since_seq,
            keys,
        } => verify(&config, &tenant, json, since_seq, keys).await,
        AuditCommand::Checkpoint => checkpoint(&config).await,
        AuditCommand::PublicKey { all, hex } => public_key(&config, all, hex),
        AuditCommand::RotateKey => {
            let old = PlatformAuditKey::load_or_create(&config.pki_dir())
                .context("audit key")?
                .key_id();
            let new = PlatformAuditKey::rotate(&config.pki_dir()).context("audit key rotation")?;
            println!(
                "audit key rotated: {old} retired (still trusted), {} current",
                new.key_id()
            );
            println!("restart the platform so that it signs with the new key");
            Ok(())
        }
    }
}

async fn verify(
    config: &PlatformConfig,
    tenant: &TenantId,
    json: bool,
    since_seq: Option<u64>,
    keys: Option<PathBuf>,
) -> Result<(), CommandError> {
    let keys_path = keys.unwrap_or_else(|| config.pki_dir().join(PUBLIC_KEYS_FILE));
    let keys: Vec<VerifyingKey> = read_public_keys(&keys_path).context("trusted audit keys")?;
    let store = open_store(config).await.context("store")?;
    if store.tenant(tenant).await.context("store")?.is_none() {
        return Err(anyhow::anyhow!("tenant {tenant} does not exist").into());
    }
    let checkpoints = store
        .audit_checkpoints(tenant)
        .await
        .context("reading checkpoints")?;
    let anchor = since_seq.map_or(AuditHead::GENESIS, |seq| {
        anchor_at_or_below(&checkpoints, seq, &keys)
    });
    let check = check_log(store.as_ref(), tenant, anchor, &checkpoints, &keys)
        .await
        .context("reading the audit log")?;
    store.close().await;
    if json {
        let text = serde_json::to_string_pretty(&check).context("report")?;
        println!("{text}");
    } else {
        if anchor.seq > 0 {
            println!("verified from the checkpoint at seq {}", anchor.seq);
        }
        print!("{check}");
    }
    match problem_summary(&check) {
        None => Ok(()),
        Some(summary) => Err(CommandError::Tampered(format!(
            "the audit log of tenant {tenant} has problems: {summary}"
        ))),
    }
}

/// `first problem at seq N (kind)`, or `None` for an intact log.
fn problem_summary(check: &LogCheck) -> Option<String> {
    let seq = check.first_bad_seq()?;
    let kind = check
        .report
        .problems
        .iter()
        .find(|p| p.seq() == seq)
        .map(|p| p.label())
        .or_else(|| {
            check
                .unreadable
                .iter()
                .any(|u| u.seq == seq)
                .then_some("unreadable")
        })
        .unwrap_or("problem");
    Some(format!("the first at seq {seq} ({kind})"))
}

async fn checkpoint(config: &PlatformConfig) -> Result<(), CommandError> {
    let key = PlatformAuditKey::load_or_create(&config.pki_dir()).context("audit key")?;
    let store = open_store(config).await.context("store")?;
    let checkpointer = Checkpointer::new(
        store.clone(),
        Arc::new(key),
        Arc::new(Metrics::default()),
        None,
    );
    let outcomes = checkpointer.round().await.context("checkpoint round")?;
    store.close().await;
    let (mut tampered, mut failed) = (Vec::new(), 0);
    for (tenant, outcome) in outcomes {
        match outcome {
            TenantOutcome::Unchanged { seq } => println!("{tenant}\tunchanged at seq {seq}"),
            TenantOutcome::Signed { seq } => println!("{tenant}\tcheckpoint signed at seq {seq}"),
            TenantOutcome::AlreadySigned { seq } => {
                println!("{tenant}\tcheckpoint at seq {seq} already stored by another node");
            }
            TenantOutcome::Tampered {
                first_bad_seq,
                report,
            } => {
                println!("{tenant}\tTAMPERED from seq {first_bad_seq}: nothing signed\n{report}");
                tampered.push(format!("{tenant} (seq {first_bad_seq})"));
            }
            TenantOutcome::Failed { error } => {
                println!("{tenant}\tfailed: {error}");
                failed += 1;
            }
        }
    }
    if !tampered.is_empty() {
        return Err(CommandError::Tampered(format!(
            "damaged audit logs, not checkpointed: {}",
            tampered.join(", ")
        )));
    }
    if failed > 0 {
        return Err(anyhow::anyhow!("{failed} tenants could not be checkpointed").into());
    }
    Ok(())
}

fn public_key(config: &PlatformConfig, all: bool, hex: bool) -> Result<(), CommandError> {
    let key = PlatformAuditKey::load_or_create(&config.pki_dir()).context("audit key")?;
    let keys = if all {
        key.keys().all()
    } else {
        vec![*key.keys().current()]
    };
    if hex {
        for k in &keys {
            println!(
                "{} {}",
                beffroi_protocol::key_id_for(k),
                ::hex::encode(k.as_bytes())
            );
        }
    } else {
        print!("{}", public_keys_pem(&keys).map_err(anyhow::Error::msg)?);
    }
    Ok(())
}
