"""`make bench-clients`, run small: a resumable upload just over the multipart threshold,
interrupted and resumed, and one webhook's latency. Nothing here asserts a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bounded import run_bench

pytestmark = pytest.mark.bench


def test_clients_bench(tmp_path: Path):
    table = run_bench("bench.clients", "--upload-mib", "70", "--webhook-tracks", "1", cwd=tmp_path)
    assert "parts held at resumption" in table
    assert "upload end to published" in table  # the large file, processed end to end
    assert "webhook delivery after publication, 1 tracks" in table
