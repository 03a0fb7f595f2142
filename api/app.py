"""The HTTP API for client apps: presigned uploads and the tracks' records.

Every route but /healthz takes a bearer token; a user sees and touches only their own tracks
(someone else's track answers 404, as if it did not exist). OpenAPI is served at /docs. The
routes live in ``routes/``, one router per resource; what they need comes from
``dependencies``, which tests replace through ``app.dependency_overrides``.
"""

from fastapi import Depends, FastAPI

from trackflow.api.docs import DOCS_POLICY, serve_docs
from trackflow.api.errors import ERROR_RESPONSES, handle_errors, known_query_only
from trackflow.api.routes import ROUTERS
from trackflow.api.security import BodyLimit, SecurityHeaders
from trackflow.api.web_client import serve_web_client, web_client_policy
from trackflow.settings import Settings, get_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with ``settings`` (the environment's by default); uvicorn calls it as a
    factory."""
    settings = settings or get_settings()
    app = FastAPI(
        title="trackflow",
        version="1",
        description="Upload audio through presigned S3 POSTs and follow its processing.",
        dependencies=[Depends(known_query_only)],
        responses=ERROR_RESPONSES,
        # served by serve_docs from the package's files, not FastAPI's CDN page
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings  # read by dependencies.app_settings
    serve_web_client(app)
    serve_docs(app)
    handle_errors(app)
    # the last added is the outermost: the body limit refuses before anything reads the body,
    # and the security headers, outside it, go on every answer, a 413 included
    app.add_middleware(BodyLimit, limit=settings.max_request_body_bytes)
    app.add_middleware(
        SecurityHeaders,
        page_policies={"/docs": DOCS_POLICY, "/app": web_client_policy(settings)},
    )
    for router in ROUTERS:
        app.include_router(router)
    return app
