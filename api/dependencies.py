"""What routes need, as FastAPI dependencies: settings, the caller, the stores, storage and
the search index.

Each is built per request from :func:`app_settings`, so a test swaps one of them (or the
settings, and with them everything built from them) through ``app.dependency_overrides``::

    app.dependency_overrides[track_store] = lambda: FakeTrackStore()

Building them per request is cheap: the AWS clients underneath are cached per process.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from trackflow.adapters import aws
from trackflow.adapters.search import SearchIndex, open_search
from trackflow.adapters.state.catalogue import Catalogue
from trackflow.adapters.state.ratelimit import FixedWindows, count_recent
from trackflow.adapters.state.social import SocialStore
from trackflow.adapters.state.tracks import BY_OWNER_INDEX, TrackStore
from trackflow.adapters.state.users import EmailVerifications, UserStore
from trackflow.api.errors import ApiError
from trackflow.api.limits import Limiter
from trackflow.api.storage import Storage
from trackflow.api.verification import ProfileChanges
from trackflow.auth import AuthError, Claims, KeysUnavailable, Principal, standing, verify_token
from trackflow.domain.keys import TRACK_ID
from trackflow.domain.track import TERMINAL, Status
from trackflow.settings import AwsTarget, Settings
from trackflow.tasks.catalogue import catalogue_store

__all__ = [
    "S3",
    "Admin",
    "AppSettings",
    "Caller",
    "Limits",
    "OwnTrack",
    "Profiles",
    "Search",
    "Social",
    "Tracks",
    "Users",
    "Works",
    "admin",
    "app_settings",
    "catalogue",
    "limiter",
    "own_track",
    "principal",
    "profile_changes",
    "search_index",
    "social_store",
    "storage",
    "track_store",
    "user_store",
]


def app_settings(request: Request) -> Settings:
    """The settings the app was created with (each app may have its own, as tests make)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def track_store(settings: AppSettings) -> TrackStore:
    return TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))


def user_store(settings: AppSettings) -> UserStore:
    return UserStore(aws.client("dynamodb", settings), settings.table("users"))


def social_store(settings: AppSettings) -> SocialStore:
    return SocialStore(
        aws.client("dynamodb", settings), settings.table("follows"), settings.table("feeds")
    )


def catalogue(settings: AppSettings) -> Catalogue:
    return catalogue_store(settings)


def search_index(settings: AppSettings) -> SearchIndex:
    return open_search(settings)


def storage(settings: AppSettings) -> Storage:
    return Storage(aws.client("s3", settings), settings)


def limiter(settings: AppSettings) -> Limiter:
    dynamodb = aws.client("dynamodb", settings)
    unfinished = [str(s) for s in Status if s not in TERMINAL]

    def in_flight(owner: str, since: float) -> int:
        start = datetime.fromtimestamp(since, UTC).isoformat(timespec="milliseconds")
        return count_recent(
            dynamodb,
            settings.table("tracks"),
            BY_OWNER_INDEX,
            owner,
            start.replace("+00:00", "Z"),  # as the records' created_at (now_iso) spell it
            unfinished,
        )

    return Limiter(FixedWindows(dynamodb, settings.table("idempotency")), in_flight)


Tracks = Annotated[TrackStore, Depends(track_store)]
Users = Annotated[UserStore, Depends(user_store)]
Social = Annotated[SocialStore, Depends(social_store)]
Works = Annotated[Catalogue, Depends(catalogue)]
Search = Annotated[SearchIndex, Depends(search_index)]
S3 = Annotated[Storage, Depends(storage)]
Limits = Annotated[Limiter, Depends(limiter)]


def profile_changes(settings: AppSettings, users: Users, limits: Limits) -> ProfileChanges:
    verifications = EmailVerifications(
        aws.client("dynamodb", settings), settings.table("idempotency")
    )
    return ProfileChanges(settings, users, verifications, limits)


Profiles = Annotated[ProfileChanges, Depends(profile_changes)]

# auto_error off: a missing token is answered in the API's own error shape, not FastAPI's
_bearer = HTTPBearer(auto_error=False)


def _seeds_admin(settings: Settings, user_id: str) -> bool:
    """Whether the users table should record ``user_id`` as an administrator on sight: only
    the embedded stack's named local administrators."""
    return settings.aws_target is AwsTarget.EMBEDDED and user_id in settings.local_admins


def principal(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: AppSettings,
    users: Users,
) -> Principal:
    """The caller: who their bearer token names, with the rights and revocation the users
    table records now (not what the token claims)."""
    if credentials is None:
        raise ApiError(401, "unauthenticated", "a bearer token is required")
    try:
        claims: Claims = verify_token(settings, credentials.credentials)
    except KeysUnavailable as error:
        raise ApiError(503, "identity_provider_unavailable", str(error)) from error
    except AuthError as error:
        raise ApiError(401, "invalid_token", f"the token was refused: {error}") from error
    profile = users.get(claims.user_id)
    if _seeds_admin(settings, claims.user_id) and (profile is None or "admin" not in profile):
        profile = users.seed_admin(claims.user_id, email=claims.email)
    try:
        return standing(claims, profile)
    except AuthError as error:
        raise ApiError(401, "invalid_token", f"the token was refused: {error}") from error


Caller = Annotated[Principal, Depends(principal)]


def admin(caller: Caller) -> Principal:
    """The caller, if an administrator."""
    if not caller.admin:
        raise ApiError(403, "forbidden", "this route is for administrators")
    return caller


Admin = Annotated[Principal, Depends(admin)]


def own_track(track_id: str, caller: Caller, tracks: Tracks) -> dict[str, Any]:
    """The caller's track ``track_id``. Someone else's answers 404 as a missing one does, so
    that track ids cannot be probed."""
    track = tracks.get(track_id) if TRACK_ID.match(track_id) else None
    if track is None or track["owner"] != caller.user_id:
        raise ApiError(404, "not_found", "no such track")
    return track


OwnTrack = Annotated[dict[str, Any], Depends(own_track)]
