"""Each benchmark, run small: it completes and prints its table. The figures themselves are for
`make bench`, `make bench-copyright` and `make bench-e2e`; nothing here asserts a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent

pytestmark = pytest.mark.bench


def run_bench(module: str, *args: str, cwd: Path) -> str:
    # a benchmark makes its own stack and settings: none of the test session's leak in
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_media_bench(tmp_path: Path):
    table = run_bench(
        "bench.media", "--minutes", "1", "--long-minutes", "1", "--repeat", "1", cwd=tmp_path
    )
    for step in ("extract_metadata", "analyse_waveform"):
        assert table.count(step) == 2  # a time row and a memory row
    for step in ("transcode_320", "encode_ladder"):
        assert table.count(step) == 3  # and a row in the renditions stage's CPU table
    assert "renditions stage" in table and "the ladder adds" in table
    assert (tmp_path / ".trackflow" / "bench" / "steps.json").exists()


def test_copyright_bench(tmp_path: Path):
    table = run_bench(
        "bench.copyright",
        *("--works", "6", "--negatives", "4", "--pairs", "2", "--evasion-works", "1"),
        *("--seconds", "20", "--scale-to", "12"),
        "--no-dynamodb",
        cwd=tmp_path,
    )
    assert "excerpt_5s_noise" in table and "false" in table.lower()
    assert "as published tracks" in table
    assert "pitch+1.5st mp3 10s" in table and "same tempo and key" in table


def test_e2e_bench(tmp_path: Path):
    table = run_bench(
        "bench.e2e",
        *("--tracks", "2", "--minutes", "0.25", "--probe-minutes", "0.25", "--rounds", "2"),
        cwd=tmp_path,
    )
    assert "ratio system / bare" in table and "critical path" in table
    assert "the median of 2 rounds" in table and "round 2" in table
    assert "CPU seconds, all of the stack" in table and "background work" in table
    report = json.loads((tmp_path / ".trackflow" / "bench" / "e2e.json").read_text())
    assert report["ratio"] in [r["ratio"] for r in report["rounds"]]
    # the emulator's CPU by the stack process that asked: the catalogue joins are the bulk lane's
    callers = {(row["caller"], row["operation"]) for row in report["emulator_cpu_s"]}
    assert ("trackflow-worker-io-bulk", "DynamoDB UpdateItem") in callers
    assert "asked by worker-cpu-standard" in table
