"""What a stack needs before it is used: its AWS resources (`bootstrap`), and a token to call
its API with (`token`)."""

from __future__ import annotations

import click

from trackflow.cli.console import out
from trackflow.cli.identity import bearer_token
from trackflow.logs import configure_logging
from trackflow.operations.bootstrap import bootstrap as create_resources
from trackflow.settings import get_settings

__all__ = ["bootstrap", "token"]


@click.command()
def bootstrap() -> None:
    """Create the buckets, queues, tables and notifications (idempotent)."""
    configure_logging("bootstrap")
    create_resources(get_settings())


@click.command()
@click.option("--user", required=True)
def token(user: str) -> None:
    """Print a bearer token for USER (local stacks, from the local secret)."""
    out.print(bearer_token(user, None), soft_wrap=True)
