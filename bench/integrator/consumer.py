#!/usr/bin/env python3
"""The integrator baseline of `beffroi bench ingest`.

What an integrator typically writes instead of Beffroi: a Mosquitto with no TLS, and a small
Python consumer that subscribes (QoS 1, clean session), decodes JSON messages and writes them
into the database in batches. No signatures, no duplicate checks, no acknowledgement of what
was written: what Mosquitto drops past its queue limit, or what sits in the buffer when the
consumer dies, is gone.

A message is one reading or a JSON list of readings, each
`{"sensor": …, "metric": …, "unit": …, "time": RFC 3339, "value": number}`. Rows go into the
store's own `readings` table (series ids from its `series` table, the tenant's integer key):
PostgreSQL (and TimescaleDB, the same table) by `COPY`, SQLite by `executemany` `INSERT`s in
transactions with WAL and `synchronous = FULL`, like the store. A commit happens every
`--commit-rows` rows or `--commit-ms` milliseconds, whichever comes first.

Standard output: JSON lines, `{"ready": true}` once subscribed, then every `--report-ms`
`{"messages": n, "received": readings, "written": readings committed}`; the last line is
printed after the final commit, when standard input closes.
"""

import argparse
import json
import sqlite3
import sys
import threading
import time
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import psycopg

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Postgres:
    """COPY into the readings table; times go as text, parsed by the server."""

    def __init__(self, url, tenant):
        self.conn = psycopg.connect(url)
        self.tenant, self.next_id = tenant_and_ids(self.conn, tenant, "%s")

    def series(self, tenant, sensor, metric, unit):
        args = (tenant, sensor, metric, unit)
        self.conn.execute(
            "INSERT INTO series (tenant, sensor, metric, unit) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", args)
        (series,) = first_row(self.conn.execute(
            "SELECT id FROM series WHERE tenant = %s AND sensor = %s AND metric = %s "
            "AND unit = %s", args))
        self.conn.commit()
        return series

    @staticmethod
    def time(text):
        return text

    def write(self, rows):
        with self.conn.cursor() as cur:
            with cur.copy("COPY readings (time, id, tenant, series, value_num) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        self.conn.commit()


class Sqlite:
    """executemany INSERTs in one transaction; times as microseconds, like the store."""

    def __init__(self, path, tenant):
        self.conn = sqlite3.connect(path, timeout=30)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.tenant, self.next_id = tenant_and_ids(self.conn, tenant, "?")

    def series(self, tenant, sensor, metric, unit):
        args = (tenant, sensor, metric, unit)
        with self.conn:
            self.conn.execute(
                "INSERT INTO series (tenant, sensor, metric, unit) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", args)
            (series,) = first_row(self.conn.execute(
                "SELECT id FROM series WHERE tenant = ? AND sensor = ? AND metric = ? "
                "AND unit = ?", args))
        return series

    @staticmethod
    def time(text):
        return (datetime.fromisoformat(text) - EPOCH) // ONE_MICROSECOND

    def write(self, rows):
        with self.conn:
            self.conn.executemany(
                "INSERT INTO readings (time, id, tenant, series, value_num) "
                "VALUES (?, ?, ?, ?, ?)", rows)


ONE_MICROSECOND = datetime.resolution


def tenant_and_ids(conn, tenant, param):
    """The tenant's key, and the first of the ids this consumer counts down from: below every
    id in the table (the store's are positive, its raw bulk-load baseline's negative), as
    readings.id is SQLite's primary key."""
    (key,) = first_row(conn.execute(f"SELECT key FROM tenants WHERE id = {param}", (tenant,)))
    (lowest,) = first_row(conn.execute("SELECT min(id) FROM readings"))
    return key, min(lowest or 0, 0) - 1


def first_row(cursor):
    row = cursor.fetchone()
    if row is None:
        sys.exit("consumer: not found in the database (tenant or series)")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="Mosquitto on 127.0.0.1")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--tenant", required=True, help="the tenant (id) the rows belong to")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--postgres", help="PostgreSQL URL")
    target.add_argument("--sqlite", help="SQLite database file")
    parser.add_argument("--commit-rows", type=int, default=10000)
    parser.add_argument("--commit-ms", type=int, default=100)
    parser.add_argument("--report-ms", type=int, default=20)
    args = parser.parse_args()

    db = Postgres(args.postgres, args.tenant) if args.postgres else Sqlite(args.sqlite, args.tenant)
    series = {}
    buffer = []
    counts = {"messages": 0, "received": 0, "written": 0}

    def on_message(_client, _userdata, message):
        data = json.loads(message.payload)
        readings = data if isinstance(data, list) else [data]
        buffer.extend(readings)
        counts["messages"] += 1
        counts["received"] += len(readings)

    def flush():
        rows = []
        for r in buffer:
            key = (r["sensor"], r["metric"], r["unit"])
            if key not in series:
                series[key] = db.series(args.tenant, *key)
            rows.append((db.time(r["time"]), db.next_id, db.tenant, series[key], r["value"]))
            db.next_id -= 1
        db.write(rows)
        counts["written"] += len(rows)
        buffer.clear()

    def report():
        print(json.dumps(counts), flush=True)

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="integrator",
                         clean_session=True)
    client.on_message = on_message
    client.on_subscribe = lambda *_: print(json.dumps({"ready": True}), flush=True)
    client.connect("127.0.0.1", args.port)
    client.subscribe(args.topic, qos=1)

    last_commit = last_report = time.monotonic()
    while not stop.is_set():
        client.loop(timeout=0.01)
        now = time.monotonic()
        if len(buffer) >= args.commit_rows or (
                buffer and now - last_commit >= args.commit_ms / 1000):
            flush()
            last_commit = now
        if now - last_report >= args.report_ms / 1000:
            report()
            last_report = now
    if buffer:
        flush()
    report()
    client.disconnect()


if __name__ == "__main__":
    main()
