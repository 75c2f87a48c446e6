//! Scenario 8: `beffroi demo` runs for a few seconds on free ports in a private data
//! directory, prints its URLs and an API token, exits 0 and reports committed readings.

use std::time::{Duration, Instant};

use beffroi_tests::platform::run_platform;

use crate::common::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_smoke() -> anyhow::Result<()> {
    let scenario = Scenario::new("demo")?;
    let data_dir = scenario.path("demo-data");
    let started = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        run_platform(vec![
            "demo".into(),
            "--duration".into(),
            "8".into(),
            "--gate-port".into(),
            "0".into(),
            "--api-port".into(),
            "0".into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            // The browser scenario (dashboards/e2e) runs the demo with its dashboard.
            "--no-dashboard".into(),
        ]),
    )
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    std::fs::write(scenario.path("demo.log"), format!("{stdout}\n{stderr}"))?;
    assert!(
        output.status.success(),
        "demo exited with {}",
        output.status
    );
    assert!(
        stdout.contains("http://127.0.0.1:"),
        "no URL printed:\n{stdout}"
    );
    assert!(
        stdout.contains("/api/v1/openapi.json"),
        "no OpenAPI URL:\n{stdout}"
    );
    let token = stdout
        .lines()
        .find_map(|l| {
            l.split_once("API token (tenant demo, admin): ")
                .map(|(_, t)| t.trim())
        })
        .unwrap_or_default();
    assert!(token.len() >= 20, "no API token printed:\n{stdout}");
    let committed: u64 = stdout
        .lines()
        .find_map(|l| {
            let (before, _) = l.split_once(" readings committed")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or(0);
    assert!(committed > 0, "no readings committed:\n{stdout}");
    assert!(!stderr.contains("panicked"), "the demo panicked:\n{stderr}");
    eprintln!(
        "demo: exit 0 after {:.1?}, {committed} readings committed",
        started.elapsed()
    );
    scenario.pass();
    Ok(())
}
