"""report.html as a browser shows it: headless Chromium opens real runs' reports from disk (file://).

Skipped, with the reason, where Chromium is absent; .ci/run installs it (Debian package `chromium`).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.html.dom import parse
from tests.html.png import pixel_counts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium; .ci/run does it)"
)
PASS_BOX, FAIL_BOX = (0xDA, 0xFB, 0xE1), (0xFF, 0xEB, 0xE9)  # the decision box's background, report.css


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"  # its own profile: no state shared with another run or user
    command = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={profile}"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["hse_fault", "emks"])
def test_the_browser_shows_the_verdict_table_and_the_decision(runs, tmp_path, name):
    run = runs[name]
    done = chromium(tmp_path, "--dump-dom", run.report.as_uri())
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    dom = parse(done.stdout)
    rows = [r for r in dom.by_id("verdicts").find_all("tr") if "data-case" in r.attrs]
    seen = {r.find_all("a")[0].text: r.find_all("td")[3].find_all("span")[0].text for r in rows}
    assert seen == {c["id"]: c["verdict"] for c in run.doc["cases"]}
    assert dom.by_id("decision").text.startswith(f"Decision: {run.doc['decision']['outcome'].upper()}")
    with_messages = [c for c in run.doc["cases"] if (run.dir / "traces" / f"{c['id']}.json").exists()]
    assert len(dom.find_all("svg")) == len(with_messages)


def test_a_screenshot_shows_the_decision_box_in_its_colour(runs, tmp_path):
    """Inline CSS works from disk: the passing run's decision is green, the failing one's red.

    About 1 s a screenshot on an idle machine; not timed here, as a loaded CI machine doubles that."""
    for name, shown, absent in (("emks", PASS_BOX, FAIL_BOX), ("emks_fault", FAIL_BOX, PASS_BOX)):
        shot = tmp_path / f"{name}.png"
        done = chromium(
            tmp_path, "--hide-scrollbars", "--window-size=640,360", f"--screenshot={shot}", runs[name].report.as_uri()
        )
        assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
        colours = pixel_counts(shot.read_bytes())
        assert colours[shown] > 5000 and colours[absent] == 0, name
