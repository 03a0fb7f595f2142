"""The API's routes, one router per resource, in the order the app includes them."""

from fastapi import APIRouter

from trackflow.api.routes import (
    catalogue,
    health,
    multipart,
    playback,
    reviews,
    search,
    session,
    social,
    tracks,
    uploads,
    verification,
    webhooks,
    workflow,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    uploads.router,
    multipart.router,
    catalogue.router,
    reviews.router,
    tracks.router,
    playback.router,
    workflow.router,
    search.router,
    social.router,
    session.router,
    verification.router,
    webhooks.router,
)
