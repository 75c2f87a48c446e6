"""Tests of bench/render.py on records shaped like the benchmarks' (tests/run runs them):
the budgets table judges each figure, the plots are written, and a file that is not a record
stops the rendering instead of leaving a gap in the report."""

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import render  # noqa: E402


def record(bench, context, figures, series=()):
    return {
        "bench": bench,
        "context": context,
        "at": "2026-12-05T05:00:00.000000Z",
        "figures": figures,
        "series": list(series),
    }


def figure(name, value, unit, budget=None, baseline=None):
    out = {"name": name, "value": value, "unit": unit}
    if budget:
        out["budget"] = list(budget)
    if baseline:
        out["baseline"] = {"name": baseline[0], "value": baseline[1]}
    return out


class RenderTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.results = Path(self.dir.name) / "results"
        self.out = Path(self.dir.name) / "out"
        self.results.mkdir()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, content):
        (self.results / f"{name}.json").write_text(json.dumps(content))

    def live(self, rate, p99):
        return record(
            "live",
            f"SQLite, {rate} readings/s",
            [
                figure("offered rate", rate, "readings/s"),
                figure("latency [zone views] clients connected", 10, "clients"),
                figure("latency [zone views] publish → frame p50", 2.0, "ms", ("at_most", 5.0)),
                figure("latency [zone views] publish → frame p99", p99, "ms", ("at_most", 25.0)),
                figure("latency [zone views] publish → frame max", 40.0, "ms"),
            ],
        )

    def test_budgets_are_judged_and_plots_written(self):
        self.write(
            "ingest-sqlite",
            record(
                "ingest",
                "SQLite",
                [
                    figure(
                        "batched committed",
                        150_000,
                        "readings/s",
                        ("at_least", 250_000),
                        ("Mosquitto + Python COPY", 60_000),
                    ),
                    figure("resends", 0, "batches"),
                ],
            ),
        )
        self.write("live-1000", self.live(1000, 9.0))
        self.write("live-20000", self.live(20000, 31.0))
        self.write(
            "soak",
            record(
                "soak",
                "SQLite",
                [figure("RSS growth", 0.4, "MiB/h", ("at_most", 5.0))],
                [{"name": "RSS", "x_unit": "s", "y_unit": "B", "points": [[0, 1e8], [10, 1.01e8]]}],
            ),
        )
        render.render(self.results, self.out)
        report = (self.out / "README.md").read_text()
        glance = report.split("## Budgets at a glance")[1].split("\n## ")[0]
        self.assertIn("| ingest-sqlite | batched committed | 150\u202f000 readings/s | ≥ 250\u202f000 readings/s | **FAIL** |", glance)
        self.assertIn("Mosquitto + Python COPY: 60\u202f000 readings/s | 2.50× |", glance)
        self.assertIn("| live-1000 | latency [zone views] publish → frame p99 | 9.00 ms | ≤ 25.0 ms | PASS |", glance)
        self.assertIn("| live-20000 | latency [zone views] publish → frame p99 | 31.0 ms | ≤ 25.0 ms | **FAIL** |", glance)
        self.assertNotIn("resends", glance, "a figure without a budget is not in the summary")
        for png in ("live-latency-by-rate.png", "ingest-sqlite-baselines.png", "soak-series.png"):
            self.assertTrue((self.out / png).stat().st_size > 1000, png)
            self.assertIn(f"]({png})", report)
        self.assertLess(report.index("## Ingest"), report.index("## Latency"))

    def test_a_file_that_is_not_a_record_stops_the_rendering(self):
        self.write("broken", {"bench": "gate", "figures": []})
        with self.assertRaises(SystemExit) as stopped:
            render.render(self.results, self.out)
        self.assertIn("no 'context'", str(stopped.exception))

    def test_no_records_is_an_error(self):
        with self.assertRaises(SystemExit):
            render.render(self.results, self.out)


if __name__ == "__main__":
    unittest.main()
