"""People: follows, feeds, the caller's profile and (administrators) other accounts."""

from typing import Any

from fastapi import APIRouter

from trackflow.adapters.state.social import encode_cursor
from trackflow.adapters.state.users import UserStore
from trackflow.api.dependencies import Admin, Caller, Profiles, Social, Users
from trackflow.api.errors import ApiError
from trackflow.api.paging import Cursor, PageSize, own_cursor
from trackflow.api.schemas import AccountUpdate, FeedPage, ProfileUpdate
from trackflow.domain.keys import USER_ID

router = APIRouter()


def _known_user(user_id: str, users: UserStore) -> str:
    if not USER_ID.match(user_id) or users.get(user_id) is None:
        raise ApiError(404, "not_found", "no such user")
    return user_id


@router.post("/v1/users/{user_id}/followers", status_code=204)
def follow(user_id: str, caller: Caller, users: Users, social: Social) -> None:
    """The caller follows ``user_id``: their next published tracks reach the caller's feed."""
    if _known_user(user_id, users) == caller.user_id:
        raise ApiError(400, "self_follow", "you cannot follow yourself")
    users.ensure(caller.user_id, email=caller.email)
    social.follow(user_id, caller.user_id)


@router.delete("/v1/users/{user_id}/followers", status_code=204)
def unfollow(user_id: str, caller: Caller, users: Users, social: Social) -> None:
    """The caller stops following ``user_id``."""
    social.unfollow(_known_user(user_id, users), caller.user_id)


@router.get("/v1/feed", response_model=FeedPage)
def feed(caller: Caller, social: Social, limit: PageSize = 20, cursor: Cursor = None) -> FeedPage:
    """Tracks published by the people the caller follows, newest first."""
    start = own_cursor(cursor, "user_id", caller.user_id, "feed")
    entries, last = social.feed(caller.user_id, limit=limit, cursor=start)
    for entry in entries:  # the feed's own bookkeeping, not the client's business
        entry.pop("expires_at", None)
        entry.pop("user_id", None)
    return FeedPage(entries=entries, next_cursor=encode_cursor(last))


@router.get("/v1/me")
def me(caller: Caller, users: Users) -> dict[str, Any]:
    """The caller's profile."""
    return users.ensure(caller.user_id, email=caller.email)


@router.patch("/v1/me")
def update_me(update: ProfileUpdate, caller: Caller, profiles: Profiles) -> dict[str, Any]:
    """Opt out of (or back into) emails, or change the email address: a new address is kept
    as ``pending_email`` and gets a link to confirm it; mail goes to it only once confirmed.
    429 past the caller's profile changes an hour, or the address's confirmation emails a
    day."""
    changes = update.model_dump(exclude_none=True)
    email = changes.pop("email", None)
    return profiles.apply(caller.user_id, caller.admin, changes, email)


@router.delete("/v1/me/tokens", status_code=204)
def revoke_my_tokens(caller: Caller, users: Users) -> None:
    """Sign out everywhere: every token the caller holds now is refused from now on."""
    users.revoke_tokens(caller.user_id)


@router.patch("/v1/users/{user_id}")
def update_account(
    user_id: str, update: AccountUpdate, caller: Admin, users: Users
) -> dict[str, Any]:
    """Administrators: flag an account as priority (its uploads get their own lane), or grant
    or withdraw administrator rights (effective on the account's next request)."""
    if not USER_ID.match(user_id):
        raise ApiError(404, "not_found", "no such user")
    changes = update.model_dump(exclude_none=True)
    if "email" in changes:  # an administrator's word confirms an address
        changes["email_verified"] = True
    return users.update(user_id, **changes)


@router.delete("/v1/users/{user_id}/tokens", status_code=204)
def revoke_tokens(user_id: str, caller: Admin, users: Users) -> None:
    """Administrators: refuse every token ``user_id`` holds now (a stolen token, a departed
    user); tokens issued afterwards work."""
    if not USER_ID.match(user_id):
        raise ApiError(404, "not_found", "no such user")
    users.revoke_tokens(user_id)
