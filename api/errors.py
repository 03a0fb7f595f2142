"""Every error the API answers, in one shape: ``{"error": {"code": ..., "message": ...}}``.

Routes raise :class:`ApiError`; Starlette's own refusals (404 for an unknown path, 405 for an
unknown method, 413 for a body over the limit), request validation (422) and anything
unforeseen (500) are reshaped here too, so that a client reads every error the same way. No
message echoes the request's input: a validation error names the field and what it must be,
in our words, so that no input (a lone surrogate, NaN, a huge body) can break the answer.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError
from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trackflow.logs import get_logger

__all__ = [
    "ERROR_RESPONSES",
    "AllowEveryMethod",
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "describe_validation_errors",
    "handle_errors",
    "known_query_only",
]

log = get_logger(__name__)


class ApiError(Exception):
    """A refusal a client can act on: its HTTP status and a stable, machine-readable code."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})  # e.g. a 429's Retry-After


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# documented on every operation, so that the schema (and the fuzzer) knows these bodies
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


def _query_names(dependant: Dependant) -> set[str]:
    return {field.alias for field in dependant.query_params}.union(
        *(_query_names(sub) for sub in dependant.dependencies)
    )


_known_queries: dict[str, frozenset[str]] = {}  # a route's operation id -> its query names


def _route_query_names(route: APIRoute) -> frozenset[str]:
    if route.unique_id not in _known_queries:  # a route's parameters never change
        _known_queries[route.unique_id] = frozenset(_query_names(route.dependant))
    return _known_queries[route.unique_id]


def known_query_only(request: Request) -> None:
    """A misspelt parameter (``?limt=5``) is an error, not silently ignored."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    known = _route_query_names(route) if isinstance(route, APIRoute) else frozenset()
    if set(request.query_params) - known:
        # what the route takes, not what was sent: an answer never echoes the input
        takes = ", ".join(sorted(known)) or "none"
        raise ApiError(
            400,
            "unknown_parameter",
            f"a query parameter this route does not take (it takes: {takes})",
        )


async def _api_error(_: Request, error: ApiError) -> Response:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status,
        headers=error.headers or None,
    )


# What a pydantic error type means, in our words; ctx names the limit where there is one
_PROBLEMS: dict[str, str] = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "string_pattern_mismatch": "does not have the expected form",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "is not one of the accepted values",
    "enum": "is not one of the accepted values",
    "value_error": "is not a valid value",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
}
_PLACES = {"body": "body", "query": "query parameter", "path": "path parameter"}
_MAX_PROBLEMS = 5


def _safe(text: object, limit: int = 40) -> str:
    """``text`` as something any JSON encoder takes: lone surrogates and control characters
    escaped, and short."""
    escaped = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _where(loc: Sequence[object]) -> str:
    if not loc:
        return "the request"
    place, *path = loc
    if place == "body":
        return "the body" if not path else "body field " + ".".join(_safe(p) for p in path)
    if str(place) in _PLACES and path:
        return f"{_PLACES[str(place)]} {'.'.join(_safe(p) for p in path)}"
    return ".".join(_safe(p) for p in loc)


def _problem(error: Mapping[str, Any]) -> str:
    template = _PROBLEMS.get(str(error.get("type")), "is not valid")
    ctx = error.get("ctx") or {}
    limits = {k: ctx[k] for k in ("min_length", "max_length", "gt", "ge", "lt", "le") if k in ctx}
    try:
        return template.format(**{k: _safe(v) for k, v in limits.items()})
    except (KeyError, IndexError):
        return "is not valid"


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One sentence of ours for a request's validation errors, naming each field and what it
    must be, never the input itself."""
    problems = list(dict.fromkeys(f"{_where(e.get('loc') or ())} {_problem(e)}" for e in errors))
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = len(problems) - _MAX_PROBLEMS
    return "the request is invalid: " + shown + (f"; and {more} more" if more > 0 else "")


async def _validation_error(_: Request, error: Exception) -> Response:
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse(
        {"error": {"code": "invalid_request", "message": describe_validation_errors(errors)}},
        status_code=422,
    )


# Starlette's and FastAPI's own refusals, in our words
_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_body", "the request body could not be read as JSON"),
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "the route does not take this method"),
    413: ("body_too_large", "the request body is over this service's size limit"),
}


async def _http_error(_: Request, error: HTTPException) -> Response:
    code, message = _HTTP_ERRORS.get(error.status_code, ("http_error", "the request was refused"))
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _unexpected(request: Request, error: Exception) -> Response:
    """Whatever was not foreseen: logged in full, answered in the one shape without detail.
    One foreseen case arrives here too: DynamoDB refuses a page's start key that a client
    edited in its cursor (moto does not), which is the client's error, not ours."""
    if (
        isinstance(error, ClientError)
        and error.response.get("Error", {}).get("Code") == "ValidationException"
        and request.query_params.get("cursor")
    ):
        return JSONResponse(
            {"error": {"code": "bad_cursor", "message": "the cursor does not fit this listing"}},
            status_code=400,
        )
    log.error("unhandled_error", path=request.url.path, error=repr(error)[:500])
    return JSONResponse(
        {"error": {"code": "internal_error", "message": "something failed on our side"}},
        status_code=500,
    )


class AllowEveryMethod:
    """A 405's Allow header names every method the path has, not only its first route's:
    Starlette stops at the first route whose path matches. The routes are walked as FastAPI's
    OpenAPI walks them, since included routers are not flattened into ``app.routes``. Plain
    ASGI: Starlette's BaseHTTPMiddleware would wrap a body-limit refusal in an exception
    group, which FastAPI then answers as an unreadable body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = {
                    method
                    for route in iter_route_contexts(scope["app"].routes)
                    if isinstance(route.original_route, APIRoute)
                    and route.path_regex.match(scope["path"])
                    for method in route.methods or ()
                }
                MutableHeaders(scope=message)["Allow"] = ", ".join(sorted(methods))
            await send(message)

        await self.app(scope, receive, send_with_allow)


def handle_errors(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one shape, request validation (422) included."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(HTTPException)(_http_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(Exception)(_unexpected)
    app.add_middleware(AllowEveryMethod)
