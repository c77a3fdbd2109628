"""Regenerate the README's performance table from ``benchmarks/results/*.json``.

    python benchmarks/readme_table.py        # writes benchmarks/results/README_TABLE.md

One table per server: for each benchmark the suite recorded, the raw ASGI app's
figure and, for achannels' native consumer, its class consumer and Channels 4.3, the
ratio to raw measured side by side in the same run (fan-out and 10k: server CPU per
delivery and p50; echo: messages/s and CPU per message; churn: connections/s; idle:
KB and gc objects per connection). Below the tables, the command, date and load of
each result, so the README says where its numbers came from. Nothing is measured
here: run ``python benchmarks/suite.py`` (or ``nox -s bench``) first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")
APPS = ("native", "class", "channels")
Row = dict[str, Any]


def _load(name: str) -> Row | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    record: Row = json.loads(path.read_text())
    return record


def _find(summary: list[Row], server: str, case: str, app: str) -> Row | None:
    for row in summary:
        if (row["server"], row["case"], row["app"]) == (server, case, app):
            return row
    return None


def _cases(summary: list[Row]) -> list[str]:
    cases: list[str] = []
    for row in summary:
        if row["case"] not in cases:
            cases.append(row["case"])
    return cases


Cell = Callable[[Row | None, Row | None], str]


def _ratio(key: str, *, higher_is_better: bool, unit: str = "x") -> Cell:
    """A ratio to raw where above 1 means worse for latency/CPU, better for throughput."""

    def cell(mine: Row | None, raw: Row | None) -> str:
        if not mine or not raw or not mine.get(key) or not raw.get(key):
            return "n/a"
        if higher_is_better:
            return f"{mine[key] / raw[key]:.0%}"
        return f"{mine[key] / raw[key]:.2f}{unit}"

    return cell


def _minus(key: str, spec: str) -> Cell:
    def cell(mine: Row | None, raw: Row | None) -> str:
        if not mine or not raw or mine.get(key) is None or raw.get(key) is None:
            return "n/a"
        return format(mine[key] - raw[key], spec)

    return cell


def _value(key: str, spec: str, scale: float = 1.0) -> Callable[[Row | None], str]:
    def cell(raw: Row | None) -> str:
        if not raw or raw.get(key) is None:
            return "n/a"
        return format(raw[key] / scale, spec)

    return cell


#: benchmark -> [(label for a case, raw's figure, the apps' figure vs raw)]
METRICS: dict[str, list[tuple[str, Callable[[Row | None], str], Cell]]] = {
    "echo": [
        ("echo msgs/s (% of raw)", _value("msgs_per_s", ",.0f"),
         _ratio("msgs_per_s", higher_is_better=True)),
        ("echo server CPU µs/msg (x raw)", _value("server_cpu_us_per_msg", ".1f"),
         _ratio("server_cpu_us_per_msg", higher_is_better=False)),
    ],
    "fanout": [
        ("fan-out {case}: p50 ms (x raw)", _value("p50_us", ".1f", 1000),
         _ratio("p50_us", higher_is_better=False)),
        ("fan-out {case}: server CPU µs/delivery (x raw)",
         _value("server_cpu_us_per_delivery", ".1f"),
         _ratio("server_cpu_us_per_delivery", higher_is_better=False)),
    ],
    "churn": [
        ("churn conn/s (% of raw)", _value("connections_per_s", ",.0f"),
         _ratio("connections_per_s", higher_is_better=True)),
        ("churn RSS growth after round 1, KB (+ over raw)",
         _value("rss_growth_after_first_round_kb", "+,.0f"),
         _minus("rss_growth_after_first_round_kb", "+,.0f")),
    ],
    "idle": [
        ("idle KB/connection (+ over raw)", _value("kb_per_connection", ".1f"),
         _minus("kb_per_connection", "+.1f")),
        ("idle gc objects/connection (+ over raw)", _value("gc_objects_per_connection", ".0f"),
         _minus("gc_objects_per_connection", "+.0f")),
    ],
    "tenk": [
        ("{case}: delivery p50 ms (x raw)", _value("p50_us", ".1f", 1000),
         _ratio("p50_us", higher_is_better=False)),
        ("{case}: delivery p99 ms (x raw)", _value("p99_us", ".1f", 1000),
         _ratio("p99_us", higher_is_better=False)),
        ("{case}: server CPU µs/delivery (x raw)", _value("server_cpu_us_per_delivery", ".1f"),
         _ratio("server_cpu_us_per_delivery", higher_is_better=False)),
    ],
}  # fmt: skip


def table(records: dict[str, Row], server: str) -> list[str]:
    lines = [
        f"**{server}**",
        "",
        "| benchmark | raw | achannels native | achannels class | Channels 4.3 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, metrics in METRICS.items():
        record = records.get(name)
        if record is None:
            continue
        summary = record["summary"]
        for case in _cases(summary):
            raw = _find(summary, server, case, "raw")
            if raw is None:
                continue
            for label, raw_cell, app_cell in metrics:
                cells = []
                for app in APPS:
                    mine = _find(summary, server, case, app)
                    cells.append(app_cell(mine, raw) if mine else "-")
                lines.append(
                    f"| {label.format(case=case)} | {raw_cell(raw)} | {' | '.join(cells)} |"
                )
    return lines


def sources(records: dict[str, Row]) -> list[str]:
    lines = ["Sources (`benchmarks/results/`):", ""]
    for name, record in records.items():
        quick = " (quick)" if record.get("quick") else ""
        cpu = record.get("machine", {}).get("cpu", "?")
        tree = record["versions"].get("achannels_tree", "?")
        lines.append(
            f"- `{name}`: `{record['command']}`{quick}, {record['date']}, {cpu} ({tree}), "
            f"load average {record['load_before'][0]} before / {record['load_after'][0]} after; "
            f"achannels served: {record['versions'].get('achannels_served_from', '?')}"
        )
    return lines


def main() -> None:
    records = {n: r for n in [*METRICS, "memory_layer"] if (r := _load(n)) is not None}
    if not records:
        sys.exit(f"no results in {RESULTS}: run python benchmarks/suite.py first")
    out = [
        "<!-- generated by benchmarks/readme_table.py from benchmarks/results/*.json -->",
        "",
        "Raw ASGI app's figure, then each app against raw measured side by side in the same "
        "run: `x raw` above 1.00 means slower or more CPU than raw, `% of raw` below 100% "
        "means fewer per second, `+` is what the app adds. Channels runs on asyncio "
        "servers only. Each result's own Markdown file has every column (and the load "
        "generator's CPU).",
        "",
    ]
    for server in SERVERS:
        lines = table(records, server)
        if len(lines) > 4:
            out += [*lines, ""]
    ceiling = (records.get("tenk") or {}).get("ceiling")
    if ceiling:
        out += ["**Ceiling** (delivery p99 <= 100 ms): most connections / deliveries/s held", ""]
        out += ["| server | app | connections | deliveries/s |", "|---|---|---:|---:|"]
        out += [
            f"| {b['server']} | {b['app']} | {b['connections']:,} | {b['deliveries_per_s']:,.0f} |"
            for b in ceiling[0]["best"]
        ]
        out.append("")
    out += sources(records)
    (RESULTS / "README_TABLE.md").write_text("\n".join(out) + "\n")
    print(f"wrote {RESULTS / 'README_TABLE.md'}")


if __name__ == "__main__":
    main()
