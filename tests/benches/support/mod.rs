//! Support shared by the benchmarks in `tests/benches/`: measuring a process's footprint
//! ([`footprint`]), a plain local Mosquitto ([`plain_broker`]), MQTT load and a ThingsBoard
//! stand-in ([`mqtt_load`]), the ThingsBoard IoT Gateway baseline ([`tb_gateway`]) and the
//! printed report ([`report`]).
//!
//! The end-to-end harness (`beffroi_tests`) provides the TLS broker, the verifying consumer and
//! the agent process; this module adds only what benchmarks need on top.

pub mod footprint;
pub mod mqtt_load;
pub mod plain_broker;
pub mod report;
pub mod tb_gateway;
