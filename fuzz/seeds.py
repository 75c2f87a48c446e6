#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target under fuzz/corpus/<target>/ (docs/fuzzing.md).

Valid inputs come from the repository itself (the protocol's published test vectors, signed
with TEST keys; the example configs under deploy/), or are written here: MQTT packets, CSV
exports, JSON lines, API requests; then a few edge cases. Deterministic: running it again
rewrites the same files. Run from anywhere: python3 fuzz/seeds.py
"""

import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
VECTORS = ROOT / "crates" / "protocol" / "tests" / "vectors"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def protocol():
    """COSE_Sign1 envelopes and their CBOR payloads from the published vectors."""
    for vector in sorted(VECTORS.glob("*.json")):
        v = json.loads(vector.read_text())
        envelope = bytes.fromhex(v["cose_sign1_hex"])
        write("cose_envelope", vector.stem, envelope)
        write("cbor_payloads", vector.stem, bytes.fromhex(v["payload_cbor_hex"]))
    write("cose_envelope", "edge-truncated", envelope[: len(envelope) // 2])
    write("cose_envelope", "edge-tag-only", bytes([0xD2]))
    # ack = [1, "lyon", "gw-1", 7, [9, 12]]
    write("cbor_payloads", "ack", bytes([0x85, 0x01, 0x64]) + b"lyon" + bytes([0x64]) + b"gw-1"
          + bytes([0x07, 0x82, 0x09, 0x0C]))
    # An array announcing 2^32 elements: must be refused before any allocation.
    write("cbor_payloads", "edge-huge-array", bytes([0x9A, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))


def varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def mqtt():
    """Client packets as an agent sends them, 3.1.1 and 5.0, alone and as one stream."""
    connect_311 = packet(0x10, mqtt_string("MQTT") + bytes([4, 0x02]) + (30).to_bytes(2, "big")
                         + mqtt_string("gw-1"))
    # MQTT 5: clean start, will (QoS 1) and user name; properties: session expiry 60 s.
    props = bytes([0x11]) + (60).to_bytes(4, "big")
    will_props = bytes([0x18]) + (5).to_bytes(4, "big")
    connect_5 = packet(0x10, mqtt_string("MQTT") + bytes([5, 0x02 | 0x04 | 0x08 | 0x80])
                       + (30).to_bytes(2, "big") + varint(len(props)) + props
                       + mqtt_string("gw-1") + varint(len(will_props)) + will_props
                       + mqtt_string("beffroi/v1/lyon/gw-1/health") + mqtt_string("offline")
                       + mqtt_string("gw-1"))
    publish_0 = packet(0x30, mqtt_string("beffroi/v1/lyon/gw-1/batch") + b"\xd2\x84payload")
    publish_1 = packet(0x32, mqtt_string("beffroi/v1/lyon/gw-1/batch") + (1).to_bytes(2, "big")
                       + b"\xd2\x84payload")
    # MQTT 5 PUBLISH with a topic alias property (3 bytes: 0x23 + u16).
    publish_5 = packet(0x32, mqtt_string("beffroi/v1/lyon/gw-1/batch") + (2).to_bytes(2, "big")
                       + bytes([3, 0x23, 0, 1]) + b"\xd2\x84payload")
    subscribe_311 = packet(0x82, (3).to_bytes(2, "big") + mqtt_string("beffroi/v1/lyon/gw-1/ack")
                           + bytes([1]))
    subscribe_5 = packet(0x82, (3).to_bytes(2, "big") + bytes([0])
                         + mqtt_string("beffroi/v1/lyon/gw-1/ack") + bytes([1]))
    pingreq, disconnect = packet(0xC0, b""), packet(0xE0, b"")
    for name, data in [("connect-311", connect_311), ("connect-5", connect_5),
                       ("publish-qos0", publish_0), ("publish-qos1", publish_1),
                       ("publish-5-alias", publish_5), ("subscribe-311", subscribe_311),
                       ("subscribe-5", subscribe_5), ("pingreq", pingreq)]:
        write("gate_packet", name, data)
    write("gate_packet", "stream-311", connect_311 + subscribe_311 + publish_1 + pingreq
          + disconnect)
    write("gate_packet", "stream-5", connect_5 + subscribe_5 + publish_5 + disconnect)
    write("gate_packet", "edge-varint-five-bytes", bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
    write("gate_packet", "edge-varint-not-minimal", bytes([0xC0, 0x80, 0x00]))
    write("gate_packet", "edge-oversize", bytes([0x30]) + varint(1 << 20) + b"x")


def without_comment_lines(text):
    """TOML without its whole-line comments and blank lines (small seeds, same content)."""
    return "".join(l + "\n" for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#"))


def configs():
    """The example configs of deploy/, and the agent's with every example source enabled."""
    for path in sorted(ROOT.glob("deploy/**/beffroi*.toml")):
        write("platform_config", "-".join(path.relative_to(ROOT / "deploy").parts),
              without_comment_lines(path.read_text()))
    write("platform_config", "empty", "")
    write("platform_config", "edge-unknown-field", "no_such_field = 1\n")
    agent = (ROOT / "deploy" / "agent" / "agent.toml").read_text()
    write("agent_config", "agent.toml", without_comment_lines(agent))
    # "a `#` right before the key": uncomment the example sources.
    enabled = re.sub(r"(?m)^#(\[\[sources\]\]|[a-z_]+ = )", r"\1", agent)
    write("agent_config", "agent-all-sources.toml", without_comment_lines(enabled))
    write("agent_config", "edge-bad-tenant.toml",
          '[identity]\ntenant = "Lyon!"\ngateway = "gw-1"\nsigning_key = "k"\n')


