"""The OpenAPI browser at /docs, served whole by the API (FastAPI's self-hosting recipe):
Swagger UI's files come from the ``fastapi-offline`` package (Swagger UI 5, which reads the
OpenAPI 3.1 FastAPI writes), not a CDN, so that the page runs only scripts we ship and a
strict Content-Security-Policy holds (no inline script: the page's setup is a file too).
"""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from trackflow.api.errors import ApiError

__all__ = ["DOCS_POLICY", "serve_docs"]

DOCS_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_ASSETS = {  # what the page loads, and nothing else of the package
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon.png": "image/png",
}
_STATIC = Path(str(files("fastapi_offline") / "static"))

_SETUP = """\
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trackflow API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/setup.js"></script>
</body>
</html>
"""


def _page() -> HTMLResponse:
    return HTMLResponse(_PAGE)


def _asset(name: str) -> Response:
    if name == "setup.js":
        return Response(_SETUP, media_type="text/javascript")
    if name not in _ASSETS:
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(_STATIC / name, media_type=_ASSETS[name])


def serve_docs(app: FastAPI) -> None:
    """Serve the docs page and its assets (the app is created with FastAPI's own docs off)."""
    app.add_api_route("/docs", _page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/assets/{name}", _asset, methods=["GET"], include_in_schema=False)
