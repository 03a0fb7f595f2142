"""The API against abuse, on the emulator: the declared size bound into the upload policy,
rights and revocation from the users table, local sign-in only where it belongs, bodies over
the limit and input no handler may choke on, and the headers every answer carries."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from trackflow.api.app import create_app
from trackflow.auth import mint_token
from trackflow.settings import AwsTarget, Settings

pytestmark = pytest.mark.usefixtures("emulator")


@pytest.fixture(scope="module")
def api(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _auth(settings: Settings, user: str, **mint: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user, **mint)}"}


def _presign(api: TestClient, settings: Settings, size: int) -> dict:
    response = api.post(
        "/v1/uploads",
        headers=_auth(settings, "alice"),
        json={"filename": "song.mp3", "content_type": "audio/mpeg", "size": size},
    )
    assert response.status_code == 201, response.text
    return response.json()["upload"]


def _post_to_s3(upload: dict, body: bytes) -> httpx.Response:
    return httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("song.mp3", body, "audio/mpeg")},
        timeout=60,
    )


# --- item 2: the declared size ----------------------------------------------------------------


def test_s3_refuses_more_bytes_than_were_declared(api: TestClient, settings: Settings):
    """Declaring 10 bytes and uploading 20 MB is refused by S3's policy check."""
    upload = _presign(api, settings, 10)
    assert upload["max_bytes"] == 10
    refused = _post_to_s3(upload, b"x" * (20 * 1024 * 1024))
    assert refused.status_code == 400 and "<Code>EntityTooLarge</Code>" in refused.text


def test_s3_refuses_fewer_bytes_than_were_declared(api: TestClient, settings: Settings):
    """The policy is the declared size exactly: a shorter file is refused, the right one kept."""
    upload = _presign(api, settings, 1000)
    refused = _post_to_s3(upload, b"x" * 999)
    assert refused.status_code == 400 and "<Code>EntityTooSmall</Code>" in refused.text
    assert _post_to_s3(upload, b"x" * 1000).status_code == 204


# --- item 5: identity ---------------------------------------------------------------------


def test_admin_rights_come_from_the_users_table_at_request_time(
    api: TestClient, settings: Settings
):
    """Granting and withdrawing rights takes effect on the next request of the same token."""
    carol = _auth(settings, _name("carol"))
    user = carol["Authorization"]  # the same token throughout
    carol_id = api.get("/v1/me", headers=carol).json()["user_id"]
    assert api.get("/v1/reviews", headers={"Authorization": user}).status_code == 403
    admin = _auth(settings, "admin")
    granted = api.patch(f"/v1/users/{carol_id}", headers=admin, json={"admin": True})
    assert granted.status_code == 200 and granted.json()["admin"] is True
    assert api.get("/v1/reviews", headers={"Authorization": user}).status_code == 200
    api.patch(f"/v1/users/{carol_id}", headers=admin, json={"admin": False})
    assert api.get("/v1/reviews", headers={"Authorization": user}).status_code == 403


def test_a_local_admin_is_one_only_where_the_settings_say(settings: Settings):
    """local_admins are recorded as administrators on the embedded stack, nowhere else."""
    boss = _name("boss")
    embedded = TestClient(create_app(settings.model_copy(update={"local_admins": (boss,)})))
    assert embedded.get("/v1/reviews", headers=_auth(settings, boss)).status_code == 200
    other = _name("boss")
    on_localstack = settings.model_copy(
        update={"aws_target": AwsTarget.LOCALSTACK, "local_admins": (other,)}
    )
    refused = TestClient(create_app(on_localstack)).get(
        "/v1/reviews", headers=_auth(settings, other)
    )
    assert refused.status_code == 403
    nobody = TestClient(create_app(settings.model_copy(update={"local_admins": ()})))
    stranger = _name("admin")
    assert nobody.get("/v1/reviews", headers=_auth(settings, stranger)).status_code == 403


