"""gunicorn entry point: `OPENDID_CONFIG=config.yaml gunicorn wsgi:app`."""

from app import create_app

app = create_app()
app.extensions["opendid"].warm_up()
