"""gunicorn hooks for the launch benchmark: each worker says when it is ready and, when it exits,
writes its figures.

Used by launch_burst.py --server gunicorn (`gunicorn -c benchmarks/gunicorn_conf.py
--pythonpath benchmarks 'bench_tool:build_app()'`); bench_tool does the work.
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    """In a worker whose app is loaded: leave a ready-<pid> marker for the benchmark."""
    from bench_tool import mark_ready

    mark_ready()


def worker_exit(server: Any, worker: Any) -> None:
    """In the exiting worker: write its peak RSS and parsed-key cache counters."""
    from bench_tool import write_stats

    write_stats()
