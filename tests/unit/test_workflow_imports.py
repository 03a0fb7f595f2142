"""The workflow's modules import one way: each can be imported first, none hides an import in a
function to dodge a cycle, and the engine needs no AWS or Celery."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = (
    "trackflow.pipeline.flow",
    "trackflow.adapters.state.tracks",
    "trackflow.tasks.workflow",
    "trackflow.tasks.runtime",
    "trackflow.tasks.steps",
    "trackflow.tasks.control",
    "trackflow.consumer.admission",
    "trackflow.tasks.recovery",
    "trackflow.consumer.service",
)


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, module
    return Path(spec.origin)


@pytest.mark.parametrize("module", MODULES)
def test_no_import_hides_in_a_function(module):
    """Every import of the module is at its top level."""
    tree = ast.parse(_source(module).read_text())
    hidden = [
        (node.name, inner.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]
    assert hidden == [], hidden


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """No cycle: whichever module a process imports first, it loads."""
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120)


def test_the_engine_needs_no_aws_and_no_celery():
    """The engine is pure: importing it loads neither boto3 nor Celery."""
    script = (
        "import json, sys, trackflow.pipeline.flow\n"
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore', 'celery', 'kombu')"
        " if m in sys.modules)))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(answer.stdout) == []
