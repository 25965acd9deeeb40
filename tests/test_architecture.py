"""The rooms of the package import downward only (tools/rooms.py), and the import check itself can fail."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

ROOMS = Path(__file__).resolve().parents[1] / "tools" / "rooms.py"


def test_no_room_imports_a_room_above_it_or_each_other():
    done = subprocess.run([sys.executable, str(ROOMS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert "no upward import, no cycle" in done.stdout


def test_the_check_catches_an_upward_import_and_a_cycle():
    rooms = runpy.run_path(str(ROOMS))
    found = rooms["violations"]([("reasonlens.metrics.dynamics", "reasonlens.report.figures", "m.py:1"),
                                 ("reasonlens.analysis.run", "reasonlens.analysis.result", "p.py:1"),
                                 ("reasonlens.analysis.result", "reasonlens.analysis.run", "a.py:1")])
    assert any(v.startswith("upward: m.py:1 (metrics) imports reasonlens.report.figures (report)") for v in found)
    assert "cycle: reasonlens.analysis.result and reasonlens.analysis.run import each other" in found
