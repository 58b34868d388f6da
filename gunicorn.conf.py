"""Read by `gunicorn wsgi:app` from the project folder: the settings `opendid serve` uses.

Log lines never carry login tokens; the app is loaded once before forking (shared memory) and
each worker connects to the chain after it starts; gthread workers keep connections alive.
"""

from opendid.server import KEEPALIVE, THREADS, post_worker_init, pre_fork  # noqa: F401

logger_class = "opendid.server.RedactingLogger"
worker_class = "gthread"
threads = THREADS
keepalive = KEEPALIVE
preload_app = True
