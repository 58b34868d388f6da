"""A POST to a token-management endpoint authenticated as a client, as RPs send it."""

from __future__ import annotations

import base64

import requests


def post_as_client(url: str, form: dict[str, str], client_id: str, secret: str | None,
                   basic: bool = False, send_secret: bool = True) -> requests.Response:
    """client_secret_basic (`basic`), else client_secret_post; the secret is left out when it is
    None or `send_secret` is False (a public client authenticates by its id alone)."""
    form = dict(form)
    headers = {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client_id}:{secret}".encode()).decode()
    else:
        form["client_id"] = client_id
        if secret is not None and send_secret:
            form["client_secret"] = secret
    return requests.post(url, data=form, headers=headers, timeout=30)
