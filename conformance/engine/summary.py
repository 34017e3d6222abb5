"""The run's one-file HTML summary: SUT, totals, and every case with its verdict, reason and evidence.

Self-contained (no scripts, no network) so it opens from disk; the certification-grade report is #7's work.
"""

from __future__ import annotations

import datetime
import html
from collections import Counter
from pathlib import Path
from typing import Any

from conformance.engine.results import read_results

_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#8250df", "warn": "#bf8700", "inconclusive": "#9a6700"}


def write_summary(run_dir: Path, profile: Any, started: datetime.datetime) -> Path | None:
    results_path = run_dir / "results.jsonl"
    if not results_path.exists():
        return None
    results = sorted(read_results(results_path), key=lambda r: r["case"])
    counts = Counter(r["verdict"] for r in results)
    sut = profile.sut
    rows = []
    for r in results:
        colour = _COLOURS.get(r["verdict"], "#57606a")
        dependent = ", ".join(d["key"] for d in r.get("binding_dependent") or [])
        pcap = html.escape(Path(r["pcap"]).name) if r.get("pcap") else ""
        link = f'<a href="pcaps/{pcap}">{pcap}</a>' if pcap else ""
        rows.append(
            "<tr>"
            f"<td>{html.escape(r['case'])}</td><td>{html.escape(r['title'])}</td><td>{r['level']}</td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(r['verdict'])}</td>"
            f"<td>{html.escape(r.get('reason') or '')}</td><td>{html.escape(', '.join(r['refs']))}</td>"
            f"<td>{html.escape(dependent)}</td>"
            f"<td>{link}</td>"
            "</tr>"
        )
    totals = " · ".join(f"{html.escape(v)}: {n}" for v, n in sorted(counts.items()))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BEST conformance: {html.escape(sut.product)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;font-size:13px}}th{{background:#f6f8fa}}</style>
</head><body>
<h1>BEST conformance run</h1>
<p>SUT: {html.escape(sut.vendor)} {html.escape(sut.product)} {html.escape(sut.version)} ({html.escape(sut.kind)})<br>
Started {started.isoformat(timespec="seconds")}; {len(results)} cases — {totals}</p>
<p>Column "rests on" lists binding values no spec clause confirms: such a verdict holds for that binding.</p>
<table id="verdicts"><tr><th>case</th><th>title</th><th>level</th><th>verdict</th><th>reason</th><th>refs</th>
<th>rests on</th><th>evidence</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    out = run_dir / "summary.html"
    out.write_text(page, encoding="utf-8")
    return out
