//! `beffroi retention …`: set and list a tenant's retention policies, and apply them now (one
//! round of the task the server runs every `retention.interval_s`).

use std::sync::Arc;

use anyhow::Context as _;
use beffroi_policy::MetricPattern;
use beffroi_protocol::{TenantId, Timestamp};
use beffroi_store::RetentionPolicy;
use beffroi_telemetry::Metrics;
use clap::Subcommand;

use crate::admin::open_store;
use crate::config::PlatformConfig;
use crate::retention::{set_policy, Retention};

/// `beffroi retention` subcommands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Set (create or replace) a tenant's retention for a metric class; recorded in its
    /// audit log first. A duration left out keeps that kind of data (up to
    /// `retention.max_raw_days`).
    Set {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
        /// The metric class: a metric (`air.pm25`), a dotted prefix (`air.*`) or `*`; a
        /// metric follows the most specific class of its tenant.
        #[arg(long)]
        class: MetricPattern,
        /// Days raw readings are kept.
        #[arg(long)]
        raw_days: Option<u32>,
        /// Days stored aggregates are kept (TimescaleDB's continuous aggregates).
        #[arg(long)]
        aggregate_days: Option<u32>,
    },
    /// List a tenant's retention policies.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: TenantId,
    },
    /// Apply every tenant's policies now (or one tenant's) and print what was purged.
    Apply {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

/// Runs a `beffroi retention` command.
pub async fn run(config: PlatformConfig, command: RetentionCommand) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match command {
        RetentionCommand::Set {
            tenant,
            class,
            raw_days,
            aggregate_days,
        } => {
            let policy = RetentionPolicy {
                tenant,
                class,
                raw_days,
                aggregate_days,
                updated_at: Timestamp::now(),
            };
            set_policy(store.as_ref(), &policy).await?;
            println!("retention of {} set for {}", policy.class, policy.tenant);
        }
        RetentionCommand::List { tenant } => {
            for policy in store.retention_policies(&tenant).await? {
                println!(
                    "{}\traw {}\taggregate {}\tset {}",
                    policy.class,
                    days(policy.raw_days),
                    days(policy.aggregate_days),
                    policy.updated_at
                );
            }
        }
        RetentionCommand::Apply { tenant } => {
            let task = Retention::new(
                store.clone(),
                Arc::new(Metrics::default()),
                config.retention.max_raw,
            );
            let report = task
                .round(tenant.as_ref(), Timestamp::now())
                .await
                .context("retention round")?;
            for receipt in &report.receipts {
                let from = receipt
                    .from
                    .map_or_else(|| "-".to_owned(), |t| t.to_string());
                println!(
                    "{}\t{}\t{}\t{} rows\tfrom {}\tto {}{}",
                    receipt.tenant,
                    receipt.class,
                    receipt.kind.as_str(),
                    receipt.rows,
                    from,
                    receipt.to,
                    receipt
                        .note
                        .as_deref()
                        .map_or_else(String::new, |note| format!("\t({note})")),
                );
            }
            if let Some(first) = report.failures.first() {
                anyhow::bail!(
                    "{} purge(s) failed, first {} {} {}: {}",
                    report.failures.len(),
                    first.tenant,
                    first.class,
                    first.kind.as_str(),
                    first.error
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

fn days(days: Option<u32>) -> String {
    days.map_or_else(|| "kept".to_owned(), |d| format!("{d} days"))
}
