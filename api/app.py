"""The HTTP API for client apps: presigned uploads and the tracks' records.

Every route but /healthz takes a bearer token; a user sees and touches only their own tracks
(someone else's track answers 404, as if it did not exist). OpenAPI is served at /docs.
"""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from starlette.exceptions import HTTPException

from trackflow.adapters import aws
from trackflow.adapters.search import TrackDocument, open_search
from trackflow.adapters.state.catalogue import WorkStatus
from trackflow.adapters.state.dynamo import now_iso
from trackflow.adapters.state.social import SocialStore, decode_cursor, encode_cursor
from trackflow.adapters.state.tracks import TrackStore
from trackflow.adapters.state.users import UserStore
from trackflow.auth import AuthError, Principal, mint_token, verify_token
from trackflow.domain.keys import (
    PEAKS_ARTIFACT,
    TRACK_ID,
    USER_ID,
    WORK_ID,
    catalogue_key,
    rendition_artifact,
    safe_filename,
    upload_key,
)
from trackflow.domain.track import STAGES, TERMINAL, Status, initial_steps, public_record
from trackflow.logs import get_logger
from trackflow.settings import Lane, Settings, get_settings
from trackflow.tasks import control, recovery
from trackflow.tasks.catalogue import catalogue_store

__all__ = ["create_app"]

log = get_logger(__name__)
WEB_CLIENT = Path(__file__).parent / "web"  # the reference web client, served at /app/


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RequestBody(BaseModel):
    """A request's JSON body: exactly its fields, of exactly their types (no "1" for 1)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class UploadRequest(RequestBody):
    filename: str = Field(min_length=1, max_length=1000, description="the file's name on disk")
    content_type: str = Field(description="an audio MIME type, e.g. audio/mpeg")
    size: int | None = Field(None, ge=0, description="the file's size in bytes, if known")


class PresignedPost(BaseModel):
    url: str
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_at: str


class UploadResponse(BaseModel):
    track_id: str
    upload: PresignedPost
    track: dict[str, Any]


class TrackList(BaseModel):
    tracks: list[dict[str, Any]]
    next_cursor: str | None = None


class WorkRequest(RequestBody):
    title: str = Field(min_length=1, max_length=500)
    owner: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="the rights holder")
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str
    size: int | None = Field(None, ge=0)


class WorkResponse(BaseModel):
    work: dict[str, Any]
    upload: PresignedPost


class WorkList(BaseModel):
    works: list[dict[str, Any]]
    next_cursor: str | None = None


class ReviewDecision(RequestBody):
    decision: str = Field(pattern="^(approve|reject)$")
    note: str = Field("", max_length=2000)


class SearchPage(BaseModel):
    hits: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


class FeedPage(BaseModel):
    entries: list[dict[str, Any]]
    next_cursor: str | None = None


class ProfileUpdate(RequestBody):
    email: EmailStr | None = None
    email_opt_out: bool | None = None


class AccountUpdate(RequestBody):
    priority: bool | None = None
    email: EmailStr | None = None


class SessionRequest(RequestBody):
    user: str = Field(pattern=USER_ID.pattern, description="the name to act as (local stacks)")


class Session(BaseModel):
    user: str
    token: str
    expires_in: int


class Playback(BaseModel):
    """What a player needs: the track's tags and presigned URLs of its media."""

    track_id: str
    owner: str
    status: str
    title: str
    artist: str
    album: str
    duration_s: float
    artwork: dict[str, str] = Field(description="file name (500.jpg, 500@2x.webp, ...) -> URL")
    peaks: str | None = Field(description="the waveform's audiowaveform JSON")
    renditions: dict[str, str] = Field(description="bitrate in kbps -> MP3 URL")
    loudness: dict[str, Any] | None
    copyright: dict[str, Any] | None
    expires_at: str


class Workflow(BaseModel):
    stages: list[dict[str, Any]]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


_bearer = HTTPBearer(auto_error=False)


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


