"""Read by `gunicorn wsgi:app` from the project folder: the settings `opendid serve` uses.

Log lines never carry login tokens; the app is loaded once before forking (shared memory) and
each worker connects to the chain after it starts; gthread workers keep connections alive.
"""

from opendid.server import (  # noqa: F401
    KEEPALIVE,
    THREADS,
    child_exit,
    post_worker_init,
    pre_fork,
    prepare_metrics,
)

prepare_metrics()  # before the app is loaded (preload_app): workers share one metrics folder

logger_class = "opendid.server.RedactingLogger"
worker_class = "gthread"
threads = THREADS
keepalive = KEEPALIVE
preload_app = True
