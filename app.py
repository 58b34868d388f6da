"""The Flask application factory (`create_app`); it lives in `opendid.application`."""

from opendid.application import create_app

__all__ = ["create_app"]
