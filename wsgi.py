"""gunicorn entry point: `OPENDID_CONFIG=config.yaml gunicorn wsgi:app` (settings in
gunicorn.conf.py: each worker connects to the chain once it has started)."""

from app import create_app

app = create_app()
