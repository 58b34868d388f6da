"""Access to the running service's objects and to the login kept in the session."""

from __future__ import annotations

from typing import Any, cast

from flask import current_app, session

from opendid.login.service import LoginError
from opendid.services import Services


def services() -> Services:
    return cast(Services, current_app.extensions["opendid"])


def login_or_none() -> dict[str, Any] | None:
    """The login started by /authorize in this browser session, if any."""
    login = session.get("login")
    return login if isinstance(login, dict) and "id" in login else None


def current_login() -> dict[str, Any]:
    """The login in this browser session, or 401 as OpenDID answers."""
    login = login_or_none()
    if login is None:
        raise LoginError(401, "Failed to get session", "no_session")
    return login


def save_login(login: dict[str, Any]) -> None:
    session["login"] = login
    session.modified = True