def test_a_withdrawn_local_admin_stays_withdrawn(api: TestClient, settings: Settings):
    """An explicit admin: false is not re-granted by local_admins on the next request."""
    boss = _name("boss")
    app = TestClient(create_app(settings.model_copy(update={"local_admins": (boss,)})))
    assert app.get("/v1/reviews", headers=_auth(settings, boss)).status_code == 200
    api.patch(f"/v1/users/{boss}", headers=_auth(settings, "admin"), json={"admin": False})
    assert app.get("/v1/reviews", headers=_auth(settings, boss)).status_code == 403


def test_the_session_route_exists_only_on_the_embedded_stack(settings: Settings):
    """LocalStack, which may be shared, gets no unauthenticated sign-in."""
    on_localstack = settings.model_copy(update={"aws_target": AwsTarget.LOCALSTACK})
    refused = TestClient(create_app(on_localstack)).post("/v1/session", json={"user": "admin"})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"


def test_a_session_token_carries_no_rights(api: TestClient):
    """The session's token has no admin claim: rights are the users table's."""
    token = api.post("/v1/session", json={"user": _name("dave")}).json()["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "admin" not in claims and claims["aud"] == "trackflow-api"


def test_signing_out_everywhere_revokes_the_callers_tokens(api: TestClient, settings: Settings):
    """DELETE /v1/me/tokens refuses every token issued so far (tokens issued from the next
    second on are accepted: test_tokens_issued_before_a_revocation_are_refused)."""
    erin = _name("erin")
    now = int(time.time())
    old = _auth(settings, erin, issued_at=now - 5)
    assert api.delete("/v1/me/tokens", headers=old).status_code == 204
    refused = api.get("/v1/tracks", headers=old)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    profile = api.get("/v1/me", headers=_auth(settings, "admin"))  # someone else's view
    assert profile.json()["user_id"] == "admin"


def test_an_admin_revokes_another_users_tokens(api: TestClient, settings: Settings):
    """DELETE /v1/users/{id}/tokens (administrators) refuses that user's current tokens."""
    frank = _name("frank")
    token = _auth(settings, frank, issued_at=int(time.time()) - 5)
    assert api.get("/v1/tracks", headers=token).status_code == 200
    assert api.delete(f"/v1/users/{frank}/tokens", headers=token).status_code == 403
    revoked = api.delete(f"/v1/users/{frank}/tokens", headers=_auth(settings, "admin"))
    assert revoked.status_code == 204
    assert api.get("/v1/tracks", headers=token).status_code == 401


# --- item 6: requests and errors ----------------------------------------------------------

_BODY_ROUTES = [
    ("POST", "/v1/uploads"),
    ("POST", "/v1/catalogue/works"),
    ("POST", "/v1/reviews/0123456789abcdef0123456789abcdef"),
    ("PATCH", "/v1/me"),
    ("PATCH", "/v1/users/alice"),
    ("POST", "/v1/session"),
]

_HOSTILE_BODIES = {
    "lone surrogate": b'{"filename": "\\udcff.mp3", "user": "\\udcff", "email": "\\udcff@x.org",'
    b' "title": "\\udcff", "decision": "\\udcff", "content_type": "audio/mpeg", "size": 10}',
    "surrogate key": b'{"\\udcff": 1}',
    "NaN": b'{"filename": "a.mp3", "content_type": "audio/mpeg", "size": NaN,'
    b' "priority": NaN, "email_opt_out": NaN, "user": NaN, "decision": NaN}',
    "Infinity": b'{"size": Infinity, "priority": -Infinity}',
    "deep nesting": b"[" * 30_000 + b"]" * 30_000,
    "deep object": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "not json": b"\xff\xfe\x00garbage",
    "a list": b"[1, 2, 3]",
}


def _assert_error_shape(response: httpx.Response, *statuses: int) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and len(body["error"]["message"]) < 1000
    return body["error"]


@pytest.mark.parametrize(("method", "path"), _BODY_ROUTES)
@pytest.mark.parametrize("kind", list(_HOSTILE_BODIES))
def test_hostile_bodies_get_a_4xx_in_the_error_shape(
    api: TestClient, settings: Settings, method: str, path: str, kind: str
):
    """Lone surrogates, NaN, deep nesting or garbage: a 4xx {"error": ...}, never a 500."""
    response = api.request(
        method,
        path,
        content=_HOSTILE_BODIES[kind],
        headers={**_auth(settings, "admin"), "Content-Type": "application/json"},
    )
    _assert_error_shape(response, 400, 422)


def test_a_validation_error_names_the_field_in_our_words(api: TestClient, settings: Settings):
    """A 422 says which field and what it must be, without echoing the input."""
    response = api.post(
        "/v1/uploads",
        headers=_auth(settings, "alice"),
        json={"filename": "x" * 5000, "content_type": "audio/mpeg", "size": "10", "extra": 1},
    )
    error = _assert_error_shape(response, 422)
    assert error["code"] == "invalid_request"
    message = error["message"]
    assert "body field size must be an integer" in message
    assert "body field filename must have at most 1000 characters" in message
    assert "body field extra is not a field of this request" in message
    assert "xxxx" not in message


def test_a_body_over_the_limit_is_refused_before_it_is_read(settings: Settings):
    """Content-Length over the limit: 413 in the error shape, with the security headers, from
    any route."""
    small = TestClient(create_app(settings.model_copy(update={"max_request_body_bytes": 1024})))
    body = json.dumps({"filename": "a" * 2000, "content_type": "audio/mpeg"}).encode()
    for path in ("/v1/uploads", "/v1/nowhere"):
        response = small.post(
            path,
            content=body,
            headers={**_auth(settings, "alice"), "Content-Type": "application/json"},
        )
        assert _assert_error_shape(response, 413)["code"] == "body_too_large"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_streamed_body_over_the_limit_is_refused(settings: Settings):
    """Without a Content-Length, the body is cut off as it passes the limit: 413, shaped."""
    small = TestClient(create_app(settings.model_copy(update={"max_request_body_bytes": 1024})))

    def chunks() -> Iterator[bytes]:
        yield b'{"filename": "'
        for _ in range(100):
            yield b"a" * 512
        yield b'", "content_type": "audio/mpeg"}'

    response = small.post(
        "/v1/uploads",
        content=chunks(),
        headers={**_auth(settings, "alice"), "Content-Type": "application/json"},
    )
    assert _assert_error_shape(response, 413)["code"] == "body_too_large"


def test_the_schema_documents_the_error_shape_for_422_and_413(api: TestClient):
    """Every operation's 422 is the ErrorResponse, and FastAPI's HTTPValidationError is gone."""
    schema = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    upload = schema["paths"]["/v1/uploads"]["post"]["responses"]
    for status in ("413", "422"):
        ref = upload[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")


def test_api_answers_carry_security_headers(api: TestClient, settings: Settings):
    """nosniff, no-referrer and a no-content CSP everywhere; no-store on authenticated answers."""
    for response in (
        api.get("/v1/tracks", headers=_auth(settings, "alice")),
        api.get("/v1/tracks"),  # a refusal too
        api.post("/v1/session", json={"user": "web-gina"}),  # a token in the body
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "default-src 'self'" in api.get("/app/").headers["content-security-policy"]


def test_the_docs_are_served_whole_by_the_api(api: TestClient):
    """/docs loads Swagger UI from the API itself, under a CSP that allows nothing else."""
    page = api.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert (
        "http://" not in page.text and "https://" not in page.text and "<script>" not in page.text
    )
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    for asset, kind in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("setup.js", "text/javascript"),
    ):
        served = api.get(f"/docs/assets/{asset}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
    assert api.get("/docs/assets/index.html").status_code == 404
    assert api.get("/redoc").status_code == 404
