"""The tool as the launch benchmark runs it: in its own process, with exit-time statistics.

launch_burst.py starts this module as a child process (`python benchmarks/bench_tool.py --port P`,
a werkzeug threaded server) or through gunicorn (`bench_tool:build_app()` with
gunicorn_conf.py). The tool's settings come as JSON in LTI_PROCTOR_BENCH_CONFIG. On exit each
process writes tool-<pid>.json into LTI_PROCTOR_BENCH_STATS_DIR: its peak RSS (VmHWM) and the
parsed-key cache counters of lti_proctor.lti.jwks. With LTI_PROCTOR_BENCH_PROFILE=1 every request
runs under cProfile (LTI_PROCTOR_BENCH_PROFILE=cpu: each thread's CPU time, =wall: wall-clock
time, which under load is mostly waiting for the GIL) and the merged profile is written as
profile-<pid>.pstats.
Benchmark-only code: nothing in lti_proctor imports it.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import math
import os
import pstats
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CONFIG_ENV = "LTI_PROCTOR_BENCH_CONFIG"
STATS_ENV = "LTI_PROCTOR_BENCH_STATS_DIR"
PROFILE_ENV = "LTI_PROCTOR_BENCH_PROFILE"
SQL_LOG_ENV = "LTI_PROCTOR_BENCH_SQL_LOG"
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_profiles: list[cProfile.Profile] = []
_profiles_lock = threading.Lock()
_db_counts: dict[str, int] = {"statements": 0, "connects": 0, "checkouts": 0}
_db_counts_lock = threading.Lock()


_sql_log: list[tuple[str, str]] = []
_current = threading.local()


def _bump(name: str) -> None:
    with _db_counts_lock:
        _db_counts[name] += 1


def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    _bump("statements")
    if os.environ.get(SQL_LOG_ENV) == "1":
        with _db_counts_lock:
            _sql_log.append((getattr(_current, "path", "?"), " ".join(statement.split())[:140]))


def count_database_work() -> None:
    """Count SQL statements, new DBAPI connections and pool checkouts of every engine."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    event.listen(Engine, "before_cursor_execute", _statement)
    event.listen(Pool, "connect", lambda *args: _bump("connects"))
    event.listen(Pool, "checkout", lambda *args: _bump("checkouts"))


class ProfiledApp:
    """WSGI wrapper running each request (body included) under its own cProfile profiler."""

    def __init__(self, app: Callable[..., Iterable[bytes]], clock: str) -> None:
        self.app = app
        self.timer = time.thread_time if clock == "cpu" else time.perf_counter

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        profile = cProfile.Profile(self.timer)
        profile.enable()
        try:
            result = self.app(environ, start_response)
            try:
                body = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            profile.disable()
            with _profiles_lock:
                _profiles.append(profile)
        return body


_timings: dict[str, list[float]] = {}


class TimedApp:
    """WSGI wrapper recording how long the tool spends inside each request (ms, by path)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start = time.perf_counter()
        _current.path = environ.get("PATH_INFO", "")
        result = self.app(environ, start_response)
        try:
            body = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        elapsed = (time.perf_counter() - start) * 1000
        with _db_counts_lock:
            _timings.setdefault(environ.get("PATH_INFO", ""), []).append(elapsed)
        return body


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: int) -> float:
        rank = max(1, math.ceil(len(ordered) * q / 100))
        return round(ordered[rank - 1], 1)

    return {"n": len(ordered), "p50": at(50), "p95": at(95), "p99": at(99)}


def build_app() -> Callable[..., Iterable[bytes]]:
    """The tool's WSGI app from the benchmark's settings (wrapped in the profiler if asked)."""
    from lti_proctor import create_app

    count_database_work()
    app = create_app(json.loads(os.environ[CONFIG_ENV]))
    clock = os.environ.get(PROFILE_ENV)
    return TimedApp(ProfiledApp(app, clock) if clock in ("cpu", "wall") else app)


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmHWM and VmRSS (kB) of a process from /proc; empty when it is gone."""
    values: dict[str, int] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0])
    return values


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc; 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_stats() -> None:
    """Write this process's figures (and its merged profile) into the stats directory."""
    stats_dir = os.environ.get(STATS_ENV)
    if not stats_dir:
        return
    from lti_proctor.lti.jwks import parsed_key_cache_info

    info = parsed_key_cache_info()
    pid = os.getpid()
    figures = {
        "pid": pid,
        **proc_status(),
        "db": dict(_db_counts),
        "sql_log": _sql_log,
        "in_app_ms": {path: _quantiles(v) for path, v in _timings.items() if v},
        "parsed_key_cache": {
            "hits": info.hits,
            "misses": info.misses,
            "currsize": info.currsize,
        },
    }
    Path(stats_dir, f"tool-{pid}.json").write_text(json.dumps(figures))
    with _profiles_lock:
        profiles = list(_profiles)
    if profiles:
        merged = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            merged.add(profile)
        merged.dump_stats(str(Path(stats_dir, f"profile-{pid}.pstats")))


def mark_ready() -> None:
    """Leave a ready-<pid> marker in the stats directory (the app of this process is built)."""
    stats_dir = os.environ.get(STATS_ENV)
    if stats_dir:
        Path(stats_dir, f"ready-{os.getpid()}").write_text("")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Serve the tool with werkzeug's threaded server until SIGTERM, then write the figures."""
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost"):
        parser.error("the benchmark tool serves on loopback only")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log, as gunicorn
    server = make_server(args.host, args.port, build_app(), threaded=True)
    mark_ready()
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        write_stats()


if __name__ == "__main__":
    main()
