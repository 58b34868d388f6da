"""Read by `gunicorn wsgi:app` from the project folder: the settings `opendid serve` uses.

Log lines never carry login tokens; the app is loaded once before forking (shared memory) and
each worker connects to the chain after it starts; gthread workers keep connections alive.
"""

from opendid.metrics_files import child_exit, on_exit, on_starting, prepare  # noqa: F401
from opendid.server import KEEPALIVE, THREADS, post_worker_init, pre_fork  # noqa: F401

prepare()  # before the app is loaded (preload_app): the workers' shared metrics folder

logger_class = "opendid.server.RedactingLogger"
worker_class = "gthread"
threads = THREADS
keepalive = KEEPALIVE
preload_app = True
