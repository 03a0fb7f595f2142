"""The root group's machinery: commands listed by name and imported only when they run, those
of other distributions found through an entry point group, and the one place where the API's
refusal becomes a message and an exit code."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from trackflow.cli.console import EXIT_NOT_PUBLISHED, err
from trackflow.cli.errors import ApiError

__all__ = ["ENTRY_POINTS", "LazyGroup"]

# Where other distributions add commands: trackflow-devstack adds the local stack's.
ENTRY_POINTS = "trackflow.commands"
# Named only to say what is missing where trackflow-devstack is not installed (production).
LOCAL_STACK_COMMANDS = frozenset({"up", "emulator", "demo"})


def _load(target: str) -> click.Command:
    """The command at "module:attribute", the notation of entry points."""
    module, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run or --help lists them (click's
    "lazily loading subcommands"): a role's process imports what that role needs, not what
    forty commands do. ``lazy_commands`` maps each name to "module:attribute"; the entry
    point group ``trackflow.commands`` adds more, looked up only for a name not in it."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    @cached_property
    def _plugins(self) -> dict[str, EntryPoint]:
        return {point.name: point for point in entry_points(group=ENTRY_POINTS)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands, *self._plugins})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return _load(self.lazy_commands[cmd_name])
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        if cmd_name in self._plugins:
            return _load(self._plugins[cmd_name].value)
        if cmd_name in LOCAL_STACK_COMMANDS:
            raise click.UsageError(
                f"'{cmd_name}' belongs to the local stack (trackflow-devstack), not installed here "
                "(a development checkout: `make install`, or pip install -e ./devstack)",
                ctx,
            )
        return None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as error:
            # every command that calls the API fails alike: the API's code and words, exit 1
            err.print(f"[red]✗[/] {error.code}: {error.message}")
            ctx.exit(EXIT_NOT_PUBLISHED)
