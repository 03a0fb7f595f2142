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
    """The web client's Content-Security-Policy: its own scripts only (hls.js among them, kept
    in ``web/vendor/``); it talks to this API and to S3 (uploads, artwork, peaks and audio
    through presigned URLs), nothing else.

    ``media-src blob:`` is what Media Source Extensions need: hls.js plays the HLS ladder
    through a MediaSource, which the audio element reaches as a ``blob:`` URL (only this
    origin's scripts, which ``default-src 'self'`` keeps to the client's own files, can make
    one). hls.js runs without its worker (``enableWorker: false``), so there is no
    ``worker-src``; it fetches the playlists from this API and the segments from S3, or from
    CloudFront when ``media_cdn_domain`` is set (then allowed too)."""
    storage = settings.endpoint_url or "https://*.amazonaws.com"
    stream = storage  # the HLS segments: from CloudFront when it is set up
    if settings.media_cdn_domain:
        stream += f" https://{settings.media_cdn_domain}"
    return "; ".join(
        (
            "default-src 'self'",
            f"connect-src 'self' {stream}",
            f"img-src 'self' {storage}",
            f"media-src 'self' blob: {stream}",
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
