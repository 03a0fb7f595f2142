"""Capacity planning: Erlang C, and plans that meet their waiting-time targets."""

from __future__ import annotations

import math

import pytest

from trackflow.operations.capacity import erlang_c, p95_wait, plan, tfvars
from trackflow.settings import WorkerGroup


def test_erlang_c_matches_known_values():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 8.0) == pytest.approx(0.409, abs=0.001)  # textbook table
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 0.0) == 0.0


def test_p95_wait_of_an_mm1_queue():
    # M/M/1 with lambda 0.5, mu 1: P(W > t) = 0.5 e^{-0.5 t} = 0.05 -> t = 2 ln 10
    assert p95_wait(1, 0.5, 1.0) == pytest.approx(2 * math.log(10))
    assert p95_wait(1, 2.0, 1.0) == math.inf


@pytest.mark.parametrize("per_hour", [60, 600, 6000])
def test_plans_meet_the_target_with_the_fewest_workers(per_hour: int):
    for item in plan(per_hour, p95_wait_target_s=30):
        assert item.p95_wait_s <= 30 and item.utilisation < 1
        if item.workers > 1:
            assert p95_wait(item.workers - 1, item.arrival_rate, item.service_s) > 30 or (
                item.arrival_rate * item.service_s / (item.workers - 1) > 0.85
            )


def test_more_load_needs_more_cpu_workers_and_tfvars_say_so():
    small, large = plan(100), plan(10_000)
    cpu = lambda plans: next(p for p in plans if p.group is WorkerGroup.CPU)  # noqa: E731
    assert cpu(large).workers > cpu(small).workers
    text = tfvars(large, {WorkerGroup.CPU: 2, WorkerGroup.IO: 4}, p95_wait_target_s=60)
    assert f"min = {math.ceil(cpu(large).workers / 2)}," in text
    assert '"cpu-priority"' in text and '"io-bulk"' in text and '"api"' in text
