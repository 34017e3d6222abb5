"""report.html: the run's compliance report as one self-contained page, rendered from compliance.json.

It reads only what the run folder holds (compliance.json, traces/<CASE>.json) and writes nothing that varies
between renderings (no clock, no random ids), so `best-conformance report` reproduces it byte for byte and the
signature over the run folder, made afterwards, stays valid. No scripts and no network: it opens from disk, and
every evidence link is relative to the run folder.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2

from conformance.report.ladder import build_ladder

VERDICTS = ("pass", "fail", "warn", "inconclusive", "error", "not run", "not applicable", "skipped")
REPORT = "report.html"


class ReportError(Exception):
    """The run folder cannot be reported on; the message says why in one line."""


def write_report(run_dir: str | Path) -> Path:
    """Render RUN_DIR/report.html from RUN_DIR/compliance.json and its traces; returns the file."""
    run_dir = Path(run_dir)
    page = render_report(load_run(run_dir), run_dir)
    out = run_dir / REPORT
    out.write_text(page, encoding="utf-8", newline="\n")
    return out


def load_run(run_dir: Path) -> dict[str, Any]:
    """The run's compliance document, or a ReportError naming what is missing and what to do."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder; give a run folder such as reports/<run-id>/")
    if not (run_dir / "compliance.json").is_file():
        raise ReportError(
            f"{run_dir}: no compliance.json; give a run folder written by `best-conformance run` (reports/<run-id>/)"
        )
    from conformance.report.compliance import load_compliance

    try:
        return load_compliance(run_dir / "compliance.json")
    except (OSError, ValueError) as exc:  # ComplianceError is a ValueError that names the file
        raise ReportError(str(exc)) from None


def render_report(doc: dict[str, Any], run_dir: Path) -> str:
    kind = doc["sut"]["kind"]
    cases = [_case_view(case, run_dir, kind) for case in doc["cases"]]
    binding = sorted(doc.get("binding") or [], key=lambda b: b["key"])
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            doc=doc,
            cases=cases,
            ran={case["id"] for case in cases},
            totals=_ordered_totals(doc.get("totals") or {}),
            requirements=sorted(doc.get("requirements") or [], key=lambda r: r["id"]),
            binding=binding,
            assumed=sum(1 for b in binding if b.get("basis") != "spec"),
            pics=flatten(doc.get("pics") or {}),
        )
    )


def environment() -> jinja2.Environment:
    """The templates shipped in conformance/report/templates, HTML-escaped, failing loudly on a missing name."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pretty=pretty, compact=compact, when=when, href=href)
    return env


def _case_view(case: dict[str, Any], run_dir: Path, kind: str) -> dict[str, Any]:
    trace, trace_note = _trace(case, run_dir)
    ladder = build_ladder(trace, kind)
    if trace_note:
        ladder.notes.insert(0, trace_note)
    return {**case, "ladder": ladder}


def _trace(case: dict[str, Any], run_dir: Path) -> tuple[list[Any], str]:
    """The case's decoded messages (traces/<CASE>.json, or the trace its evidence names) and a note if none."""
    named = [e["path"] for e in case.get("evidence") or [] if e.get("kind") == "trace"]
    path = run_dir / (named[0] if named else f"traces/{case['id']}.json")
    if not path.is_file():
        return [], ""
    try:
        trace = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], f"{path.name} unreadable: {exc}"
    return (trace, "") if isinstance(trace, list) else ([], f"{path.name} is not a list of messages")


def _ordered_totals(totals: dict[str, int]) -> list[tuple[str, int]]:
    known = [(v, totals[v]) for v in VERDICTS if totals.get(v)]
    return known + sorted((v, n) for v, n in totals.items() if v not in VERDICTS and n)


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested PICS as (dotted.key, value) rows."""
    if isinstance(tree, dict) and tree:
        rows: list[tuple[str, Any]] = []
        for key in sorted(tree):
            rows += flatten(tree[key], f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(tree, list):
        return [(prefix, ", ".join(str(item) for item in tree) or "none")]
    return [(prefix, tree)]


def pretty(value: Any) -> str:
    """Expected/observed values as a reader wants them: text as is, structures as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False)


def compact(value: Any) -> str:
    """A binding value on one line: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def when(value: Any) -> str:
    """A time as ISO 8601 UTC to the second, from epoch seconds or an ISO string."""
    if isinstance(value, int | float):
        return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(timespec="seconds")
    return str(value or "")


def href(path: str) -> str:
    """A relative link to a file of the run folder (spaces and the like escaped, slashes kept)."""
    return quote(str(path), safe="/")
