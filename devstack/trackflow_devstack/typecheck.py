"""`make lint`'s type check: mypy over every room of the `trackflow` namespace.

The rooms are top-level folders (tasks/, api/, ...) mapped into one import namespace by
pyproject.toml's package-dir, which an editable install serves through an import hook that
mypy cannot follow. So the check runs over a tree of symbolic links laid out as the installed
package is, built from that same mapping, and reports paths as they are in the repository.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / ".trackflow" / "typecheck"
DEVSTACK = "trackflow_devstack"


def rooms() -> dict[str, str]:
    """Import path of each room -> its folder in the repository (the kernel and devstack too)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapped = project["tool"]["setuptools"]["package-dir"]
    return {**mapped, DEVSTACK: f"devstack/{DEVSTACK}"}


def link_tree() -> None:
    """``TREE/trackflow`` holds the kernel's entries and every mapped room, as symbolic links."""
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "trackflow"
    package.mkdir(parents=True)
    for entry in (ROOT / "trackflow").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in rooms().items():
        (TREE / name.replace(".", "/")).symlink_to(ROOT / folder)


def in_repository(line: str) -> str:
    """A report line with the tree's module path replaced by the file's repository path."""
    for name, folder in rooms().items():
        prefix = name.replace(".", "/") + "/"
        if line.startswith(prefix):
            return folder + "/" + line[len(prefix) :]
    return line


def main() -> int:
    link_tree()
    os.chdir(TREE)
    os.environ["MYPYPATH"] = str(TREE)
    report, errors, status = api.run(
        [
            *("--config-file", str(ROOT / "pyproject.toml")),
            *("--python-executable", sys.executable),
            *("--cache-dir", str(ROOT / ".trackflow" / "mypy-cache")),
            *("-p", "trackflow", "-p", DEVSTACK),
            *sys.argv[1:],
        ]
    )
    sys.stdout.write("".join(in_repository(line) for line in report.splitlines(keepends=True)))
    sys.stderr.write(errors)
    return status


if __name__ == "__main__":
    sys.exit(main())
