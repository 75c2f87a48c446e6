//! The baseline: ThingsBoard IoT Gateway from PyPI, forwarding readings from a local MQTT bus
//! to a ThingsBoard server, the integrator's usual alternative to an agent like Beffroi's.
//!
//! It is installed once into a virtual environment under the target directory
//! (`target/bench-baseline/venv`, never in the repository) with
//! `pip install thingsboard-gateway==`[`VERSION`]. Its MQTT connector subscribes to
//! [`SENSOR_TOPICS`] on one plain local Mosquitto and maps each JSON message to one data point
//! of the device it names; its ThingsBoard connection is MQTT with an access token to another
//! plain local Mosquitto, where [`ThingsBoardStandIn`](super::mqtt_load::ThingsBoardStandIn)
//! answers like the server. Logging is reduced to warnings on standard error and statistics
//! and remote configuration are off: the baseline does less than in a default installation,
//! which can only make it look better.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::Context as _;
use beffroi_tests::process::tail;
use serde_json::{json, Value};

use super::mqtt_load::SENSOR_TOPICS;

/// The PyPI release measured.
pub const VERSION: &str = "3.8.5";

/// The MQTT client id of the gateway's connector on the sensor bus.
pub const CONNECTOR_CLIENT_ID: &str = "tb-gateway-bench";

/// An installed gateway: the virtual environment's `thingsboard-gateway` script.
#[derive(Debug, Clone)]
pub struct Installation {
    script: PathBuf,
}

fn run(command: &mut Command) -> anyhow::Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        tail_of(&output.stderr)
    );
    Ok(output)
}

fn tail_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let skip = text.chars().count().saturating_sub(600);
    text.chars()
        .skip(skip)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Installation {
    /// Finds the gateway in `venv`, or creates the environment with `python3 -m venv` and
    /// installs it with pip (network access to PyPI needed once). Errors say why it is not
    /// available; callers skip the baseline then.
    pub fn prepare(venv: &Path) -> anyhow::Result<Self> {
        let script = venv.join("bin/thingsboard-gateway");
        let python = venv.join("bin/python");
        if script.exists() && installed_version(&python).as_deref() == Some(VERSION) {
            return Ok(Self { script });
        }
        run(Command::new("python3").arg("--version")).context("python3 is not available")?;
        if !python.exists() {
            eprintln!(
                "creating a Python virtual environment in {}",
                venv.display()
            );
            run(Command::new("python3").arg("-m").arg("venv").arg(venv))
                .context("cannot create a virtual environment (python3-venv missing?)")?;
        }
        eprintln!(
            "installing thingsboard-gateway=={VERSION} from PyPI into {}",
            venv.display()
        );
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("thingsboard-gateway=={VERSION}")))
        .context("pip cannot install thingsboard-gateway")?;
        anyhow::ensure!(script.exists(), "pip did not install {}", script.display());
        Ok(Self { script })
    }
}

fn installed_version(python: &Path) -> Option<String> {
    let output = Command::new(python)
        .args([
            "-c",
            "from thingsboard_gateway.version import VERSION; print(VERSION)",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `tb_gateway.json`: the ThingsBoard connection (access token, QoS 1, in-memory storage)
/// and one MQTT connector.
fn service_config(upstream_port: u16) -> Value {
    json!({
        "thingsboard": {
            "host": "127.0.0.1",
            "port": upstream_port,
            "remoteShell": false,
            "remoteConfiguration": false,
            "latencyDebugMode": false,
            "statistics": {"enable": false, "statsSendPeriodInSeconds": 3600,
                           "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": false, "filterFile": "list.json"},
            "maxPayloadSizeBytes": 8196,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 60,
            "handleDeviceRenaming": true,
            "security": {"type": "accessToken", "accessToken": "bench-gateway-token"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": false,
                                       "inactivityTimeoutSeconds": 300,
                                       "inactivityCheckPeriodSeconds": 10}
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": false},
        "connectors": [{"type": "mqtt", "name": "Local sensors", "configuration": "mqtt.json"}]
    })
}

/// `mqtt.json`: subscribe to the sensor topic; each message `{"sensor", "metric", "value"}`
/// becomes data point `metric = value` of device `sensor`.
fn connector_config(source_port: u16) -> Value {
    json!({
        "broker": {
            "host": "127.0.0.1", "port": source_port, "clientId": CONNECTOR_CLIENT_ID,
            "version": 5, "maxMessageNumberPerWorker": 10, "maxNumberOfWorkers": 100,
            "cleanSession": true, "cleanStart": true, "sessionExpiryInterval": 0,
            "security": {"type": "anonymous"}
        },
        "mapping": [{
            "topicFilter": SENSOR_TOPICS,
            "subscriptionQos": 1,
            "converter": {
                "type": "json",
                "deviceInfo": {
                    "deviceNameExpressionSource": "message", "deviceNameExpression": "${sensor}",
                    "deviceProfileExpressionSource": "constant", "deviceProfileExpression": "default"
                },
                "sendDataOnlyOnChange": false,
                "timeout": 60000,
                "attributes": [],
                "timeseries": [{"type": "double", "key": "${metric}", "value": "${value}"}]
            }
        }]
    })
}

/// `logs.json`: warnings and errors on standard error only.
fn logging_config() -> Value {
    json!({
        "version": 1,
        "disable_existing_loggers": false,
        "formatters": {"plain": {"class": "logging.Formatter",
                                 "format": "%(asctime)s %(levelname)s [%(name)s] %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                                 "level": "WARNING", "stream": "ext://sys.stderr"}},
        "root": {"level": "WARNING", "handlers": ["console"]}
    })
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// A running gateway process, killed on drop.
#[derive(Debug)]
pub struct TbGateway {
    child: Child,
    log: PathBuf,
}

impl TbGateway {
    /// Writes its configuration under `dir` and starts it.
    pub fn start(
        installation: &Installation,
        dir: &Path,
        source_port: u16,
        upstream_port: u16,
    ) -> anyhow::Result<Self> {
        let config = dir.join("config");
        let work = dir.join("work");
        std::fs::create_dir_all(&config)?;
        std::fs::create_dir_all(&work)?;
        write_json(
            &config.join("tb_gateway.json"),
            &service_config(upstream_port),
        )?;
        write_json(&config.join("mqtt.json"), &connector_config(source_port))?;
        write_json(&config.join("logs.json"), &logging_config())?;
        let log = dir.join("gateway.log");
        let out = File::create(&log)?;
        let child = Command::new(&installation.script)
            .current_dir(&work)
            .env("TB_GW_CONFIG_DIR", &config)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting thingsboard-gateway")?;
        Ok(Self { child, log })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 2000)
    }
}

impl Drop for TbGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
