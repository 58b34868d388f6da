"""Read by `gunicorn wsgi:app` from the project folder: log lines never carry login tokens."""

logger_class = "opendid.server.RedactingLogger"
