//! Automatic certificate renewal and signing-key rotation while the agent runs.
//!
//! ```text
//!  ┌─► read tls.crt → renew at not_before + lifetime × renew_at
//!  │     sleep until then (in steps of at most an hour, so clock changes are noticed)
//!  │   attempt: new TLS key + CSR [+ new signing key and proof when rotation is due]
//!  │     POST /enroll/v1/renew over mTLS (current certificate; platform CA; URL's host)
//!  │     ok   → ca.crt; signing.key.new → signing.key, signer swapped; tls.key+tls.crt
//!  │            committed together; uplink handed the new TLS config → it reconnects
//!  │     fail → retry after jittered backoff (retry_initial doubling to retry_max);
//!  └──────────  warning while less than a sixth of the lifetime is left
//! ```
//! Rotation is due when `signing.key.new` exists (`beffroi-agent rotate-key` wrote it) or
//! when `signing.key` is older than `rotate_signing_key_days`. Spooled batches keep the
//! signature they were sealed with; sealing is held while the rotation request is in flight
//! (see [`crate::signer_slot`]), so no batch is signed with the old key after the platform
//! retired it. If the platform answers `key_in_use` for the pending key, an earlier rotation
//! was registered but the agent stopped before installing it: the key was generated here and
//! never left the gateway, so it is installed and the renewal retried without rotation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use beffroi_protocol::{key_id_for, GatewayId, Signer, SigningKey, TenantId, Timestamp};
use rustls::ClientConfig;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::csr::{self, Validity};
use super::files;
use super::https::Connection;
use super::wire::{self, CertificateRequest};
use super::{check_answer, exchange, EnrollError, IdentityFiles, NewSigningKey};
use crate::config::{Config, EnrollmentConfig, UplinkConfig};
use crate::keys;
use crate::signer_slot::SignerSlot;
use crate::telemetry::{Counter, Telemetry};
use crate::uplink::{tls, Backoff};

/// Longest single sleep while waiting for the renewal time.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The renewal task's state.
pub struct Renewal {
    settings: EnrollmentConfig,
    files: IdentityFiles,
    uplink: UplinkConfig,
    tenant: TenantId,
    gateway: GatewayId,
    signer: Arc<SignerSlot>,
    tls_updates: watch::Sender<Arc<ClientConfig>>,
    telemetry: Arc<Telemetry>,
}

/// How a renewal ended.
#[derive(Debug, Clone)]
pub struct Renewed {
    /// The new certificate's validity.
    pub validity: Validity,
    /// The new key id when the signing key was rotated.
    pub rotated_to: Option<String>,
}

