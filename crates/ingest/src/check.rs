//! The CPU stage of the pipeline, run on a chunk of messages received together: topic,
//! envelope, key, signature (batch verification), payload decoding and time window.
//!
//! It is plain synchronous code over in-memory data (the key cache), so the pipeline runs it
//! on the blocking pool for any chunk that may take more than a few hundred microseconds.

use std::sync::Arc;
use std::time::Duration;

use beffroi_protocol::{Batch, Error as WireError, Health, KeyId, Opened, Topic, TopicKind};
use beffroi_store::{CommitBatch, QuarantineReason};

use crate::quarantine::Rejection;
use crate::sequence::GatewayKey;
use crate::subscriber::Inbound;
use crate::validate::TimeWindow;
use crate::verify::{verify_all, Candidate, KeyCache, KeyEntry, Lookup};

/// An authentic batch, ready for deduplication.
pub(crate) struct VerifiedBatch {
    /// Its gateway.
    pub gateway: GatewayKey,
    /// What to commit.
    pub commit: CommitBatch,
    /// Whether every reading lies in the accepted time window (applied after deduplication,
    /// so that a late re-send of a committed batch is still recognised as a duplicate).
    pub window: Result<(), (QuarantineReason, String)>,
    /// The message as received (for quarantine).
    pub inbound: Inbound,
}

/// An authentic health report.
pub(crate) struct VerifiedHealth {
    /// Its gateway.
    pub gateway: GatewayKey,
    /// The report.
    pub health: Health,
    /// When it arrived.
    pub received_at: beffroi_protocol::Timestamp,
}

/// What the stage decided about one message.
pub(crate) enum Checked {
    /// An authentic batch.
    Batch(Box<VerifiedBatch>),
    /// An authentic health report.
    Health(Box<VerifiedHealth>),
    /// The key id is not cached: look it up in the store, then check again.
    NeedsKey(Box<(Inbound, KeyId)>),
    /// To quarantine.
    Rejected(Box<Rejection>),
}

/// A message whose envelope parsed and whose key is known.
struct Ready {
    inbound: Inbound,
    topic: Topic,
    opened: Opened,
    key: Arc<KeyEntry>,
}

/// Checks a chunk; the output has one entry per input message, in input order.
pub(crate) fn check_chunk(
    chunk: Vec<Inbound>,
    keys: &KeyCache,
    window: TimeWindow,
) -> Vec<Checked> {
    let mut out: Vec<Option<Checked>> = Vec::with_capacity(chunk.len());
    let mut ready: Vec<(usize, Ready)> = Vec::new();
    for inbound in chunk {
        match open(inbound, keys) {
            Ok(r) => {
                ready.push((out.len(), r));
                out.push(None);
            }
            Err(checked) => out.push(Some(checked)),
        }
    }
    let candidates: Vec<Candidate<'_>> = ready
        .iter()
        .map(|(_, r)| Candidate {
            opened: &r.opened,
            topic: &r.topic,
            key: &r.key.key,
        })
        .collect();
    let authentic = verify_all(&candidates);
    drop(candidates);
    for ((index, r), ok) in ready.into_iter().zip(authentic) {
        out[index] = Some(if ok {
            decode(r, window)
        } else {
            reject(
                r.inbound,
                Some(&r.topic),
                None,
                QuarantineReason::BadSignature,
                format!(
                    "signature by {} does not verify on this topic",
                    r.opened.key_id()
                ),
            )
        });
    }
    out.into_iter().flatten().collect()
}

/// Topic, envelope and key: a message ready for its signature check, or the decision.
fn open(inbound: Inbound, keys: &KeyCache) -> Result<Ready, Checked> {
    let topic = match std::str::from_utf8(&inbound.publish.topic)
        .map_err(|_| "topic is not UTF-8".to_owned())
        .and_then(|text| Topic::parse(text).map_err(|e| e.to_string()))
    {
        Ok(topic) => topic,
        Err(detail) => {
            return Err(reject(
                inbound,
                None,
                None,
                QuarantineReason::Malformed,
                detail,
            ))
        }
    };
    if !matches!(topic.kind, TopicKind::Batch | TopicKind::Health) {
        return Err(reject(
            inbound,
            Some(&topic),
            None,
            QuarantineReason::Malformed,
            "not a batch or health topic".into(),
        ));
    }
    let opened = match Opened::parse(&inbound.publish.payload) {
        Ok(opened) => opened,
        Err(error) => {
            return Err(reject(
                inbound,
                Some(&topic),
                None,
                QuarantineReason::Malformed,
                error.to_string(),
            ))
        }
    };
    let key = match keys.get(opened.key_id()) {
        Lookup::Miss => {
            let kid = opened.key_id().clone();
            return Err(Checked::NeedsKey(Box::new((inbound, kid))));
        }
        Lookup::Absent => {
            let detail = WireError::UnknownKey(opened.key_id().clone()).to_string();
            return Err(reject(
                inbound,
                Some(&topic),
                None,
                QuarantineReason::UnknownKey,
                detail,
            ));
        }
        Lookup::Known(key) => key,
    };
    if key.tenant != topic.tenant || key.gateway != topic.gateway {
        let detail = format!(
            "key {} belongs to {}/{}, not to the topic's gateway",
            opened.key_id(),
            key.tenant,
            key.gateway
        );
        return Err(reject(
            inbound,
            Some(&topic),
            None,
            QuarantineReason::UnknownKey,
            detail,
        ));
    }
    if let Err((reason, detail)) = key_in_force(&key, &opened) {
        return Err(reject(inbound, Some(&topic), None, reason, detail));
    }
    Ok(Ready {
        inbound,
        topic,
        opened,
        key,
    })
}

