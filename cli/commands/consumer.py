"""`trackflow consumer`: the role that turns S3 events into workflows."""

from __future__ import annotations

import click

from trackflow.consumer.service import run_consumer
from trackflow.logs import configure_logging
from trackflow.settings import get_settings

__all__ = ["consumer"]


@click.command()
def consumer() -> None:
    """Consume S3 events and launch workflows."""
    configure_logging("consumer")
    run_consumer(get_settings())
