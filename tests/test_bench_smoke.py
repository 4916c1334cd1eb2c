"""Smoke test of the benchmark suite: ``bench/run.py --quick`` runs and reports every case.

Performance is never asserted here (STYLE.md: benchmarks print ratios, tests do
not time things); this only keeps the suite from rotting: it must exit 0 and
print a table naming every case.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    "client-120B",
    "client-16KiB",
    "server-120B",
    "server-16KiB",
    "server-120B-50clients",
    "latency-client",
    "latency-server",
    "many-connections",
    "fan-in",
    "footprint",
    "startup",
    "service",
]


@pytest.mark.timeout(200)  # ~60 s on 2 idle cores: ten receivers per throughput case
def test_quick_run_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "latest.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table_lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert table_lines, proc.stdout[-3000:]
    for name in CASES:
        assert any(f"| {name} |" in line for line in table_lines), f"{name} missing from the table"
    assert "## Targets" in out.read_text()
