"""load.json and report.html of a load run, from what the locustfile measured (metrics.Collector, merged).

load.json says what the run claims and nothing it cannot back: every count in it is a sum of the time series and
the failures listed by reason (`check` proves it, and load.schema.json describes it). report.html is one
self-contained file: the plots are inline SVG drawn here, no script, no network.
"""

from __future__ import annotations

import datetime
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from conformance.load.metrics import TRANSPORT, VERIFICATION, percentile
from conformance.load.settings import LoadSettings

QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
SCHEMA = "load.schema.json"


def _quantiles(histogram: dict[str, int]) -> dict[str, float | None]:
    return {name: percentile(histogram, q) for name, q in QUANTILES.items()}


def summarise(
    raw: dict[str, Any],
    *,
    settings: LoadSettings,
    profile: Any,
    shipped: str,
    faults: tuple[str, ...],
    requested: dict[str, Any],
    started: float,
    reference_died_at: float | None,
) -> dict[str, Any]:
    """The load.json document of a run."""
    interval = raw["interval"]
    slots = sorted((int(k), v) for k, v in raw["slots"].items())
    first = slots[0][0] if slots else 0
    series = []
    for index, slot in slots:
        sessions = slot.get("sessions_ok", 0)
        series.append(
            {
                "t": round((index - first) * interval, 3),
                "requests": slot.get("requests", 0),
                "sessions_ok": sessions,
                "sessions_failed": slot.get("sessions_failed", 0),
                "verification_failures": slot.get(f"{VERIFICATION}_failures", 0),
                "transport_failures": slot.get(f"{TRANSPORT}_failures", 0),
                "requests_per_s": slot.get("requests", 0) / interval,
                "sessions_per_s": sessions / interval,
                **_quantiles(slot["histogram"]),
            }
        )
    measured = (raw["stopped"] - raw["started"]) if raw.get("started") and raw.get("stopped") else len(slots) * interval
    measured = max(measured, interval) if slots else measured
    kinds = {
        name: {"requests": k["count"], "failures": k["failures"], **_quantiles(k["histogram"])}
        for name, k in sorted(raw["kinds"].items())
    }
    by_reason = []
    for key, entry in raw["failures"].items():
        cls, kind, reason = key.split("|", 2)
        by_reason.append(
            {"class": cls, "kind": kind, "reason": reason, "count": entry["count"], "example": entry["example"]}
        )
    by_reason.sort(key=lambda e: (-e["count"], e["class"], e["kind"], e["reason"]))
    verification = sum(e["count"] for e in by_reason if e["class"] == VERIFICATION)
    transport = sum(e["count"] for e in by_reason if e["class"] == TRANSPORT)
    sessions = raw["sessions"]
    requests = sum(k["requests"] for k in kinds.values())
    failed = verification + transport
    outcome = "pass" if not failed and not sessions["failed"] and (sessions["ok"] or requests) else "fail"
    if reference_died_at is not None:
        outcome = "fail"
    return {
        "command": "best-conformance load",
        "run_id": None,  # set by write_outputs
        "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(timespec="seconds"),
        "profile": shipped,
        "sut": {"kind": profile.sut.kind, "vendor": profile.sut.vendor, "product": profile.sut.product},
        "reference": {"faults": list(faults), "died_at": reference_died_at} if settings.profile != shipped else None,
        "seed": settings.seed,
        "requested": requested,
        "settings": {
            "round_trips": settings.round_trips,
            "think_time_s": settings.think_time,
            "reply_timeout_s": settings.reply_timeout or profile.pixit.reply_timeout,
            "payload_bytes": settings.payload_bytes,
            "weights": settings.weights,
            "user_classes": raw.get("user_classes", []),
        },
        "users": raw.get("users", 0),
        "workers": raw.get("workers", 1),
        "measured_s": round(measured, 3),
        "interval_s": interval,
        "sessions": {
            "ok": sessions["ok"],
            "failed": sessions["failed"],
            "per_second": sessions["ok"] / measured if measured else 0.0,
            **_quantiles(sessions["histogram"]),
        },
        "requests": {"total": requests, "failures": failed, "per_second": requests / measured if measured else 0.0},
        "kinds": kinds,
        "failures": {"verification": verification, "transport": transport, "by_reason": by_reason},
        "series": series,
        "locust": raw.get("locust", {}),
        "outcome": outcome,
        "files": {
            "report": "report.html",
            "locust_html": "locust.html",
            "locust_csv": ["locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv"],
        },
    }


