"""The `trackflow` command: the root group. Each command lives in a module of its audience under
trackflow.cli.commands, imported only when it runs; the local stack's commands come from the
trackflow-devstack distribution, through the entry point group "trackflow.commands"."""

from __future__ import annotations

import click

from trackflow.cli.group import LazyGroup

__all__ = ["main"]

_COMMANDS = "trackflow.cli.commands"

# A production role's process imports its own module and no other: one module a role.
ROLES = {
    "api": f"{_COMMANDS}.api:api",
    "consumer": f"{_COMMANDS}.consumer:consumer",
    "worker": f"{_COMMANDS}.worker:worker",
    "bootstrap": f"{_COMMANDS}.provision:bootstrap",
    "token": f"{_COMMANDS}.provision:token",
}
COMMANDS = {
    **ROLES,
    **{name: f"{_COMMANDS}.tracks:{name}" for name in ("upload", "status", "reprocess")},
    **{
        name: f"{_COMMANDS}.social:{name}"
        for name in ("search", "follow", "unfollow", "feed", "profile")
    },
    **{name: f"{_COMMANDS}.rights:{name}" for name in ("catalogue", "review", "account")},
    **{
        name: f"{_COMMANDS}.operations:{name}" for name in ("sweep", "reconcile", "dlq", "capacity")
    },
    "backfill-quads": f"{_COMMANDS}.operations:backfill_quads",
    "webhooks": f"{_COMMANDS}.webhooks:webhooks",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
def main() -> None:
    """trackflow: audio upload processing on S3, SQS, Celery and DynamoDB."""
