"""Authentication over HTTP: logging in, using, refreshing and losing a token.

Token verification itself is unit-tested in tests/auth; these tests check what a client of
the REST API sees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bugstream.auth.tokens import TokenConfig, issue_token
from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.models import User, UserStatusChange, UserUpdate
from bugstream.services import users
from tests.api.conftest import TEST_SECRET, Api, bearer, error_payload
from tests.support.factory import PASSWORD, Factory

ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"


async def test_login_returns_a_token_that_identifies_the_user(api: Api, factory: Factory) -> None:
    user = await factory.user(Role.DEVELOPER)

    response = await api.client.post(TOKEN, json={"username": user.username, "password": PASSWORD})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["expires_at"].endswith("Z")
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs((expires_at - datetime.now(UTC)) - timedelta(hours=1)) < timedelta(minutes=1)
    assert body["user"]["id"] == user.id
    assert "password" not in str(body["user"])
    me = await api.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user.id
    assert me.json()["username"] == user.username
    assert me.json()["role"] == "developer"


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    api: Api, factory: Factory
) -> None:
    user = await factory.user()

    wrong = await api.client.post(TOKEN, json={"username": user.username, "password": "nope!"})
    unknown = await api.client.post(TOKEN, json={"username": "nobody", "password": PASSWORD})

    error_payload(wrong, 401, "invalid_credentials")
    error_payload(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert "access_token" not in wrong.text


@pytest.mark.parametrize("status", [UserStatus.SUSPENDED, UserStatus.INACTIVE])
async def test_a_user_who_is_not_active_cannot_log_in(
    api: Api, factory: Factory, status: UserStatus
) -> None:
    user = await factory.user()
    admin = await factory.admin()
    await users.change_user_status(api.ctx, admin, user.id, UserStatusChange(status=status))

    response = await api.client.post(TOKEN, json={"username": user.username, "password": PASSWORD})

    payload = error_payload(response, 403, "forbidden")
    assert status.value in payload["message"]
    assert "access_token" not in response.text
    # Without the right password, the account's status is not revealed.
    wrong = await api.client.post(TOKEN, json={"username": user.username, "password": "nope!"})
    assert error_payload(wrong, 401, "invalid_credentials")["message"] == (
        "invalid username or password"
    )


async def _suspend(api: Api, factory: Factory, user: User) -> None:
    status = UserStatusChange(status=UserStatus.SUSPENDED)
    await users.change_user_status(api.ctx, await factory.admin(), user.id, status)


async def _deactivate(api: Api, factory: Factory, user: User) -> None:
    status = UserStatusChange(status=UserStatus.INACTIVE)
    await users.change_user_status(api.ctx, await factory.admin(), user.id, status)


async def _delete(api: Api, factory: Factory, user: User) -> None:
    await users.delete_user(api.ctx, await factory.admin(), user.id)


@pytest.mark.parametrize("lose_access", [_suspend, _deactivate, _delete])
async def test_an_issued_token_stops_working_when_its_user_loses_access(
    api: Api,
    factory: Factory,
    lose_access: Callable[[Api, Factory, User], Awaitable[None]],
) -> None:
    user = await factory.user()
    headers = await api.login(user)
    assert (await api.client.get(ME, headers=headers)).status_code == 200

    await lose_access(api, factory, user)

    error_payload(await api.client.get(ME, headers=headers), 401, "invalid_token")
    error_payload(
        await api.client.post("/api/v1/auth/refresh", headers=headers), 401, "invalid_token"
    )


async def test_a_token_works_again_when_its_user_is_reactivated(api: Api, factory: Factory) -> None:
    user = await factory.user()
    headers = await api.login(user)
    await _suspend(api, factory, user)
    error_payload(await api.client.get(ME, headers=headers), 401, "invalid_token")

    active = UserStatusChange(status=UserStatus.ACTIVE)
    await users.change_user_status(api.ctx, await factory.admin(), user.id, active)

    assert (await api.client.get(ME, headers=headers)).status_code == 200


async def test_an_expired_token_is_refused_as_expired(api: Api, factory: Factory) -> None:
    user = await factory.user()
    past = datetime.now(UTC) - timedelta(hours=2)
    token = issue_token(
        api.token_config, user_id=user.id, role=user.role.value, ttl_seconds=3600, now=past
    )

    response = await api.client.get(ME, headers=bearer(token))

    error_payload(response, 401, "token_expired")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer not-a-jwt"}, id="garbage"),
        pytest.param({"Authorization": "Bearer a.b.c"}, id="three-garbage-segments"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
    ],
)
async def test_a_missing_or_garbage_token_is_invalid(
    api: Api, factory: Factory, headers: dict[str, str]
) -> None:
    await factory.user()
    error_payload(await api.client.get(ME, headers=headers), 401, "invalid_token")


async def test_a_token_signed_with_another_secret_is_invalid(api: Api, factory: Factory) -> None:
    user = await factory.user()
    other = TokenConfig(secret="another-secret-" + TEST_SECRET)
    token = issue_token(other, user_id=user.id, role=user.role.value)

    error_payload(await api.client.get(ME, headers=bearer(token)), 401, "invalid_token")


async def test_a_token_for_a_user_that_never_existed_is_invalid(api: Api) -> None:
    token = issue_token(api.token_config, user_id=4242, role="admin")

    error_payload(await api.client.get(ME, headers=bearer(token)), 401, "invalid_token")


async def test_a_role_change_applies_to_tokens_already_issued(api: Api, factory: Factory) -> None:
    """The role is read from the database on every request, not trusted from the token."""
    user = await factory.user(Role.DEVELOPER)
    headers = await api.login(user)
    project = {"name": "promoted", "description": ""}
    error_payload(
        await api.client.post("/api/v1/projects", json=project, headers=headers), 403, "forbidden"
    )

    admin = await factory.admin()
    await users.update_user(api.ctx, admin, user.id, UserUpdate(role=Role.MANAGER))

    created = await api.client.post("/api/v1/projects", json=project, headers=headers)
    assert created.status_code == 201, created.text
    me = await api.client.get(ME, headers=headers)
    assert me.json()["role"] == "manager"


async def test_a_demoted_admin_loses_admin_rights_at_once(api: Api, factory: Factory) -> None:
    user = await factory.user(Role.ADMIN)
    headers = await api.login(user)
    assert (await api.client.get("/api/v1/users", headers=headers)).status_code == 200

    admin = await factory.admin()
    await users.update_user(api.ctx, admin, user.id, UserUpdate(role=Role.VIEWER))

    error_payload(await api.client.get("/api/v1/users", headers=headers), 403, "forbidden")


async def test_refresh_returns_a_new_working_token(api: Api, factory: Factory) -> None:
    user = await factory.user(Role.REPORTER)
    old = await api.token(user)

    response = await api.client.post("/api/v1/auth/refresh", headers=bearer(old))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] != old
    assert body["token_type"] == "bearer"
    assert body["user"]["id"] == user.id
    me = await api.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user.id


async def test_refresh_needs_a_valid_token(api: Api, factory: Factory) -> None:
    user = await factory.user()
    expired = issue_token(
        api.token_config,
        user_id=user.id,
        role=user.role.value,
        now=datetime.now(UTC) - timedelta(hours=2),
    )

    error_payload(await api.client.post("/api/v1/auth/refresh"), 401, "invalid_token")
    error_payload(
        await api.client.post("/api/v1/auth/refresh", headers=bearer(expired)), 401, "token_expired"
    )
