"""What a probe leaves a lab: a binding override to run with, the whole table for machines, a short report for
people, and the table on the console.

The override file holds only what the SUT's messages decided against the harness's reading (status inferred),
each with the capture it was inferred from, as dotted keys: `load_binding(path)` reads it, and so does a
profile's `binding:` section. Ambiguous and undecided parameters are left out on purpose: running with a guess
would hide the question the probe could not answer.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import yaml

from conformance.probe.offline import AMBIGUOUS, CONTRADICTED, INFERRED, ProbeResult

OVERRIDE_FILE, JSON_FILE, REPORT_FILE = "binding-override.yaml", "probe.json", "report.md"


def probe_folder(reports: str | Path = "reports") -> Path:
    """reports/probe-<UTC timestamp>/ (not made yet)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(reports) / f"probe-{stamp}"


def write_outputs(result: ProbeResult, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"override": folder / OVERRIDE_FILE, "json": folder / JSON_FILE, "report": folder / REPORT_FILE}
    header = (
        "# The binding the probe inferred for this SUT (best-conformance probe): every value its messages decided\n"
        "# against the harness's reading. Name this file as a profile's `binding:` (or paste its entries there),\n"
        "# or give it to --binding (keys, vectors, dissect).\n"
    )
    body = (
        yaml.safe_dump(result.overrides(), sort_keys=False, allow_unicode=True, width=1000)
        if result.differences
        else "{}\n"
    )
    paths["override"].write_text(header + body, encoding="utf-8")
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    paths["report"].write_text(markdown(result), encoding="utf-8")
    return paths


def _where(evidence: dict[str, Any] | None) -> str:
    if not evidence:
        return ""
    return f"frame {evidence['frame']} of {Path(evidence['pcap']).name} ({evidence['direction']})"


def markdown(result: ProbeResult) -> str:
    lines = ["# Probe: the binding the SUT speaks", ""]
    if result.live:
        live = result.live
        lines += [
            f"Live: {live['sessions']} session(s), {len(live['attempts'])} message(s) tried, {live['seconds']} s.",
            "",
        ]
    lines.append(
        f"{result.sut_messages} message(s) from the SUT, {result.deciding_messages} protected message(s) deciding, "
        f"{result.bindings_tried} binding(s) tried."
    )
    lines.append("")
    lines += [f"Note: {note}" for note in result.notes] + ([""] if result.notes else [])
    if not result.consistent:
        lines += ["**No consistent binding**: these messages contradict every candidate.", ""]
        lines += [f"- {_where(c)}: {c['what']} (sha256 {c['message_sha256']})" for c in result.contradictions]
        lines += [
            f"- {f.key}: {_where(f.evidence)}: {f.evidence['what'] if f.evidence else ''}"
            for f in result.findings.values()
            if f.status == CONTRADICTED and f.evidence
        ]
        lines.append("")
    if result.differences:
        lines += ["## Differences from the harness's binding", ""]
        for f in result.differences:
            lines.append(f"- `{f.key}`: the SUT uses {f.value!r}, the harness {f.base!r} ({_where(f.evidence)})")
        lines.append("")
    elif result.consistent:
        lines += ["No difference from the harness's binding.", ""]
    ambiguous = [f for f in result.findings.values() if f.status == AMBIGUOUS]
    if ambiguous:
        lines += ["## Ambiguous", ""]
        lines += [f"- `{f.key}`: {', '.join(repr(v) for v in f.values)} all fit" for f in ambiguous]
        lines.append("")
    lines += ["## Every searched parameter", "", "| parameter | status | SUT value | harness value | decided by |"]
    lines.append("|---|---|---|---|---|")
    for f in result.findings.values():
        value = repr(f.value) if f.value is not None else ", ".join(repr(v) for v in f.values) or "-"
        lines.append(f"| `{f.key}` | {f.status} | {value} | {f.base!r} | {_where(f.evidence) or f.reason} |")
    return "\n".join(lines) + "\n"


def print_table(result: ProbeResult, console: Any) -> None:
    from rich.table import Table

    title = "Probe: " + (
        f"{len(result.differences)} difference(s) from the harness's binding"
        if result.consistent
        else "no consistent binding"
    )
    table = Table(title=title, title_justify="left")
    for column in ("parameter", "status", "SUT value", "harness value", "decided by"):
        table.add_column(column, overflow="fold")
    styles = {INFERRED: "bold yellow", CONTRADICTED: "bold red", AMBIGUOUS: "magenta"}
    for f in result.findings.values():
        value = json.dumps(f.value) if f.value is not None else ", ".join(json.dumps(v) for v in f.values) or "-"
        table.add_row(
            f.key, f.status, value, json.dumps(f.base), _where(f.evidence) or f.reason, style=styles.get(f.status)
        )
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    for c in result.contradictions:
        console.print(f"[red]contradicts every candidate[/red]: {_where(c)}: {c['what']}")
    if result.live:
        live = result.live
        console.print(
            f"live: {live['sessions']} session(s), {len(live['attempts'])} message(s) tried, {live['seconds']} s"
        )