def check(summary: dict[str, Any]) -> list[str]:
    """What in a load.json does not add up (empty: it backs every count it claims)."""
    problems = []
    import jsonschema

    schema = json.loads(resources.files("conformance.load").joinpath(SCHEMA).read_text(encoding="utf-8"))
    problems += [f"schema: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(summary)]
    if problems:
        return problems
    series, kinds, failures = summary["series"], summary["kinds"], summary["failures"]
    sums = {
        "requests.total": (summary["requests"]["total"], sum(p["requests"] for p in series)),
        "sessions.ok": (summary["sessions"]["ok"], sum(p["sessions_ok"] for p in series)),
        "sessions.failed": (summary["sessions"]["failed"], sum(p["sessions_failed"] for p in series)),
        "failures.verification": (failures["verification"], sum(p["verification_failures"] for p in series)),
        "failures.transport": (failures["transport"], sum(p["transport_failures"] for p in series)),
        "requests.failures": (summary["requests"]["failures"], sum(k["failures"] for k in kinds.values())),
        "failures by reason": (
            failures["verification"] + failures["transport"],
            sum(e["count"] for e in failures["by_reason"]),
        ),
        "locust total requests": (
            summary["locust"].get("total_requests", summary["requests"]["total"]),
            summary["requests"]["total"],
        ),
    }
    problems += [
        f"{name}: {claimed} claimed, {counted} counted"
        for name, (claimed, counted) in sums.items()
        if claimed != counted
    ]
    for name, kind in kinds.items():
        values = [kind[q] for q in QUANTILES if kind[q] is not None]
        if values != sorted(values):
            problems.append(f"kinds.{name}: percentiles not in order: {values}")
    if summary["outcome"] == "pass" and (summary["requests"]["failures"] or summary["sessions"]["failed"]):
        problems.append("outcome pass with failures")
    return problems


def write_outputs(folder: Path, raw: dict[str, Any], **context: Any) -> dict[str, Any]:
    """load.json and report.html in the run folder; the summary."""
    summary = summarise(raw, **context)
    summary["run_id"] = folder.name
    (folder / "load.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "report.html").write_text(render(summary), encoding="utf-8")
    return summary


# ---- report.html ---------------------------------------------------------------------------------------------

WIDTH, HEIGHT, PAD = 760, 220, 44


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def chart(series: list[dict[str, Any]], lines: list[tuple[str, str, str]], unit: str) -> str:
    """An inline SVG line chart of `series` over t: one polyline per (field, label, colour)."""
    if not series:
        return '<p class="empty">no data</p>'
    t_max = max(p["t"] for p in series) or 1.0
    values = [p[f] for p in series for f, _, _ in lines if p.get(f) is not None]
    y_max = max(values, default=1.0) * 1.1 or 1.0
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(t: float) -> float:
        return PAD + plot_w * t / t_max

    def y(v: float) -> float:
        return HEIGHT - PAD - plot_h * v / y_max

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">']
    parts.append(f'<rect x="{PAD}" y="{PAD}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>')
    for i in range(5):
        v = y_max * i / 4
        parts.append(f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for i in range(5):
        t = t_max * i / 4
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - PAD + 16}" text-anchor="middle">{t:.0f} s</text>')
    parts.append(f'<text x="8" y="14">{html.escape(unit)}</text>')
    for n, (field, label, colour) in enumerate(lines):
        points = " ".join(f"{x(p['t']):.1f},{y(p[field]):.1f}" for p in series if p.get(field) is not None)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        lx = PAD + 10 + n * 170
        parts.append(f'<rect x="{lx}" y="{PAD - 22}" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{PAD - 17}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(summary: dict[str, Any]) -> str:
    series = summary["series"]
    throughput = chart(
        series,
        [
            ("sessions_per_s", "verified sessions/s", "#1f6feb"),
            ("requests_per_s", "requests/s", "#8b949e"),
            ("verification_failures", "verification failures", "#d1242f"),
            ("transport_failures", "transport failures", "#bf8700"),
        ],
        "per second",
    )
    latency = chart(
        series,
        [("p50_ms", "p50", "#1a7f37"), ("p95_ms", "p95", "#bf8700"), ("p99_ms", "p99", "#d1242f")],
        "request latency, ms",
    )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("conformance.load", "templates"), autoescape=jinja2.select_autoescape(["j2"])
    )
    env.filters["num"] = _fmt
    template = env.get_template("report.html.j2")
    return template.render(s=summary, throughput=throughput, latency=latency)
