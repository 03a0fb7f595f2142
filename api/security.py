"""What every answer of the API carries and every request is held to: a body size limit
enforced before the body is parsed, and security headers.

Both are plain ASGI middleware: they see every request, including the ones no route matches,
and they neither buffer nor re-stream the response.
"""

from collections.abc import Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "API_POLICY",
    "BodyLimit",
    "BodyTooLarge",
    "SecurityHeaders",
    "security_headers",
]

# JSON answers are never a page: nothing in them may load, run or be framed
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class BodyTooLarge(HTTPException):
    """A body that grew past the limit while it was read (no Content-Length, or a false one):
    an HTTPException, so that FastAPI passes it to the API's error handler untouched."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


def _too_large(limit: int) -> JSONResponse:
    # the same sentence as a body found too large while read (errors._HTTP_ERRORS), with the limit
    return JSONResponse(
        {
            "error": {
                "code": "body_too_large",
                "message": f"the request body is over this service's size limit ({limit} bytes)",
            }
        },
        status_code=413,
    )


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class BodyLimit:
    """Refuse a request body over ``limit`` bytes: at once when its Content-Length says so
    (nothing is read), else as soon as the bytes received pass it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        await self.app(scope, limited, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def security_headers(
    path: str, authenticated: bool, page_policies: Mapping[str, str]
) -> dict[str, str]:
    """The headers an answer to ``path`` carries (pure, for the middleware and the tests):
    pages under a prefix of ``page_policies`` (the docs, the web client) get its
    Content-Security-Policy, everything else the API's, which lets nothing load."""
    headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
    if authenticated or path.startswith("/v1/"):  # records, tokens, presigned URLs
        headers["Cache-Control"] = "no-store"
    headers["Content-Security-Policy"] = next(
        (policy for prefix, policy in page_policies.items() if _under(path, prefix)), API_POLICY
    )
    return headers


class SecurityHeaders:
    """Add :func:`security_headers` to every answer."""

    def __init__(self, app: ASGIApp, page_policies: Mapping[str, str]) -> None:
        self.app, self.page_policies = app, dict(page_policies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = security_headers(
            scope["path"], "authorization" in Headers(scope=scope), self.page_policies
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in wanted.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
