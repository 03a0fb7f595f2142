"""The `trackflow` command line."""

from trackflow.cli.main import main

__all__ = ["main"]