def csv_import():
    """`batches.csv`, NUL, `readings.csv`, as `beffroi export` writes them."""
    crlf = lambda rows: "".join(",".join(r) + "\r\n" for r in rows)
    batches = crlf([["gateway", "seq", "key_id", "signature", "received_at", "readings"],
                    ["gw-1", "1", "ed25519-56475aa75463474c", "ab" * 64,
                     "2026-11-23T02:27:14.000123Z", "3"],
                    ["gw-1", "2", "ed25519-56475aa75463474c", "cd" * 64,
                     "2026-11-23T02:28:14.000000Z", "1"]])
    readings = crlf([["gateway", "seq", "sensor", "metric", "unit", "time", "type", "value"],
                     ["gw-1", "1", "s1", "air.pm25", "ug/m3", "2026-11-23T02:27:13.000000Z",
                      "number", "12.5"],
                     ["gw-1", "1", "s1", "parking.occupied", "", "2026-11-23T02:27:13.000000Z",
                      "boolean", "true"],
                     ["gw-1", "1", "s2", "device.status", "", "2026-11-23T02:27:13.500000Z",
                      "string", '"door ""open"", then\r\nclosed"'],
                     ["gw-1", "2", "s1", "air.pm25", "ug/m3", "2026-11-23T02:28:13.000000Z",
                      "number", "1e-7"]])
    write("csv_import", "export", batches + "\0" + readings)
    write("csv_import", "edge-lf-only", (batches + "\0" + readings).replace("\r\n", "\n"))
    write("csv_import", "edge-too-many-readings",
          batches.replace(",3\r\n", ",65537\r\n") + "\0" + readings)


def jsonl():
    """One byte (read size), then JSON lines: Beffroi readings, SenML records and packs."""
    lines = [
        '{"sensor": "s-1", "metric": "air.pm25", "unit": "ug/m3", '
        '"time": "2026-01-01T08:00:00Z", "value": 12.5}',
        '{"sensor": "s-2", "metric": "parking.occupied", "value": true, "time": 1767254400}',
        '{"n": "s-1/air.pm25", "u": "ug/m3", "v": 12.5, "t": 1.7e9}',
        '{"n": "s-3/device.status", "vs": "ok", "t": -5}',
        '[{"bn": "s-1/", "bt": 1.7e9, "bu": "ug/m3", "n": "air.pm25", "v": 1}, '
        '{"n": "air.pm10", "t": 1, "v": 2}, {"n": "air.no2", "vb": false}]',
        "",
        "not json",
    ]
    text = "\n".join(lines) + "\n"
    write("jsonl_senml", "mixed", b"\0" + text.encode())
    write("jsonl_senml", "mixed-7-byte-reads", b"\x07" + text.replace("\n", "\r\n").encode())
    write("jsonl_senml", "edge-no-final-newline", b"\x03" + lines[2].encode())


def api():
    """A request line then a JSON body, for each route that takes one."""
    ring = [[4.83, 45.76], [4.84, 45.76], [4.84, 45.77], [4.83, 45.77], [4.83, 45.76]]
    requests = {
        "zone": ("PUT /api/v1/zones/centre", {"name": "Centre", "geometry": {
            "type": "Polygon", "coordinates": [ring]}}),
        "zone-multi": ("PUT /api/v1/zones/rives", {"name": "Rives", "geometry": {
            "type": "MultiPolygon", "coordinates": [[ring], [ring]]}}),
        "sensor": ("PUT /api/v1/sensors/s-1", {"kind": "air", "unit": "ug/m3", "lat": 45.76,
                                               "lon": 4.83, "zone": "centre",
                                               "tags": ["air-quality"]}),
        "gateway": ("POST /api/v1/gateways", {"id": "gw-1", "ttl_s": 3600}),
        "partner": ("POST /api/v1/partners", {"id": "acme", "name": "ACME Transport"}),
        "retention": ("PUT /api/v1/retention/raw", {"raw_days": 30, "aggregate_days": 365}),
        "alarm-rule": ("POST /api/v1/alarm-rules", {
            "name": "PM2.5 high", "severity": "warning",
            "condition": {"kind": "threshold", "metric": "air.pm25", "comparison": "above",
                          "value": 50}}),
        "alarm-rule-gap": ("POST /api/v1/alarm-rules", {"name": "gap", "severity": "critical",
                                                         "condition": {"kind": "spool_gap"}}),
        "alarm-ack": ("POST /api/v1/alarms/1/acknowledge", {"note": "on it"}),
        "agreement": ("POST /api/v1/agreements", {
            "id": "acme-air", "grantee": "acme", "state": "active",
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2027-01-01T00:00:00Z",
            "purposes": ["research", "open_data"], "action": "read_aggregate",
            "target": {"metrics": ["air.*"]}, "min_bucket_s": 3600,
            "functions": ["avg", "count", "sum"], "k": 3, "spatial_level": "zone",
            "pseudonymise": False, "embargo_s": 0}),
        "agreement-state": ("POST /api/v1/agreements/acme-air/state", {"state": "suspended"}),
        "readings-query": ("GET /api/v1/readings?sensor=s-1&metric=air.pm25&limit=10", None),
    }
    for name, (line, body) in requests.items():
        text = line + "\n" + ("" if body is None else json.dumps(body))
        write("api_json", name, text)
    write("api_json", "edge-not-json", "POST /api/v1/partners\n{\"id\": \"acme\",")
    write("api_json", "edge-deep-nesting", "PUT /api/v1/zones/deep\n" + "[" * 200 + "]" * 200)


if __name__ == "__main__":
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    protocol()
    mqtt()
    configs()
    csv_import()
    jsonl()
    api()
    for target in sorted(CORPUS.iterdir()):
        files = list(target.iterdir())
        print(f"{target.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
