"""Renders the benchmark report: docs/benchmarks/README.md and its PNG plots, from the JSON
records the benchmarks wrote with --json (beffroi-bench-record: bench, context, at, figures
with unit, budget and same-run baseline, series). bench/report runs the benchmarks and then
this; run it alone to re-render from the records already there:

    python3 bench/render.py docs/benchmarks/results docs/benchmarks

Nothing here measures or edits a figure: every number in the report is one a benchmark
printed, and a record this script cannot read is an error, not a gap.
"""

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# The order of the report's sections, and their titles.
SECTIONS = [
    ("ingest", "Ingest end to end, against raw COPY and the integrator baseline"),
    ("live", "Latency publish → websocket frame, and fan-out"),
    ("gate", "Idle mutual-TLS gateways held by one node"),
    ("agent", "Agent footprint against ThingsBoard IoT Gateway"),
    ("soak", "Soak"),
]
BUDGET_WORDS = {"at_least": "≥", "at_most": "≤"}
# Units shown scaled: records keep bytes, readers read megabytes.
SCALED = {"B": (1e6, "MB"), "B/s": (1e3, "kB/s")}


def scale(unit):
    """(divisor, shown unit) for `unit`."""
    return SCALED.get(unit, (1.0, unit))


def load(results):
    """Every record in `results`, sorted by bench then file name."""
    records = []
    for path in sorted(Path(results).glob("*.json")):
        record = json.loads(path.read_text())
        for key in ("bench", "context", "at", "figures", "series"):
            if key not in record:
                raise SystemExit(f"{path}: not a benchmark record (no {key!r})")
        record["file"] = path.stem
        records.append(record)
    return records


def number(value, unit=""):
    """A figure as the tables print it."""
    if unit == "bool":
        return "yes" if value else "no"
    divisor, unit = scale(unit)
    value = value / divisor
    if abs(value) >= 1000:
        text = f"{value:,.0f}".replace(",", "\u202f")
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def verdict(figure):
    """PASS, FAIL or empty, against the figure's budget."""
    budget = figure.get("budget")
    if not budget:
        return ""
    goal, limit = budget
    ok = figure["value"] >= limit if goal == "at_least" else figure["value"] <= limit
    return "PASS" if ok else "**FAIL**"


def ratio(figure):
    baseline = figure.get("baseline")
    if not baseline or not baseline["value"]:
        return ""
    return f"{figure['value'] / baseline['value']:.2f}×"


def figure_row(figure):
    budget = figure.get("budget")
    baseline = figure.get("baseline")
    unit = figure["unit"]
    return "| {} | {} | {} | {} | {} | {} |".format(
        figure["name"],
        number(figure["value"], unit),
        f"{BUDGET_WORDS[budget[0]]} {number(budget[1], unit)}" if budget else "",
        verdict(figure),
        f"{baseline['name']}: {number(baseline['value'], unit)}" if baseline else "",
        ratio(figure),
    )


TABLE_HEAD = [
    "| figure | value | budget | verdict | baseline (same run) | value / baseline |",
    "|---|---|---|---|---|---|",
]


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def plot_series(record, out):
    """One PNG per record with series: a panel per series, sharing nothing but the file."""
    series = record["series"]
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.6 * len(series)), squeeze=False)
    for axis, one in zip(axes[:, 0], series):
        divisor, y_unit = scale(one["y_unit"])
        xs = [p[0] for p in one["points"]]
        ys = [p[1] / divisor for p in one["points"]]
        axis.plot(xs, ys, marker="." if len(xs) < 60 else None, linewidth=1.2)
        axis.set_title(one["name"], fontsize=10)
        axis.set_xlabel(one["x_unit"], fontsize=8)
        axis.set_ylabel(y_unit, fontsize=8)
        axis.grid(True, alpha=0.3)
        if ys and min(ys) >= 0:
            axis.set_ylim(bottom=0)
    fig.suptitle(f"{record['bench']}: {record['context']}", fontsize=10)
    fig.tight_layout()
    name = f"{slug(record['file'])}-series.png"
    fig.savefig(Path(out) / name, dpi=90)
    plt.close(fig)
    return name