/// Whether the envelope's key may sign at its signed time (docs/gateway-identity.md, "Signing
/// keys and signed time"): any key of a revoked gateway only strictly before the revocation,
/// a retired key only at or before its retirement, the current key whatever the time. An
/// envelope without a signed time (an older agent) is accepted from a current key only.
/// The signed time has one-second resolution (the start of the second is carried), so the
/// two rules settle that second differently: a revocation fails closed (an envelope signed
/// in the second of the revocation is refused, whichever side of it), a rotation — benign,
/// and announced by the gateway itself — fails open. The signed time is the agent's word: it
/// separates what a gateway sent before a rotation or revocation from what it sent after,
/// not a thief's messages from the gateway's.
/// The resolution of an envelope's signed time.
const SIGNED_TIME_RESOLUTION: Duration = Duration::from_secs(1);

fn key_in_force(key: &KeyEntry, opened: &Opened) -> Result<(), (QuarantineReason, String)> {
    let signed_at = opened.signed_at();
    let signed = || match signed_at {
        Some(at) => format!("signed at {at}"),
        None => "without a signed time".to_owned(),
    };
    if let Some(revoked_at) = key.revoked_at {
        if signed_at.is_none_or(|at| at.saturating_add(SIGNED_TIME_RESOLUTION) > revoked_at) {
            let detail = format!(
                "gateway {}/{} is revoked since {revoked_at}; envelope {}",
                key.tenant,
                key.gateway,
                signed()
            );
            return Err((QuarantineReason::Revoked, detail));
        }
    }
    if let Some(retired_at) = key.retired_at {
        if signed_at.is_none_or(|at| at > retired_at) {
            let detail = format!(
                "key {} of {}/{} is retired since {retired_at}; envelope {}",
                opened.key_id(),
                key.tenant,
                key.gateway,
                signed()
            );
            return Err((QuarantineReason::RetiredKey, detail));
        }
    }
    Ok(())
}

/// Decodes an authentic payload.
fn decode(r: Ready, window: TimeWindow) -> Checked {
    let gateway: GatewayKey = (r.topic.tenant.clone(), r.topic.gateway.clone());
    let payload = r.opened.payload_unverified();
    let received_at = r.inbound.received_at;
    if r.topic.kind == TopicKind::Health {
        return match Health::decode(payload) {
            Ok(health) if health.tenant == gateway.0 && health.gateway == gateway.1 => {
                Checked::Health(Box::new(VerifiedHealth {
                    gateway,
                    health,
                    received_at,
                }))
            }
            Ok(health) => {
                let detail = mismatch(&health.tenant, &health.gateway, &r.topic);
                reject(
                    r.inbound,
                    Some(&r.topic),
                    None,
                    QuarantineReason::Malformed,
                    detail,
                )
            }
            Err(error) => reject(
                r.inbound,
                Some(&r.topic),
                None,
                QuarantineReason::Malformed,
                error.to_string(),
            ),
        };
    }
    let batch = match Batch::decode(payload) {
        Ok(batch) => batch,
        Err(error) => {
            return reject(
                r.inbound,
                Some(&r.topic),
                None,
                QuarantineReason::Malformed,
                error.to_string(),
            )
        }
    };
    if batch.tenant() != &gateway.0 || batch.gateway() != &gateway.1 {
        let detail = mismatch(batch.tenant(), batch.gateway(), &r.topic);
        return reject(
            r.inbound,
            Some(&r.topic),
            Some(batch.seq()),
            QuarantineReason::Malformed,
            detail,
        );
    }
    let window = window.check(&batch);
    let seq = batch.seq();
    Checked::Batch(Box::new(VerifiedBatch {
        commit: CommitBatch {
            tenant: gateway.0.clone(),
            gateway: gateway.1.clone(),
            seq,
            key_id: r.opened.key_id().clone(),
            signature: r.opened.signature().to_bytes(),
            received_at,
            readings: batch.into_readings(),
        },
        gateway,
        window,
        inbound: r.inbound,
    }))
}

