//! End-to-end scenarios of the platform (issue #3): the real `beffroi` binary (gate with
//! mutual TLS, embedded rumqttd or an external Mosquitto, ingest, SQLite or PostgreSQL store,
//! HTTP API) with real `beffroi-agent` processes, administered with its own CLI and observed
//! only through its API.
//!
//! Needs the binaries (`cargo build -p beffroi -p beffroi-agent --bins`). PostgreSQL parts use
//! `TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`; each scenario creates
//! and drops its own database); without it they fail when `CI` is set and are skipped with a
//! notice otherwise. The two-node scenario needs an MQTT 5 broker on 127.0.0.1:1883
//! (Mosquitto).
//!
//! 1. `delivery`: agents → gate → broker → ingest → store, every reading once, via the API.
//! 2. `rejections`: tampered, unknown-key, replayed and misrouted batches are refused.
//! 3. `gate`: TLS, identity, revocation and ACL refusals, silent sockets.
//! 4. `crash`: `kill -9` of the platform under load loses and duplicates nothing.
//! 5. `cluster`: two platform processes share one broker and one database.
//! 6. `isolation`: a tenant's token never reads another tenant's data.
//! 7. `demo`: `beffroi demo` runs and commits readings.
//! 8. `live`: live views, alarms and `beffroi watch` (issue #7).
//! 9. `audit`: the audit log records changes and reads, verifies, and finds tampering
//!    (issue #8).
//! 10. `retention`: per-class retention purges with receipts in the audit log (issue #8).
//! 11. `identity`: enrollment with one-time tokens, certificates renewed under load,
//!     revocation under load (issue #9).
//! 12. `shared_pki`: two nodes share one read-only PKI directory made by `beffroi pki init`
//!     (issue #10).
//! 13. `backup`: a running platform backed up, restored into a fresh database and data
//!     directory, and its agent taken back (issue #10).
//! 14. `observability`: the metrics reference and the Grafana dashboard match `/metrics`;
//!     the embedded broker's events are logged at their level (issue #10).
//! 15. `agent_status`: `beffroi-agent status` of a running, stopped and killed agent
//!     (issue #10).
//! 16. `chaos`: platform, broker, PostgreSQL and agent crashes, a network cut and a full disk
//!     while agents stream: nothing lost or duplicated, recovery times printed (issue #11).
//! 17. `api_schema`: Schemathesis sends generated requests to every operation of the OpenAPI
//!     document: no 5xx, every response as documented (issue #11).
//! 18. `broker_memory`: acks to a gateway's ack topic do not accumulate in the embedded
//!     broker (issue #11).

#![allow(clippy::unwrap_used)]

#[path = "platform/agent_status.rs"]
mod agent_status;
#[path = "platform/api_schema.rs"]
mod api_schema;
#[path = "platform/audit.rs"]
mod audit;
#[path = "platform/backup.rs"]
mod backup;
#[path = "platform/broker_memory.rs"]
mod broker_memory;
#[path = "platform/chaos.rs"]
mod chaos;
#[path = "platform/cluster.rs"]
mod cluster;
#[path = "platform/common.rs"]
mod common;
#[path = "platform/crash.rs"]
mod crash;
#[path = "platform/delivery.rs"]
mod delivery;
#[path = "platform/demo.rs"]
mod demo;
#[path = "platform/gate.rs"]
mod gate;
#[path = "platform/identity.rs"]
mod identity;
#[path = "platform/isolation.rs"]
mod isolation;
#[path = "platform/live.rs"]
mod live;
#[path = "platform/observability.rs"]
mod observability;
#[path = "platform/rejections.rs"]
mod rejections;
#[path = "platform/retention.rs"]
mod retention;
#[path = "platform/shared_pki.rs"]
mod shared_pki;
