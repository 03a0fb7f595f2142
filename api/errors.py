"""Every error the API answers, in one shape: ``{"error": {"code": ..., "message": ...}}``.

Routes raise :class:`ApiError`; Starlette's own refusals (404 for an unknown path, 405 for an
unknown method) are reshaped here too, so that a client reads every error the same way.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.exceptions import HTTPException

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorResponse",
    "handle_errors",
    "known_query_only",
]


class ApiError(Exception):
    """A refusal a client can act on: its HTTP status and a stable, machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


# documented on every operation, so that the schema (and the fuzzer) knows these bodies
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 429)
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
    unknown = set(request.query_params) - (
        _route_query_names(route) if isinstance(route, APIRoute) else frozenset()
    )
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown query parameters: {sorted(unknown)}")


async def _api_error(_: Request, error: ApiError) -> Response:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}}, status_code=error.status
    )


async def _http_error(_: Request, error: HTTPException) -> Response:
    return JSONResponse(
        {"error": {"code": "http_error", "message": str(error.detail)}},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _allow_every_method_of_the_path(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """A 405's Allow header names every method the path has, not only its first route's:
    Starlette stops at the first route whose path matches. The routes are walked as FastAPI's
    OpenAPI walks them, since included routers are not flattened into ``app.routes``."""
    response = await call_next(request)
    if response.status_code == 405:
        methods = {
            method
            for route in iter_route_contexts(request.app.routes)
            if isinstance(route.original_route, APIRoute)
            and route.path_regex.match(request.url.path)
            for method in route.methods or ()
        }
        response.headers["Allow"] = ", ".join(sorted(methods))
    return response


def handle_errors(app: FastAPI) -> None:
    """Answer every error of ``app`` in the one shape. Request validation (422) keeps
    FastAPI's own body, which the schema documents as ``HTTPValidationError``."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(HTTPException)(_http_error)
    app.middleware("http")(_allow_every_method_of_the_path)