fn mismatch(
    tenant: &beffroi_protocol::TenantId,
    gateway: &beffroi_protocol::GatewayId,
    topic: &Topic,
) -> String {
    WireError::TopicMismatch {
        message: format!("{tenant}/{gateway}"),
        topic: format!("{}/{}", topic.tenant, topic.gateway),
    }
    .to_string()
}

/// A rejection decided by this stage: never acknowledged (the sender is not authenticated,
/// or the payload is unusable).
fn reject(
    inbound: Inbound,
    topic: Option<&Topic>,
    seq: Option<u64>,
    reason: QuarantineReason,
    detail: String,
) -> Checked {
    Checked::Rejected(Box::new(Rejection::of(
        &inbound, topic, seq, reason, detail,
    )))
}

/// Whether checking `chunk` is small enough to run on the async executor (well under
/// ~500 µs: a few signatures over small payloads).
pub(crate) fn runs_inline(chunk: &[Inbound]) -> bool {
    chunk.len() <= 4 && chunk.iter().map(|i| i.publish.payload.len()).sum::<usize>() <= 16 * 1024
}

#[cfg(test)]
mod tests {
    use beffroi_protocol::{GatewayId, Signer, SigningKey, TenantId, Timestamp};
    use coset::{iana, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
    use ed25519_dalek::Signer as _;

    use super::*;

    const R: i64 = 1_795_400_833_500_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(R + seconds * 1_000_000)
    }

    fn topic() -> Topic {
        Topic::batch(
            &TenantId::new("lyon").unwrap(),
            &GatewayId::new("gw-1").unwrap(),
        )
    }

    /// An envelope signed at `signed_at`, or without a signed time.
    fn opened(signed_at: Option<Timestamp>) -> Opened {
        let key = SigningKey::from_bytes(&[1; 32]);
        let signer = Signer::new(key.clone());
        let envelope = match signed_at {
            Some(t) => signer.seal_at(&topic(), b"p".to_vec(), t).unwrap(),
            None => CoseSign1Builder::new()
                .protected(
                    HeaderBuilder::new()
                        .algorithm(iana::Algorithm::EdDSA)
                        .key_id(signer.key_id().as_str().as_bytes().to_vec())
                        .build(),
                )
                .payload(b"p".to_vec())
                .create_signature(topic().to_string().as_bytes(), |tbs| {
                    key.sign(tbs).to_bytes().to_vec()
                })
                .build()
                .to_tagged_vec()
                .unwrap(),
        };
        Opened::parse(&envelope).unwrap()
    }

    fn entry(revoked_at: Option<Timestamp>, retired_at: Option<Timestamp>) -> KeyEntry {
        KeyEntry {
            tenant: TenantId::new("lyon").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            key: SigningKey::from_bytes(&[1; 32]).verifying_key(),
            revoked_at,
            retired_at,
        }
    }

    /// Revoked at, retired at, signed at, and the refusal expected.
    type Case = (
        Option<Timestamp>,
        Option<Timestamp>,
        Option<Timestamp>,
        Option<QuarantineReason>,
    );

    #[test]
    fn a_key_is_in_force_by_signed_time() {
        use QuarantineReason::{RetiredKey, Revoked};
        // Signed times are whole seconds: signed `at(0)` carries R - 0.5 s.
        let cases: [Case; 13] = [
            // current key: any signed time, or none
            (None, None, Some(at(3600)), None),
            (None, None, None, None),
            // retired at R: at or before it only, never without a signed time
            (None, Some(at(0)), Some(at(-100)), None),
            (None, Some(at(0)), Some(at(0)), None),
            (None, Some(at(0)), Some(at(1)), Some(RetiredKey)),
            (None, Some(at(0)), None, Some(RetiredKey)),
            // revoked at R: strictly before it only; its own second fails closed
            (Some(at(0)), None, Some(at(-1)), None),
            (Some(at(0)), None, Some(at(0)), Some(Revoked)),
            (Some(at(0)), None, Some(at(1)), Some(Revoked)),
            (Some(at(0)), None, None, Some(Revoked)),
            // retired at R - 10 s, then revoked at R: both apply, revocation first
            (Some(at(0)), Some(at(-10)), Some(at(-20)), None),
            (Some(at(0)), Some(at(-10)), Some(at(-5)), Some(RetiredKey)),
            (Some(at(0)), Some(at(-10)), Some(at(5)), Some(Revoked)),
        ];
        for (revoked_at, retired_at, signed_at, refused) in cases {
            let decided = key_in_force(&entry(revoked_at, retired_at), &opened(signed_at));
            assert_eq!(
                decided.as_ref().err().map(|(reason, _)| *reason),
                refused,
                "revoked {revoked_at:?}, retired {retired_at:?}, signed {signed_at:?}: {decided:?}"
            );
        }
    }
}
