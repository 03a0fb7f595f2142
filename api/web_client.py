"""The reference web client (``api/web/``), served at /app/ under a strict
Content-Security-Policy (set with the API's other headers, by ``security.SecurityHeaders``)."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from trackflow.settings import Settings

__all__ = ["WEB_CLIENT", "serve_web_client", "web_client_policy"]

WEB_CLIENT = Path(__file__).parent / "web"


def web_client_policy(settings: Settings) -> str:
    """The web client's Content-Security-Policy: its own scripts only; it talks to this API and
    to S3 (uploads, artwork, peaks and audio through presigned URLs), nothing else."""
    storage = settings.endpoint_url or "https://*.amazonaws.com"
    return "; ".join(
        (
            "default-src 'self'",
            f"connect-src 'self' {storage}",
            f"img-src 'self' {storage}",
            f"media-src 'self' {storage}",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        )
    )


def _home() -> RedirectResponse:
    return RedirectResponse("/app/")


def serve_web_client(app: FastAPI) -> None:
    """Mount the client at /app/ and send browsers at / to it."""
    app.mount("/app", StaticFiles(directory=WEB_CLIENT, html=True), name="web")
    app.add_api_route("/", _home, methods=["GET"], include_in_schema=False, name="home")
