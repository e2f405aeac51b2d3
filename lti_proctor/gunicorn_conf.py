"""The gunicorn configuration `lti-proctor serve` runs: the worker model, the app each worker
builds, and the shared directory of the multiprocess Prometheus metrics.

gunicorn's master loads this file (`-c python:lti_proctor.gunicorn_conf`); flags on its command
line win over the values here. Nothing here imports the app or prometheus_client at module level:
gevent workers patch the standard library only after the master has loaded this file, and
prometheus_client picks its multiprocess storage from the environment when first imported.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNED_DIR_ENV = "LTI_PROCTOR_OWNS_METRICS_DIR"

wsgi_app = "lti_proctor.gunicorn_conf:worker_app()"
bind = "127.0.0.1:5000"
workers = 2
# gevent: a launch spends ~300 ms waiting for the proctoring service; a greenlet per request
# waits for it at no cost, so 30+ calls in flight per worker need no thread per call.
# psycopg >= 3.1.14 and redis-py cooperate with gevent's patched sockets by themselves.
worker_class = "gevent"
worker_connections = 1000  # gevent: requests in flight per worker
threads = 32  # gthread: enough threads for 30+ service calls in flight per worker
timeout = 60
graceful_timeout = 30
keepalive = 5  # behind a proxy that keeps connections to us alive
accesslog = None  # the app logs one access line per request itself, with its request id
errorlog = "-"
control_socket_disable = True  # gunicorn 24+: several instances on one host must not share one


def worker_app() -> Flask:
    """The app of one gunicorn worker: it never migrates or creates keys (`serve` built the app
    once before forking, which upgraded the embedded SQLite or refused a database behind)."""
    from lti_proctor import create_app

    return create_app({"AUTO_SETUP": False, "AUTO_MIGRATE": False})


def on_starting(server: Any) -> None:
    """In the master, before any worker: give the workers an empty metrics directory to share."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):  # a previous run's samples
            os.remove(stale)
        return
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="lti-proctor-metrics-")
    os.environ[_OWNED_DIR_ENV] = "1"


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker exits: drop its live-gauge files."""
    from lti_proctor import metrics

    metrics.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """In the master, at shutdown: remove the metrics directory if this run created it."""
    if os.environ.get(_OWNED_DIR_ENV) and os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