def plot_baselines(record, out):
    """Figures that have a same-run baseline, as paired bars, one panel per unit."""
    by_unit = defaultdict(list)
    for figure in record["figures"]:
        if figure.get("baseline"):
            by_unit[figure["unit"]].append(figure)
    if not by_unit:
        return None
    fig, axes = plt.subplots(
        len(by_unit), 1, figsize=(9, 0.5 + 0.55 * sum(len(f) for f in by_unit.values()) + len(by_unit)),
        squeeze=False,
    )
    for axis, (unit, figures) in zip(axes[:, 0], by_unit.items()):
        divisor, unit = scale(unit)
        names = [f["name"] for f in figures]
        ys = range(len(figures))
        axis.barh(
            [y + 0.2 for y in ys], [f["value"] / divisor for f in figures], height=0.4, label="Beffroi"
        )
        axis.barh(
            [y - 0.2 for y in ys],
            [f["baseline"]["value"] / divisor for f in figures],
            height=0.4,
            label="baseline (same run)",
        )
        for y, f in zip(ys, figures):
            if f.get("budget"):
                limit = f["budget"][1] / divisor
                axis.plot([limit] * 2, [y - 0.45, y + 0.45], color="black", linewidth=1.5)
        axis.set_yticks(list(ys))
        axis.set_yticklabels(names, fontsize=7)
        axis.invert_yaxis()
        axis.set_xlabel(unit, fontsize=8)
        axis.grid(True, axis="x", alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{record['bench']}: {record['context']} (black tick: budget)", fontsize=10)
    fig.tight_layout()
    name = f"{slug(record['file'])}-baselines.png"
    fig.savefig(Path(out) / name, dpi=90)
    plt.close(fig)
    return name


# The latency each kind of live group is judged by (bench live's record): per value for the
# latency scenario's groups, per frame (its newest item) for the fan-out's.
LIVE_CURVE = re.compile(
    r"^((?:latency \[.+\]) publish → frame|(?:fan-out \[.+\]) publish → newest of frame) (p50|p99|max)$"
)


def live_curves(records, out):
    """bench live across runs: publish → frame p50/p99/max against the offered rate, one line
    per client group, with the budgets."""
    curves = defaultdict(list)
    for record in records:
        figures = {f["name"]: f["value"] for f in record["figures"]}
        rate = figures.get("offered rate")
        if rate is None:
            continue
        for name, value in figures.items():
            match = LIVE_CURVE.match(name)
            if match:
                group = match.group(1)
                clients = figures.get(group.split("] ")[0] + "] clients connected")
                label = f"{group}, {clients:.0f} clients" if clients is not None else group
                curves[(label, match.group(2))].append((rate, value))
    if not curves:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
    for axis, stat in zip(axes, ("p50", "p99", "max")):
        for (group, s), points in sorted(curves.items()):
            if s != stat:
                continue
            points.sort()
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=group)
        if stat == "p50":
            axis.axhline(5, color="black", linestyle="--", linewidth=1, label="budget p50 ≤ 5 ms")
        if stat == "p99":
            axis.axhline(25, color="black", linestyle="--", linewidth=1, label="budget p99 ≤ 25 ms")
            axis.axhline(50, color="grey", linestyle=":", linewidth=1, label="fan-out p99 ≤ 50 ms")
        axis.set_title(f"publish → frame {stat}", fontsize=10)
        axis.set_xlabel("readings/s", fontsize=8)
        axis.set_ylabel("ms", fontsize=8)
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    name = "live-latency-by-rate.png"
    fig.savefig(Path(out) / name, dpi=90)
    plt.close(fig)
    return name


def render(results, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    records = load(results)
    if not records:
        raise SystemExit(f"no records in {results}: run bench/report first")
    lines = [
        "# Benchmark report",
        "",
        "Generated by `bench/report` from the records in [`results/`](results/) (one JSON file",
        "per benchmark run, with the run's printed output beside it as `.log`). Every figure is",
        "what a benchmark printed; budgets are DESIGN.md's, baselines were measured in the same",
        "run. The narrative, the history and the notes on noise are in",
        "[`../benchmarks.md`](../benchmarks.md). Runs:",
        "",
    ]
    for record in records:
        lines.append(f"- `{record['file']}`: {record['bench']}, {record['context']} ({record['at'][:19]}Z)")
    lines += ["", "## Budgets at a glance", "", "| run | " + TABLE_HEAD[0][2:], "|---" + TABLE_HEAD[1]]
    for record in records:
        for figure in record["figures"]:
            if figure.get("budget"):
                lines.append(f"| {record['file']} " + figure_row(figure))
    known = {bench for bench, _ in SECTIONS}
    sections = SECTIONS + [(b, b) for b in sorted({r["bench"] for r in records} - known)]
    for bench, title in sections:
        mine = [r for r in records if r["bench"] == bench]
        if not mine:
            continue
        lines += ["", f"## {title}", ""]
        if bench == "live":
            curve = live_curves(mine, out)
            if curve:
                lines += [f"![publish → frame latency by rate]({curve})", ""]
        for record in mine:
            lines += [f"### {record['context']}", "", f"`{record['file']}`, {record['at'][:19]}Z", ""]
            for plot in (plot_baselines(record, out), plot_series(record, out)):
                if plot:
                    lines += [f"![{record['file']}]({plot})", ""]
            lines += TABLE_HEAD + [figure_row(f) for f in record["figures"]]
            lines.append("")
    (out / "README.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {out / 'README.md'} and {len(list(out.glob('*.png')))} plots from {len(records)} records")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: render.py RESULTS_DIR OUT_DIR")
    render(sys.argv[1], sys.argv[2])
