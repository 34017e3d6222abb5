"""The live probe against a reference HSE that reads five open points otherwise (issue 16): the other COUNT
alignment, the MAC's last octets, another FC for the CP integrity key, another RAND tag and another header field
order, all at once. Prints the sessions used, the messages tried and the wall time, and whether the probe
recovered exactly those five. Target: under 50 sessions and 30 s.

    python benchmarks/probe.py [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.probe.live import probe_live
from tests.probe.sut import FIVE, running_sut


def main(rounds: int = 3) -> None:
    times, sessions = [], []
    with running_sut(FIVE) as (_running, profile), tempfile.TemporaryDirectory() as folder:
        for i in range(rounds):
            started = time.perf_counter()
            result = probe_live(profile, Path(folder) / f"probe-{i}")
            times.append(time.perf_counter() - started)
            sessions.append(result.live["sessions"])
            found = {f.key: f.value for f in result.differences}
            print(
                f"round {i + 1}: {result.live['sessions']} session(s), {len(result.live['attempts'])} message(s) "
                f"tried, {times[-1]:.2f} s, {'exactly the five overrides' if found == FIVE else f'WRONG: {found}'}"
            )
    print(
        f"sessions used: {max(sessions)} (target < 50); wall time: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s (target < 30 s)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
