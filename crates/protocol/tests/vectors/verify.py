#!/usr/bin/env python3
"""Cross-check the Beffroi test vectors with independent implementations.

Uses only PyPI `cbor2` (CBOR) and `cryptography` (Ed25519), nothing from the Rust code:

1. parses `cose_sign1_hex` as a tagged COSE_Sign1 (RFC 9052): tag 18, 4-element array,
   protected header {1: -8 (EdDSA), 4: kid} or, with a signed time, {1: -8, 4: kid,
   15 (CWT Claims): {6 (iat): signed_at_iat}}, empty unprotected header;
2. rebuilds Sig_structure = ["Signature1", protected, external_aad = topic, payload] and
   verifies the Ed25519 signature with `public_key_hex`;
3. checks the envelope and payload are in deterministic encoding (re-encoding with cbor2's
   canonical mode gives the same bytes);
4. decodes the payload per the CDDL in crates/protocol and compares it with `message`.

Usage: python3 verify.py [vector.json ...]   (default: every *.json next to this script)
Exit status 0 when every vector checks out.
"""

import datetime
import json
import math
import pathlib
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def rfc3339(micros):
    t = EPOCH + datetime.timedelta(microseconds=micros)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def same(a, b, path="message"):
    """Strict equality: bool is not a number, floats compare by bit pattern (-0.0 != 0.0)."""
    if type(a) is not type(b):
        # JSON integers (e.g. seq) vs CBOR ints are both int; floats must stay floats.
        raise AssertionError(f"{path}: type {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})")
    if isinstance(a, float):
        if math.copysign(1.0, a) != math.copysign(1.0, b) or a != b:
            raise AssertionError(f"{path}: {a!r} != {b!r}")
    elif isinstance(a, dict):
        if set(a) != set(b):
            raise AssertionError(f"{path}: keys {sorted(a)} != {sorted(b)}")
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            raise AssertionError(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif a != b:
        raise AssertionError(f"{path}: {a!r} != {b!r}")


def batch_to_json(item):
    version, tenant, gateway, seq, readings = item
    assert version == 1, f"wire version {version}"
    return {
        "tenant": tenant,
        "gateway": gateway,
        "seq": seq,
        "readings": [
            {"sensor": s, "metric": m, "unit": u, "time": rfc3339(t), "value": v}
            for s, m, u, t, v in readings
        ],
    }


def health_to_json(item):
    (version, tenant, gateway, time, uptime_s, agent_version, spool_batches, spool_bytes,
     oldest, batches_dropped, readings_dropped, rss_bytes, next_seq, gaps, counters) = item
    assert version == 1, f"wire version {version}"
    return {
        "tenant": tenant,
        "gateway": gateway,
        "time": rfc3339(time),
        "uptime_s": uptime_s,
        "agent_version": agent_version,
        "spool_batches": spool_batches,
        "spool_bytes": spool_bytes,
        "oldest_unacked_age_s": oldest,
        "batches_dropped": batches_dropped,
        "readings_dropped": readings_dropped,
        "rss_bytes": rss_bytes,
        "next_seq": next_seq,
        "gaps": [
            {"first_seq": a, "last_seq": b, "batches": c, "readings": d, "reason": r}
            for a, b, c, d, r in gaps
        ],
        "counters": dict(counters),
    }


def check_canonical(data, what):
    again = cbor2.dumps(cbor2.loads(data), canonical=True)
    assert again == data, f"{what} is not in deterministic encoding:\n  {data.hex()}\n  {again.hex()}"


def verify(path):
    vector = json.loads(path.read_text(encoding="utf-8"))
    envelope = bytes.fromhex(vector["cose_sign1_hex"])
    topic = vector["topic"].encode("utf-8")

    tagged = cbor2.loads(envelope)
    assert isinstance(tagged, cbor2.CBORTag) and tagged.tag == 18, "not a tagged COSE_Sign1"
    protected, unprotected, payload, signature = tagged.value
    assert unprotected == {}, f"unprotected header {unprotected!r}"
    header = cbor2.loads(protected)
    expected = {1: -8, 4: vector["kid"].encode("ascii")}
    if "signed_at_iat" in vector:
        expected[15] = {6: vector["signed_at_iat"]}
    assert header == expected, f"protected header {header!r}"
    check_canonical(protected, "protected header")
    assert payload == bytes.fromhex(vector["payload_cbor_hex"]), "payload differs from payload_cbor_hex"

    sig_structure = cbor2.dumps(["Signature1", protected, topic, payload])
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(vector["public_key_hex"]))
    key.verify(signature, sig_structure)  # raises InvalidSignature
    # The signature must not verify for another topic (external_aad binds it).
    other = cbor2.dumps(["Signature1", protected, topic + b"x", payload])
    try:
        key.verify(signature, other)
        raise AssertionError("signature also verifies with another topic")
    except InvalidSignature:
        pass

    check_canonical(envelope, "envelope")
    check_canonical(payload, "payload")

    item = cbor2.loads(payload)
    kind = vector["topic"].rsplit("/", 1)[-1]
    decoded = {"batch": batch_to_json, "health": health_to_json}[kind](item)
    same(vector["message"], decoded)
    return kind, len(payload), len(envelope)


def main(argv):
    paths = [pathlib.Path(p) for p in argv] or sorted(pathlib.Path(__file__).parent.glob("*.json"))
    failed = 0
    for path in paths:
        try:
            kind, plen, elen = verify(path)
            print(f"ok    {path.name}: {kind}, payload {plen} B, envelope {elen} B")
        except (AssertionError, InvalidSignature, ValueError, KeyError) as e:
            failed += 1
            print(f"FAIL  {path.name}: {type(e).__name__}: {e}")
    print(f"{len(paths) - failed}/{len(paths)} vectors verified")
    return 1 if failed or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
