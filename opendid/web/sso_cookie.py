"""The provider session's own cookie (`opendid_sso`), apart from Flask's per-login session.

HttpOnly, SameSite=Lax (sent on top-level navigations from relying parties, not on their
cross-site POSTs or frames), Secure in production; scoped to the API that reads it.
"""

from __future__ import annotations

from flask import Response, request

from opendid.web.context import services

COOKIE = "opendid_sso"
COOKIE_PATH = "/api/v1"


def read() -> str | None:
    return request.cookies.get(COOKIE)


def store(response: Response, session_id: str) -> None:
    config = services().config
    response.set_cookie(COOKIE, session_id, max_age=config.ssoSessionLifetime, path=COOKIE_PATH,
                        secure=config.production, httponly=True, samesite="Lax")


def clear(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=services().config.production,
                           httponly=True, samesite="Lax")
