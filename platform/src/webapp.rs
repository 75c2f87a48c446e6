//! The dashboard web app for the demo: found in the source tree (`dashboards/`) and built with
//! npm when its build is missing or older than its sources, so that the README's one demo
//! command shows the dashboard with no extra step.
//!
//! Production installs point `[dashboard] dir` at a built copy instead (packages and
//! container images build it once); the platform never runs npm itself outside the demo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context as _;

/// The `dashboards/` directory of the source tree this binary was built from.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// The built app (`dist/`) of the app in `dir`, building it first when needed.
pub fn ensure_built(dir: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        dir.join("package.json").is_file(),
        "{} holds no package.json",
        dir.display()
    );
    let dist = dir.join("dist");
    let built = modified(&dist.join("index.html"));
    let sources = newest(dir)?;
    if built.is_some_and(|built| built >= sources) {
        return Ok(dist);
    }
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let lock = modified(&dir.join("package-lock.json"));
    if installed.is_none() || installed < lock {
        println!("installing the dashboard's npm packages (npm ci)…");
        npm(dir, &["ci", "--no-audit", "--no-fund"])?;
    }
    println!("building the dashboard (npm run build)…");
    npm(dir, &["run", "build"])?;
    anyhow::ensure!(
        dist.join("index.html").is_file(),
        "npm run build made no {}",
        dist.join("index.html").display()
    );
    Ok(dist)
}

fn npm(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .status()
        .context("cannot run npm: install Node.js 20 or later (with npm) to build the dashboard")?;
    anyhow::ensure!(status.success(), "npm {} failed ({status})", args.join(" "));
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the app's sources: `src/`, `public/`, and the files
/// at its top (package files, `index.html`, build configuration).
fn newest(dir: &Path) -> anyhow::Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                let name = entry.file_name();
                let top = current == dir;
                if !top || name == "src" || name == "public" {
                    pending.push(path);
                }
            } else if let Some(time) = modified(&path) {
                newest = newest.max(time);
            }
        }
    }
    Ok(newest)
}
