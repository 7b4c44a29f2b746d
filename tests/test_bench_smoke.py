"""Smoke run of the benchmark: the quick size once, as its own process. Never asserts a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_quick_bench_with_the_paced_baseline_prints_every_column(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--size", "quick", "--repeat", "1",
         "--json", str(out), "--work-dir", str(tmp_path / "work"), "--timeout", "50",
         "--paced"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from tables import COLUMNS, PACED_COLUMNS
    finally:
        sys.path.remove(str(ROOT / "bench"))
    lines = proc.stdout.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("run |"))
    header = [h.strip() for h in lines[header_at].split("|")]
    assert header == ["run", *(h for h, _, _ in COLUMNS + PACED_COLUMNS)]
    median = next(line for line in lines[header_at:] if line.lstrip().startswith("median"))
    cells = [c.strip() for c in median.split("|")]
    assert len(cells) == len(header)
    for name, cell in zip(header[1:], cells[1:], strict=True):
        value = float(cell)  # every column has a number
        assert value == value, name  # not NaN
        assert value >= 0, name

    data = json.loads(out.read_text())
    row = data["rows"][0]
    assert row["targets"] == 12
    assert row["calls"] > 0
    assert row["paced_cpu_s_per_1k_calls"] > 0  # --paced ran the spread-out baseline too
    runs = sorted(p.name for p in (tmp_path / "work" / "run-1").glob("baseline-*.json"))
    assert runs == ["baseline-1.json", "baseline-2.json", "baseline-3.json"]  # median of three
    assert row["exit_code"] in (0, 1)
    assert row["violations"] == 0, row["violation_rules"]  # the simulator's referee: no rule broken
    assert sum(row["statuses"].values()) == row["targets"]


def test_pacing_bench_offline_prints_a_row_per_policy(tmp_path: Path) -> None:
    out = tmp_path / "pacing.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pacing.py"), "--offline-only", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["offline"]
    assert [r["policy"] for r in rows] == ["fixed 1", "fixed 2", "fixed 4", "fixed 8", "adaptive"]
    assert all(r["targets"] > 0 and r["wall_s"] > 0 for r in rows)
    assert "vs best safe fixed" in proc.stdout