def _web_client_policy(settings: Settings) -> str:
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="trackflow",
        version="1",
        description="Upload audio through presigned S3 POSTs and follow its processing.",
        dependencies=[Depends(known_query_only)],
        responses={status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 409, 429)},
    )

    app.mount("/app", StaticFiles(directory=WEB_CLIENT, html=True), name="web")
    web_policy = _web_client_policy(settings)

    @app.middleware("http")
    async def web_client_headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if request.url.path.startswith("/app"):
            response.headers["Content-Security-Policy"] = web_policy
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"  # presigned URLs stay private
        return response

    @app.middleware("http")
    async def allow_every_method_of_the_path(request: Request, call_next: Any) -> Any:
        """A 405's Allow header names every method the path has, not only its first route's."""
        response = await call_next(request)
        if response.status_code == 405:
            methods = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    tracks = TrackStore(aws.client("dynamodb", settings), settings.table("tracks"))
    users = UserStore(aws.client("dynamodb", settings), settings.table("users"))
    social = SocialStore(
        aws.client("dynamodb", settings), settings.table("follows"), settings.table("feeds")
    )

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": error.code, "message": error.message}}, status_code=error.status
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": "http_error", "message": str(error.detail)}},
            status_code=error.status_code,
            headers=error.headers,
        )

    def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError(401, "unauthenticated", "a bearer token is required")
        try:
            return verify_token(settings, credentials.credentials)
        except AuthError as error:
            raise ApiError(401, "invalid_token", f"the token was refused: {error}") from error

    Caller = Annotated[Principal, Depends(principal)]

    def parse_cursor(cursor: str | None) -> dict[str, Any] | None:
        try:
            return decode_cursor(cursor)
        except ValueError as error:
            raise ApiError(400, "bad_cursor", str(error)) from error

    def own_track(track_id: str, caller: Principal) -> dict[str, Any]:
        track = tracks.get(track_id) if TRACK_ID.match(track_id) else None
        if track is None or track["owner"] != caller.user_id:
            raise ApiError(404, "not_found", "no such track")
        return track

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/app/")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def admin(caller: Caller) -> Principal:
        if not caller.admin:
            raise ApiError(403, "forbidden", "this route is for administrators")
        return caller

    Admin = Annotated[Principal, Depends(admin)]

    def check_upload(content_type: str, size: int | None) -> str:
        content_type = content_type.split(";")[0].strip().lower()
        if content_type not in settings.audio_content_types:
            raise ApiError(
                400, "unsupported_content_type", f"{content_type!r} is not an audio type we accept"
            )
        if size == 0:
            raise ApiError(400, "empty_file", "the file is empty: there is nothing to upload")
        if size is not None and size > settings.max_upload_bytes:
            raise ApiError(400, "too_large", f"the limit is {settings.max_upload_bytes} bytes")
        return content_type

    def presign(key: str, content_type: str) -> PresignedPost:
        expires = datetime.now(UTC) + timedelta(seconds=settings.presign_expiry_s)
        post = aws.client("s3", settings).generate_presigned_post(
            Bucket=settings.uploads_bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, settings.max_upload_bytes],
            ],
            ExpiresIn=settings.presign_expiry_s,
        )
        return PresignedPost(
            url=post["url"],
            fields=post["fields"],
            key=key,
            max_bytes=settings.max_upload_bytes,
            expires_at=expires.isoformat(timespec="seconds"),
        )

    @app.post(
        "/v1/uploads",
        status_code=201,
        response_model=UploadResponse,
        responses={400: {"model": ErrorResponse}},
    )
    def create_upload(request: UploadRequest, caller: Caller) -> UploadResponse:
        """Record a new track and return the presigned POST that uploads its audio to S3."""
        content_type = check_upload(request.content_type, request.size)
        profile = users.ensure(caller.user_id, email=caller.email)
        track_id = uuid.uuid4().hex
        filename = safe_filename(request.filename)
        key = upload_key(settings.uploads_prefix, caller.user_id, track_id, filename)
        upload = presign(key, content_type)
        now = now_iso()
        track = {
            "track_id": track_id,
            "owner": caller.user_id,
            "status": str(Status.AWAITING_UPLOAD),
            "lane": str(Lane.PRIORITY if profile.get("priority") else Lane.STANDARD),
            "filename": filename,
            "content_type": content_type,
            "upload": {
                "bucket": settings.uploads_bucket,
                "key": key,
                "expires_at": upload.expires_at,
            },
            "steps": initial_steps(),
            "outputs": {},
            "renditions": {},
            "notifications": {},
            "stages": {},
            "created_at": now,
            "updated_at": now,
        }
        tracks.create(track)
        log.info("upload_presigned", track_id=track_id, owner=caller.user_id)
        return UploadResponse(track_id=track_id, upload=upload, track=public_record(track))

    # --- the copyright catalogue (administrators) ---------------------------------------------
    @app.post("/v1/catalogue/works", status_code=201, response_model=WorkResponse)
    def add_work(request: WorkRequest, caller: Admin) -> WorkResponse:
        """Register a reference work: upload its recording with the presigned POST returned."""
        content_type = check_upload(request.content_type, request.size)
        catalogue = catalogue_store(settings)
        work = catalogue.create(
            title=request.title,
            owner=request.owner,
            status=WorkStatus.AWAITING_UPLOAD,
            added_by=caller.user_id,
        )
        key = catalogue_key(settings.uploads_prefix, work["work_id"], request.filename)
        work = catalogue.update(work["work_id"], upload={"key": key}) or work
        return WorkResponse(work=work, upload=presign(key, content_type))

    @app.get("/v1/catalogue/works", response_model=WorkList)
    def list_works(
        caller: Admin,
        owner: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> WorkList:
        """The works in the catalogue (all, or one owner's)."""
        works, last = catalogue_store(settings).list(
            owner=owner, limit=limit, cursor=parse_cursor(cursor)
        )
        return WorkList(works=works, next_cursor=encode_cursor(last))

    @app.get("/v1/catalogue/works/{work_id}")
    def get_work(work_id: str, caller: Admin) -> dict[str, Any]:
        """One work and its indexing status."""
        work = catalogue_store(settings).get(work_id) if WORK_ID.match(work_id) else None
        if work is None:
            raise ApiError(404, "not_found", "no such work")
        return work

    @app.delete("/v1/catalogue/works/{work_id}")
    def delete_work(work_id: str, caller: Admin) -> dict[str, Any]:
        """Take a work out of the catalogue: it stops matching at once."""
        work = control.remove_work(work_id) if WORK_ID.match(work_id) else None
        if work is None:
            raise ApiError(404, "not_found", "no such work, or already removed")
        return work

    # --- copyright review (administrators) ----------------------------------------------------
    @app.get("/v1/reviews", response_model=TrackList)
    def held_tracks(caller: Admin) -> TrackList:
        """Tracks held for review (weak copyright evidence), oldest first."""
        held = tracks.list_by_status(Status.HELD_FOR_REVIEW)
        return TrackList(tracks=[public_record(t) for t in held])

    @app.post("/v1/reviews/{track_id}")
    def review(track_id: str, decision: ReviewDecision, caller: Admin) -> dict[str, Any]:
        """Approve (renditions and publication go ahead) or reject (the track is rejected)."""
        act = control.approve if decision.decision == "approve" else control.reject
        track = act(track_id, caller.user_id, decision.note) if TRACK_ID.match(track_id) else None
        if track is None:
            raise ApiError(409, "not_held", "the track is not held for review")
        return public_record(track)

    @app.get("/v1/tracks/{track_id}")
    def get_track(track_id: str, caller: Caller) -> dict[str, Any]:
        """The track's record: status, progress, steps, metadata, outputs, error."""
        return public_record(own_track(track_id, caller))

    @app.get("/v1/tracks/{track_id}/playback", response_model=Playback)
    def playback(track_id: str, caller: Caller) -> Playback:
        """Tags and presigned media URLs: the owner's track in any state, anyone's once
        published (feeds and search lead to it)."""
        track = tracks.get(track_id) if TRACK_ID.match(track_id) else None
        if track is None or (
            track["owner"] != caller.user_id and track["status"] != Status.PUBLISHED
        ):
            raise ApiError(404, "not_found", "no such track")
        s3 = aws.client("s3", settings)
        expiry = settings.media_url_expiry_s

        def url(uri: str) -> str:
            bucket, key = aws.split_s3_uri(uri)
            return s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expiry
            )

        outputs: dict[str, str] = track.get("outputs", {})
        document = TrackDocument.from_track(track)
        return Playback(
            track_id=track_id,
            owner=track["owner"],
            status=track["status"],
            title=document.title,
            artist=document.artist,
            album=document.album,
            duration_s=document.duration_s,
            artwork={
                name.removeprefix("artwork/"): url(uri)
                for name, uri in outputs.items()
                if name.startswith("artwork/")
            },
            peaks=url(outputs[PEAKS_ARTIFACT]) if PEAKS_ARTIFACT in outputs else None,
            renditions={
                str(bitrate): url(outputs[rendition_artifact(bitrate)])
                for bitrate in settings.rendition_bitrates
                if rendition_artifact(bitrate) in outputs
            },
            loudness=track.get("loudness"),
            copyright=track.get("copyright"),
            expires_at=(datetime.now(UTC) + timedelta(seconds=expiry)).isoformat(
                timespec="seconds"
            ),
        )

    @app.get("/v1/workflow", response_model=Workflow)
    def workflow(caller: Caller) -> Workflow:
        """The workflow's stages, each of branches that run side by side (for drawing it)."""
        return Workflow(
            stages=[
                {"name": stage.name, "branches": [list(branch) for branch in stage.branches]}
                for stage in STAGES
            ]
        )

    @app.get("/v1/tracks", response_model=TrackList)
    def list_tracks(
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> TrackList:
        """The caller's tracks, newest first."""
        start = parse_cursor(cursor)
        if start and start.get("owner") != caller.user_id:
            raise ApiError(400, "bad_cursor", "the cursor belongs to another listing")
        items, last = tracks.list_for_owner(caller.user_id, limit=limit, cursor=start)
        return TrackList(tracks=[public_record(t) for t in items], next_cursor=encode_cursor(last))

    @app.delete("/v1/tracks/{track_id}", status_code=202)
    def delete_track(track_id: str, caller: Caller) -> dict[str, str]:
        """Delete a track that has finished processing: it leaves search, feeds and the
        catalogue at once; its files go in the background."""
        track = own_track(track_id, caller)
        if track["status"] not in (*TERMINAL, Status.AWAITING_UPLOAD):
            raise ApiError(409, "busy", "the track is still being processed; delete it after")
        control.delete_track(track)
        return {"track_id": track_id, "status": "deleting"}

    @app.post("/v1/tracks/{track_id}/reprocess", status_code=202)
    def reprocess_track(track_id: str, caller: Caller) -> dict[str, Any]:
        """Run the track's workflow again (idempotent: outputs are replaced in place, no email or
        feed entry is sent twice)."""
        own_track(track_id, caller)
        track = recovery.reprocess(track_id, settings)
        if track is None:
            raise ApiError(
                409,
                "not_reprocessable",
                "only an uploaded track that is not held for review can be reprocessed",
            )
        return public_record(track)

    # --- search, follows and feeds --------------------------------------------------------------
    @app.get("/v1/search", response_model=SearchPage)
    def search(
        caller: Caller,
        q: Annotated[str, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> SearchPage:
        """Published tracks, ranked; prefix matching as you type, blind to case and accents."""
        hits, total = open_search(settings).search(q, limit=limit, offset=offset)
        return SearchPage(
            hits=[h.as_record() for h in hits], total=total, offset=offset, limit=limit
        )

    def known_user(user_id: str) -> str:
        if not USER_ID.match(user_id) or users.get(user_id) is None:
            raise ApiError(404, "not_found", "no such user")
        return user_id

    @app.post("/v1/users/{user_id}/followers", status_code=204)
    def follow(user_id: str, caller: Caller) -> None:
        """The caller follows ``user_id``: their next published tracks reach the caller's feed."""
        if known_user(user_id) == caller.user_id:
            raise ApiError(400, "self_follow", "you cannot follow yourself")
        users.ensure(caller.user_id, email=caller.email)
        social.follow(user_id, caller.user_id)

    @app.delete("/v1/users/{user_id}/followers", status_code=204)
    def unfollow(user_id: str, caller: Caller) -> None:
        """The caller stops following ``user_id``."""
        social.unfollow(known_user(user_id), caller.user_id)

    @app.get("/v1/feed", response_model=FeedPage)
    def feed(
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> FeedPage:
        """Tracks published by the people the caller follows, newest first."""
        start = parse_cursor(cursor)
        if start and start.get("user_id") != caller.user_id:
            raise ApiError(400, "bad_cursor", "the cursor belongs to another feed")
        entries, last = social.feed(caller.user_id, limit=limit, cursor=start)
        for entry in entries:
            entry.pop("expires_at", None)
            entry.pop("user_id", None)
        return FeedPage(entries=entries, next_cursor=encode_cursor(last))

    # --- accounts -------------------------------------------------------------------------------
    @app.post("/v1/session", status_code=201, response_model=Session)
    def sign_in(request: SessionRequest) -> Session:
        """Local stacks only: a token for any named user, as the CLI's ``--user`` mints. A
        deployment's tokens come from its identity provider; there this route is 404."""
        if not settings.local_sign_in:
            raise ApiError(404, "not_found", "sign in through your identity provider")
        token = mint_token(settings, request.user)
        return Session(user=request.user, token=token, expires_in=settings.token_ttl_s)

    @app.get("/v1/me")
    def me(caller: Caller) -> dict[str, Any]:
        """The caller's profile."""
        return users.ensure(caller.user_id, email=caller.email)

    @app.patch("/v1/me")
    def update_me(update: ProfileUpdate, caller: Caller) -> dict[str, Any]:
        """Change the caller's email address or opt out of (or back into) emails."""
        return users.update(caller.user_id, **update.model_dump(exclude_none=True))

    @app.patch("/v1/users/{user_id}")
    def update_account(user_id: str, update: AccountUpdate, caller: Admin) -> dict[str, Any]:
        """Administrators: flag an account as priority (its uploads get their own lane)."""
        if not USER_ID.match(user_id):
            raise ApiError(404, "not_found", "no such user")
        return users.update(user_id, **update.model_dump(exclude_none=True))

    return app
