"""`trackflow api`: the HTTP API's role."""

from __future__ import annotations

import click
import uvicorn

from trackflow.logs import configure_logging
from trackflow.settings import get_settings

__all__ = ["api"]


@click.command()
def api() -> None:
    """Serve the HTTP API."""
    configure_logging("api")
    settings = get_settings()
    uvicorn.run(
        "trackflow.api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )
