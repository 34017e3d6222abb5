"""Selftest speed: `best-conformance selftest` (every kind, every catalogued fault, both paths) with N workers,
its wall time and what it found; with --compare, every case verdict of the matrix set beside an earlier
selftest's, so that a speed-up is shown to change no verdict. Target (issue #14): under 150 s with -j 2.

    python benchmarks/selftest.py [-j 2] [--compare reports/selftest-<earlier>] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def verdicts(folder: Path) -> dict[tuple[str, ...], str]:
    """(kind, fault or 'conformant', path, case) -> verdict, from a selftest folder's results.jsonl files."""
    found = {}
    for results in folder.glob("*/*/*/results.jsonl"):
        kind, fault, path = results.parent.relative_to(folder).parts
        for line in results.read_text(encoding="utf-8").splitlines():
            result = json.loads(line)
            found[kind, fault, path, result["case"]] = result["verdict"]
    return found


def run_selftest(workers: int, reports: Path) -> tuple[float, int, Path]:
    """Run the selftest into `reports`: its wall time (s), exit code and folder."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("best-conformance")), "selftest", "-j", str(workers), "--json"],
        check=False,
        capture_output=True,
        cwd=reports,
    )
    seconds = time.perf_counter() - start
    (folder,) = (reports / "reports").glob("selftest-*")
    return seconds, done.returncode, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-j", type=int, default=2, help="selftest workers (default 2)")
    parser.add_argument("--compare", type=Path, help="an earlier selftest folder: list the verdicts that differ")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep the selftest's output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        seconds, code, folder = run_selftest(args.j, where)
        report = json.loads((folder / "selftest.json").read_text(encoding="utf-8"))
        detected = Counter(f["detected"] for f in report["faults"])
        print(
            f"selftest -j {args.j}: {seconds:.0f} s wall (target < 150 s with -j 2), exit {code}, "
            f"{len(report['faults'])} fault runs on paths {', '.join(report['paths'])}: {dict(detected)}; "
            f"problems: {len(report['problems'])}"
        )
        if args.compare:
            now, before = verdicts(folder), verdicts(args.compare)
            common = now.keys() & before.keys()
            changed = sorted(k for k in common if now[k] != before[k])
            print(
                f"verdicts compared with {args.compare}: {len(common)} in both, {len(changed)} differ, "
                f"{len(now.keys() - before.keys())} only now, {len(before.keys() - now.keys())} only before"
            )
            for key in changed:
                print(f"  {'/'.join(key)}: {before[key]} -> {now[key]}")


if __name__ == "__main__":
    main()