impl Renewal {
    /// A renewal task for `config` (which must have `[enrollment]`): it swaps the signer in
    /// `signer` and publishes new uplink TLS configurations on `tls_updates`.
    pub fn new(
        config: &Config,
        settings: EnrollmentConfig,
        signer: Arc<SignerSlot>,
        tls_updates: watch::Sender<Arc<ClientConfig>>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            settings,
            files: identity_files(config),
            uplink: config.uplink.clone(),
            tenant: config.identity.tenant.clone(),
            gateway: config.identity.gateway.clone(),
            signer,
            tls_updates,
            telemetry,
        }
    }

    /// Renews whenever due until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let seed = std::process::id() as u64
            ^ SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let mut backoff = Backoff::new(self.settings.retry_initial, self.settings.retry_max, seed);
        loop {
            let delay = self.step(&mut backoff).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Renews if due; returns how long to wait before looking again.
    async fn step(&self, backoff: &mut Backoff) -> Duration {
        let validity = match self.current_validity() {
            Ok(validity) => validity,
            Err(error) => {
                self.telemetry.incr(Counter::RenewalFailures);
                tracing::error!(%error, "cannot read the current certificate");
                return backoff.next_delay();
            }
        };
        let due = validity.at_fraction(self.settings.renew_at);
        if let Ok(wait) = due.duration_since(SystemTime::now()) {
            if !wait.is_zero() {
                return wait.min(MAX_SLEEP);
            }
        }
        match self.renew_once().await {
            Ok(renewed) => {
                backoff.reset();
                self.telemetry.incr(Counter::Renewals);
                tracing::info!(
                    not_after = %Timestamp::from(renewed.validity.not_after),
                    rotated_to = renewed.rotated_to.as_deref(),
                    "certificate renewed"
                );
                // Never back to back, even if the new certificate is due at once.
                self.settings.retry_initial
            }
            Err(error) => {
                self.telemetry.incr(Counter::RenewalFailures);
                warn_if_expiring(&validity);
                tracing::warn!(%error, "certificate renewal failed; will retry");
                backoff.next_delay()
            }
        }
    }

    fn current_validity(&self) -> Result<Validity, EnrollError> {
        let pem =
            std::fs::read(&self.files.tls.certificate).map_err(|source| files::FileError {
                path: self.files.tls.certificate.clone(),
                source,
            })?;
        Ok(csr::leaf(&pem)?.validity)
    }

    /// The signing key to register with this renewal, if rotation is due.
    fn rotation_candidate(&self) -> Result<Option<SigningKey>, EnrollError> {
        let pending = files::pending(&self.files.signing_key);
        if pending.exists() {
            return Ok(Some(keys::load_signing_key(&pending)?));
        }
        let Some(max_age) = self.settings.rotate_signing_key_after else {
            return Ok(None);
        };
        let age = std::fs::metadata(&self.files.signing_key)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .unwrap_or_default();
        if age < max_age {
            return Ok(None);
        }
        Ok(Some(prepare_rotation(&self.files.signing_key)?))
    }

    /// One renewal attempt.
    pub async fn renew_once(&self) -> Result<Renewed, EnrollError> {
        let rotation = self.rotation_candidate()?;
        let request = csr::tls_request(self.gateway.as_str())?;
        let new_key = rotation
            .as_ref()
            .map(|key| NewSigningKey::new(key, &request.csr_der))
            .transpose()?;
        let body = CertificateRequest {
            csr: request.csr_pem.clone(),
            signing_key: new_key.as_ref().map(|k| k.public_pem.clone()),
            proof: new_key.map(|k| k.proof),
            tenant: None,
            gateway: None,
            agent_version: env!("CARGO_PKG_VERSION"),
        };
        let client =
            tls::client_config(&self.uplink).map_err(|e| EnrollError::Tls(e.to_string()))?;
        let timeout = self.settings.request_timeout;
        let connection = Connection::open(&self.settings.endpoint, client, timeout).await?;
        // Nothing is sealed with the old key once the platform may have retired it.
        let _sealing_held = rotation.as_ref().map(|_| self.signer.pause());
        let answer = match exchange(connection, wire::RENEW_ROUTE, None, &body, timeout).await {
            Err(EnrollError::Platform { code, .. })
                if code == "key_in_use" && rotation.is_some() =>
            {
                if let Some(key) = rotation {
                    self.install_signing_key(key)?;
                }
                return Err(EnrollError::InterruptedRotation);
            }
            other => other?,
        };
        let checked = check_answer(&answer, &request.key, rotation.as_ref())?;
        if checked.tenant != self.tenant || checked.gateway != self.gateway {
            return Err(EnrollError::BadAnswer(format!(
                "the certificate names {}/{}, this gateway is {}/{}",
                checked.tenant, checked.gateway, self.tenant, self.gateway
            )));
        }
        if rotation.is_none() && answer.key_id != self.signer.current().key_id().as_str() {
            tracing::warn!(
                platform = %answer.key_id,
                agent = %self.signer.current().key_id(),
                "the platform's current signing key is not the one this agent signs with"
            );
        }
        files::write_atomic(
            &self.files.ca,
            answer.trust_anchors.as_bytes(),
            files::PUBLIC,
        )?;
        self.files
            .tls
            .stage(&answer.certificate_chain, &request.key.serialize_pem())?;
        let rotated_to = match rotation {
            Some(key) => Some(self.install_signing_key(key)?),
            None => None,
        };
        self.files.tls.commit()?;
        let client =
            tls::client_config(&self.uplink).map_err(|e| EnrollError::Tls(e.to_string()))?;
        self.tls_updates.send_replace(client);
        Ok(Renewed {
            validity: checked.validity,
            rotated_to,
        })
    }

    /// Moves the pending signing key into place and seals every later envelope with it.
    fn install_signing_key(&self, key: SigningKey) -> Result<String, EnrollError> {
        files::rename(
            &files::pending(&self.files.signing_key),
            &self.files.signing_key,
        )?;
        let signer = Signer::new(key);
        let key_id = signer.key_id().to_string();
        self.signer.replace(signer);
        self.telemetry.incr(Counter::KeyRotations);
        tracing::info!(key_id, "signing key rotated");
        Ok(key_id)
    }
}

/// The identity files a config names.
pub fn identity_files(config: &Config) -> IdentityFiles {
    IdentityFiles {
        signing_key: config.identity.signing_key.clone(),
        tls: files::TlsPair {
            certificate: config.uplink.certificate.clone(),
            key: config.uplink.private_key.clone(),
        },
        ca: config.uplink.ca.clone(),
    }
}

/// Generates the next signing key as `<signing_key>.new` (0600): it is registered, and then
/// used, at the next renewal. Refuses when a rotation is already pending.
pub fn prepare_rotation(signing_key: &std::path::Path) -> Result<SigningKey, EnrollError> {
    let key = keys::random_signing_key()?;
    keys::write_private(
        &files::pending(signing_key),
        &keys::signing_key_pem(&key)?,
        false,
    )?;
    tracing::info!(key_id = %key_id_for(&key.verifying_key()), "signing-key rotation prepared");
    Ok(key)
}

fn warn_if_expiring(validity: &Validity) {
    let left = validity
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if left.is_zero() {
        tracing::error!("the certificate has expired: the platform will refuse this gateway until it is enrolled again with a new token");
    } else if validity.renewal_overdue(SystemTime::now()) {
        tracing::warn!(
            left_s = left.as_secs(),
            "the certificate expires soon and could not be renewed yet"
        );
    }
}
