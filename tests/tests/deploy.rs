//! The deployment files (issue #10), checked with the validators that run offline: the
//! Kubernetes manifests in `deploy/k8s/` against the Kubernetes API schemas
//! (`kubernetes-validate --strict`, which bundles them), the CloudNativePG `Cluster` against
//! `tests/deploy/cnpg-cluster.schema.json`, the Compose files in `deploy/compose/` against the
//! Compose specification's schema (vendored in `check-jsonschema`), and every YAML file in
//! `deploy/` with `yamllint`. That the platform configurations in `deploy/` parse is checked
//! by `platform/src/config.rs`'s `shipped_examples_are_valid`.
//!
//! The validators come from PyPI (`tests/deploy/requirements.txt`); `tests/run` installs them
//! into `target/deploy-tools` when they are missing (`BEFFROI_DEPLOY_TOOLS` names another
//! virtualenv). Without them these tests fail when `CI` is set and are skipped with a notice
//! otherwise.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context as _;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The validators' `bin/` directory, or `None` (with a notice) when they are not installed
/// and `CI` is not set.
fn tools(test: &str) -> anyhow::Result<Option<PathBuf>> {
    let root = std::env::var_os("BEFFROI_DEPLOY_TOOLS")
        .map_or_else(|| workspace().join("target/deploy-tools"), PathBuf::from);
    let bin = root.join("bin");
    let installed = ["kubernetes-validate", "check-jsonschema", "yamllint"]
        .iter()
        .all(|tool| bin.join(tool).is_file());
    if installed {
        return Ok(Some(bin));
    }
    anyhow::ensure!(
        std::env::var_os("CI").is_none(),
        "{test}: the deployment validators are missing from {}: `tests/run` installs them \
         (pip install -r tests/deploy/requirements.txt into that virtualenv)",
        root.display()
    );
    eprintln!(
        "NOTICE: {test} skipped: no validators in {} (run tests/run, or pip install -r \
         tests/deploy/requirements.txt into that virtualenv)",
        root.display()
    );
    Ok(None)
}

/// Runs `bin/<tool> args…` from the workspace root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(bin.join(tool))
        .args(args)
        .current_dir(workspace())
        .output()
        .with_context(|| format!("running {tool}"))
}

/// Runs the tool and fails with its output unless it succeeds; returns its output.
fn check(bin: &Path, tool: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = run(bin, tool, args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(
        output.status.success(),
        "{tool} {args:?} failed ({}):\n{text}",
        output.status
    );
    Ok(text)
}

/// The `resources:` of `deploy/k8s/kustomization.yaml`, in order.
fn kustomize_resources() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("deploy/k8s/kustomization.yaml")).unwrap();
    text.lines()
        .skip_while(|line| line.trim() != "resources:")
        .skip(1)
        .map_while(|line| line.trim().strip_prefix("- ").map(str::to_owned))
        .collect()
}

/// The Kubernetes manifests with built-in kinds (everything kustomize applies but the
/// CloudNativePG custom resource).
fn core_manifests() -> Vec<String> {
    kustomize_resources()
        .into_iter()
        .filter(|file| file != "database.yaml")
        .map(|file| format!("deploy/k8s/{file}"))
        .collect()
}

#[test]
fn kustomization_applies_every_manifest() {
    let dir = workspace().join("deploy/k8s");
    let mut listed = kustomize_resources();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(listed, present, "deploy/k8s/kustomization.yaml resources");
    assert!(listed.contains(&"database.yaml".to_owned()), "{listed:?}");
    assert!(
        dir.join("beffroi.toml").is_file(),
        "the configMapGenerator's file"
    );
}

#[test]
fn kubernetes_manifests_match_the_api_schemas() -> anyhow::Result<()> {
    let Some(bin) = tools("kubernetes_manifests_match_the_api_schemas")? else {
        return Ok(());
    };
    let manifests = core_manifests();
    let mut args = vec!["--strict"];
    args.extend(manifests.iter().map(String::as_str));
    let report = check(&bin, "kubernetes-validate", &args)?;
    // A kind or apiVersion without a schema is only a warning: fail on it here.
    assert!(!report.contains("WARN"), "{report}");
    for kind in [
        "deployment/beffroi",
        "service/beffroi-gate",
        "service/beffroi-api",
        "poddisruptionbudget/beffroi",
        "statefulset/emqx",
        "poddisruptionbudget/emqx",
        "networkpolicy/emqx",
        "ingress/beffroi-api",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind} ")),
            "{kind}: {report}"
        );
    }
    Ok(())
}

#[test]
fn a_broken_manifest_is_refused() -> anyhow::Result<()> {
    let Some(bin) = tools("a_broken_manifest_is_refused")? else {
        return Ok(());
    };
    let text = std::fs::read_to_string(workspace().join("deploy/k8s/platform.yaml"))?;
    let broken = text.replacen("  replicas: 3\n", "  replica: 3\n", 1);
    assert_ne!(broken, text, "platform.yaml has `replicas: 3`");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("platform.yaml");
    std::fs::write(&path, broken)?;
    let output = run(
        &bin,
        "kubernetes-validate",
        &["--strict", path.to_str().unwrap()],
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("'replica' was unexpected"), "{stdout}");
    Ok(())
}

#[test]
fn cloudnativepg_cluster_has_its_shape() -> anyhow::Result<()> {
    let Some(bin) = tools("cloudnativepg_cluster_has_its_shape")? else {
        return Ok(());
    };
    let schema = "tests/deploy/cnpg-cluster.schema.json";
    check(&bin, "check-jsonschema", &["--check-metaschema", schema])?;
    check(
        &bin,
        "check-jsonschema",
        &["--schemafile", schema, "deploy/k8s/database.yaml"],
    )?;
    Ok(())
}

#[test]
fn compose_files_match_the_compose_spec() -> anyhow::Result<()> {
    let Some(bin) = tools("compose_files_match_the_compose_spec")? else {
        return Ok(());
    };
    check(
        &bin,
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            "deploy/compose/compose.yaml",
            "deploy/compose/compose.external-broker.yaml",
        ],
    )?;
    Ok(())
}

#[test]
fn deployment_yaml_is_lint_clean() -> anyhow::Result<()> {
    let Some(bin) = tools("deployment_yaml_is_lint_clean")? else {
        return Ok(());
    };
    check(
        &bin,
        "yamllint",
        &["--strict", "-c", "tests/deploy/yamllint.yaml", "deploy"],
    )?;
    Ok(())
}
