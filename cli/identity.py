"""Who a command acts as: the options that say so (--user, --token, --api), declared once, and
the API client they make, which the command receives instead of them."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click

from trackflow.auth import mint_token
from trackflow.cli.client import ApiClient
from trackflow.settings import get_settings

__all__ = ["bearer_token", "with_client"]

Command = Callable[..., None]


def bearer_token(user: str | None, token: str | None) -> str:
    """The token given (or $TRACKFLOW_TOKEN); else one minted for USER from the local secret."""
    token = token or os.environ.get("TRACKFLOW_TOKEN")
    if token:
        return token
    if not user:
        raise click.UsageError("give --user NAME (local stack) or --token / TRACKFLOW_TOKEN")
    try:
        return mint_token(get_settings(), user)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--user") from error


def _identity_options(admin: bool) -> list[Callable[[Command], Command]]:
    user = (
        click.option("--user", default="admin", show_default=True, help="an administrator")
        if admin
        else click.option(
            "--user", help="act as this user (local stack: a token is minted for you)"
        )
    )
    return [
        user,
        click.option("--token", help="a bearer token (default: $TRACKFLOW_TOKEN)"),
        click.option("--api", help="the API's base URL (default: the local stack's)"),
    ]


def with_client(*, admin: bool = False) -> Callable[[Command], Command]:
    """Give the command the identity options and call it with ``client``, an open ApiClient.

    Administrator commands (``admin=True``) act as ``admin`` unless told otherwise. The
    options stand where the decorator stands among the command's others, as --help lists them.
    """

    def decorate(command: Command) -> Command:
        @functools.wraps(command)  # keeps the docstring, and the options declared below it
        def with_api(
            *, user: str | None, token: str | None, api: str | None, **params: Any
        ) -> None:
            with ApiClient(api or get_settings().api_url, bearer_token(user, token)) as client:
                command(client=client, **params)

        decorated: Command = with_api
        for option in reversed(_identity_options(admin)):
            decorated = option(decorated)
        return decorated

    return decorate
