"""Launch burst: N distinct students launch one proctored exam at once, measured end to end.

Starts, on loopback ephemeral ports: the sandbox LMS and the sandbox proctoring service
(werkzeug threaded servers in threads of this process, each behind a counting WSGI middleware)
and the tool in its own process (werkzeug threaded, or gunicorn with --server gunicorn), on a
fresh SQLite file or a private PostgreSQL schema, with the database or Redis as shared store.
It registers the LMS in the tool, seeds one student per simulated user through the sandbox's
public objects, then runs each student's launch the way a browser does: LMS login initiation ->
tool /lti/login -> LMS auth -> auto-posted id_token to /lti/launch -> the starting page, whose
script posts /exam/start (the session upsert) -> the exam wrapper page.

Prints total time, launches/s, p50/p95/p99 latencies, errors by status, JWKS fetches served by
the LMS, proctoring session upserts, the tool's peak RSS and its parsed-key cache misses, each
against its target (README.md). Everything stops by itself within --time-limit.

    .venv/bin/python benchmarks/launch_burst.py                      # SQLite, DB store
    .venv/bin/python benchmarks/launch_burst.py --db postgresql --redis
    .venv/bin/python benchmarks/launch_burst.py --db postgresql --redis --server gunicorn
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import pstats
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_tool import (  # noqa: E402
    CONFIG_ENV,
    PROFILE_ENV,
    SQL_LOG_ENV,
    STATS_ENV,
    cpu_seconds,
    proc_status,
)
from tests.live import Page, live_server  # noqa: E402

PG_URL = os.environ.get("LTI_PROCTOR_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LTI_PROCTOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
UPSERT_PATH = "/api/external-session/assignment.json"
EXAM_LINK = "final"

# Targets (README.md): the launch is the hot path of an exam start.
TARGET_P95_LAUNCH_MS = 500.0
TARGET_RSS_MB = 200.0
TARGET_ERRORS = 0


# -- counting what the sandboxes serve ------------------------------------------------------------


_STUDENT = re.compile(r"/bench\d+")


class CountingMiddleware:
    """Counts requests by (method, path, status) in front of a WSGI app; thread-safe."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], delays_s: dict[str, float] | None = None
    ) -> None:
        self.app = app
        self.delays_s = delays_s or {}
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self.durations_ms: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        start = time.perf_counter()
        delay = self.delays_s.get(f"{method} {path}")
        if delay:
            time.sleep(delay)

        def counting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            with self._lock:
                self.counts[(method, path, int(status.split()[0]))] += 1
                elapsed = (time.perf_counter() - start) * 1000
                endpoint = f"{method} {_STUDENT.sub('/<student>', path)}"
                self.durations_ms.setdefault(endpoint, []).append(elapsed)
            return start_response(status, headers, exc_info)

        return self.app(environ, counting_start_response)

    def snapshot(self) -> Counter[tuple[str, str, int]]:
        """A copy of the counters so far."""
        with self._lock:
            return Counter(self.counts)


def count(counts: Counter[tuple[str, str, int]], method: str, path: str) -> int:
    """Requests of method to path, whatever their status."""
    return sum(n for (m, p, _), n in counts.items() if (m, p) == (method, path))


# -- the database and the shared store ------------------------------------------------------------


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh SQLite file, or a PostgreSQL schema private to this run (dropped at the end)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'tool.sqlite3'}"
        return
    import sqlalchemy as sa

    schema = f"lp_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 5})
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def redis_prefix(enabled: bool) -> Iterator[str | None]:
    """A unique key prefix on the benchmark Redis (its keys deleted at the end), or None."""
    if not enabled:
        yield None
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    client.ping()
    prefix = f"lp-bench:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def free_port() -> int:
    """A free loopback port (the tool must know its URL before it starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the sandboxes, the registration, the students ------------------------------------------------


@dataclasses.dataclass
class Sandboxes:
    """The running sandbox LMS and proctoring service, with their counters."""

    lms_url: str
    proctoring_url: str
    lms_app: Any
    proctoring_app: Any
    lms_counter: CountingMiddleware
    proctoring_counter: CountingMiddleware
    api_key: str


@contextmanager
def sandboxes(tool_url: str, family: str, upsert_latency_s: float) -> Iterator[Sandboxes]:
    """Serve the sandbox LMS and proctoring service, each behind a CountingMiddleware."""
    from lti_proctor.demo import exam_custom
    from lti_proctor.sandbox.lms import create_sandbox_lms
    from lti_proctor.sandbox.policy import SANDBOX_KEY_PREFIX
    from lti_proctor.sandbox.proctoring import create_sandbox_proctoring

    api_key = SANDBOX_KEY_PREFIX + secrets.token_urlsafe(24)
    made: dict[str, Any] = {}

    def lms(base_url: str) -> Any:
        made["lms"] = create_sandbox_lms(
            base_url=base_url, tool_url=tool_url, family=family, custom=exam_custom(base_url)
        )
        made["lms_counter"] = CountingMiddleware(made["lms"])
        return made["lms_counter"]

    def proctoring(base_url: str) -> Any:
        made["proctoring"] = create_sandbox_proctoring(base_url=base_url, api_key=api_key)
        delays = {f"POST {UPSERT_PATH}": upsert_latency_s}
        made["proctoring_counter"] = CountingMiddleware(made["proctoring"], delays)
        return made["proctoring_counter"]

    with live_server(lms) as lms_url, live_server(proctoring) as proctoring_url:
        yield Sandboxes(
            lms_url,
            proctoring_url,
            made["lms"],
            made["proctoring"],
            made["lms_counter"],
            made["proctoring_counter"],
            api_key,
        )


def seed_students(lms_app: Any, n: int) -> list[str]:
    """Add n distinct students to the sandbox LMS (copies of its seeded student, new ids)."""
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    lms = get_sandbox_lms(lms_app)
    template = lms.users["student"]
    keys = []
    for i in range(n):
        key, lms_id = f"bench{i:05d}", str(1000 + i)
        canvas = lms.family == "canvas"
        lms.users[key] = dataclasses.replace(
            template,
            key=key,
            lms_id=lms_id,
            sub=str(uuid.uuid4()) if canvas else lms_id,
            login_hint=secrets.token_hex(20) if canvas else lms_id,
            username=f"bench{i:05d}",
            name=f"Bench Student {i:05d}",
            given_name="Bench",
            family_name=f"Student {i:05d}",
            email=f"bench{i:05d}@example.edu",
            sesskey="" if canvas else secrets.token_hex(5),
        )
        keys.append(key)
    return keys


def tool_config(
    args: argparse.Namespace,
    *,
    workdir: Path,
    tool_url: str,
    db_url: str,
    store_prefix: str | None,
    boxes: Sandboxes,
) -> dict[str, Any]:
    """The tool's settings for the benchmark (JSON-able: the tool process reads them)."""
    config: dict[str, Any] = {
        "BASE_URL": tool_url,
        "INSTANCE_PATH": str(workdir / "instance"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": secrets.token_urlsafe(32),  # one key for every worker
        "DEV_INSECURE_COOKIES": True,  # plain http on loopback
        "TRUSTEXAM_API_BASE": f"{boxes.proctoring_url}/api",
        "TRUSTEXAM_REPORT_BASE": f"{boxes.proctoring_url}/report-api/v1",
        "TRUSTEXAM_SDK_URL": f"{boxes.proctoring_url}/extension/app.js",
        "TRUSTEXAM_API_KEY": boxes.api_key,
        "TRUSTEXAM_REPORT_API_KEY": boxes.api_key,
        "SANDBOX_PROCTORING": True,
        "OUTBOX_EMBEDDED_WORKER": False,  # measure the launch, not the gradebook worker
        "AUTO_SETUP": True,
        "AUTO_MIGRATE": True,  # a private schema per run: the first process migrates it (locked)
    }
    if args.pool_size:  # an experiment: the tool's default pool is SQLAlchemy's (5 + 10)
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True,
            "pool_size": args.pool_size,
            "max_overflow": 10,
        }
    if store_prefix is not None:
        config["REDIS_URL"] = REDIS_URL
        config["STORE_PREFIX"] = store_prefix
    return config


def register_platform(config: dict[str, Any], lms_app: Any) -> None:
    """Create the schema and the tool key, register the sandbox LMS and keep its exam in the tool.

    As the demo does: the exam's settings (access code included) live in the tool and the LMS's
    link carries only their reference, so the launch is the one a deep-linked exam makes.
    """
    from lti_proctor import create_app
    from lti_proctor.demo import register_sandbox_platform, seed_demo_exam
    from lti_proctor.extensions import db
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    lms = get_sandbox_lms(lms_app)
    app = create_app(config)
    with app.app_context():
        described = lms.describe()
        register_sandbox_platform(described)
        ref = seed_demo_exam(described, lms.course.context_id, lms.site.base_url)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    lms.links["final"].custom = {"exam": ref}


def db_counts(config: dict[str, Any]) -> dict[str, int]:
    """Rows in the attempt, learner and store tables after the burst."""
    import sqlalchemy as sa

    engine = sa.create_engine(config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as conn:
            return {
                table: int(conn.execute(sa.text(f"select count(*) from {table}")).scalar() or 0)
                for table in ("attempt", "learner", "store_entry")
            }
    finally:
        engine.dispose()


# -- the tool process -----------------------------------------------------------------------------


@dataclasses.dataclass
class ToolProcess:
    """The running tool: its server process and, once known, its worker pids."""

    proc: subprocess.Popen[bytes]
    stats_dir: Path
    log_path: Path
    worker_pids: list[int] = dataclasses.field(default_factory=list)


@contextmanager
def tool_process(
    args: argparse.Namespace, config: dict[str, Any], port: int, workdir: Path, deadline: float
) -> Iterator[ToolProcess]:
    """Start the tool (werkzeug threaded, or gunicorn) and wait until every worker is ready."""
    stats_dir = workdir / "stats"
    stats_dir.mkdir()
    env = {
        **os.environ,
        CONFIG_ENV: json.dumps(config),
        STATS_ENV: str(stats_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
    }
    if args.profile:
        env[PROFILE_ENV] = args.profile
    if args.sql_log:
        env[SQL_LOG_ENV] = "1"
    if args.server == "gunicorn":
        cmd = [
            sys.executable, "-m", "gunicorn",
            "-c", str(HERE / "gunicorn_conf.py"),
            "--pythonpath", str(HERE),
            "-b", f"127.0.0.1:{port}",
            "-w", str(args.workers),
            "-k", args.worker_class,
            "--threads", str(args.threads),
            "--timeout", "60",
            "--graceful-timeout", "10",
            "bench_tool:build_app()",
        ]  # fmt: skip
        expected = args.workers
    else:
        cmd = [sys.executable, str(HERE / "bench_tool.py"), "--port", str(port)]
        expected = 1
    log_path = workdir / "tool.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    tool = ToolProcess(proc, stats_dir, log_path)
    try:
        ready_deadline = min(deadline, time.monotonic() + 60)
        while True:
            pids = [int(p.name.split("-")[1]) for p in stats_dir.glob("ready-*")]
            if len(pids) >= expected and _answers(f"http://127.0.0.1:{port}"):
                tool.worker_pids = sorted(pids)
                break
            if proc.poll() is not None or time.monotonic() > ready_deadline:
                raise RuntimeError(f"the tool did not start:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield tool
    finally:
        _stop_tool(proc)


def _answers(base_url: str) -> bool:
    try:
        return requests.get(base_url + "/.well-known/jwks.json", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stop_tool(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process we started (its workers write their figures), then wait for it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def error_lines(path: Path) -> Counter[str]:
    """The exception lines of the tool's log (the last line of each traceback), counted."""
    pattern = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Timeout|Exhausted)[\w.]*):? ?(.*)$")
    found: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        match = pattern.match(line)
        if match:
            found[(match.group(1) + ": " + match.group(3))[:160]] += 1
    return found


# -- one student's launch -------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    """One launch: per-step latencies (ms) and its outcome."""

    ok: bool
    outcome: str  # "ok" or "<step>:<status or exception>[ <reason code>]"
    login_ms: float | None = None
    launch_ms: float | None = None  # the launch POST: the starting page, the student's first byte
    start_ms: float | None = None  # the starting page's POST to /exam/start: the exam page
    flow_ms: float | None = None


_REASON = re.compile(r'data-reason="([^"]+)"|class="reason">([^<]+)<')
_API_TOKEN = re.compile(r'data-api-token="([^"]+)"')


def _reason(text: str) -> str:
    match = _REASON.search(text)
    return " " + (match.group(1) or match.group(2)) if match else ""


def _form(response: requests.Response, step: str) -> tuple[str, list[tuple[str, str]]]:
    form = Page(response).auto_submitted_form()
    if response.status_code != 200 or form is None:
        raise StepError(f"{step}:{response.status_code}{_reason(response.text)}")
    return urljoin(response.url, form.action), form.fields


class StepError(Exception):
    """A step of the launch did not answer what a browser expects."""


def launch_student(lms_url: str, user_key: str, timeout_s: float) -> Sample:
    """One browser launch of the exam link, step by step, with the tool's steps timed."""
    session = requests.Session()
    step = "lms_initiation"
    sample = Sample(ok=False, outcome="")
    start = time.perf_counter()
    try:
        page = session.get(f"{lms_url}/launch/{EXAM_LINK}/{user_key}", timeout=timeout_s)
        action, fields = _form(page, step)
        step = "login"
        t0 = time.perf_counter()
        answer = session.post(action, data=fields, allow_redirects=False, timeout=timeout_s)
        sample.login_ms = (time.perf_counter() - t0) * 1000
        if answer.status_code not in (302, 303) or "Location" not in answer.headers:
            raise StepError(f"login:{answer.status_code}{_reason(answer.text)}")
        step = "lms_auth"
        auth = session.get(urljoin(answer.url, answer.headers["Location"]), timeout=timeout_s)
        action, fields = _form(auth, step)
        step = "launch"
        t0 = time.perf_counter()
        starting = session.post(action, data=fields, allow_redirects=False, timeout=timeout_s)
        sample.launch_ms = (time.perf_counter() - t0) * 1000
        action, fields = _form(starting, step)
        step = "start"
        t0 = time.perf_counter()
        exam = session.post(action, data=fields, allow_redirects=False, timeout=timeout_s)
        sample.start_ms = (time.perf_counter() - t0) * 1000
        if exam.status_code != 200:
            raise StepError(f"start:{exam.status_code}{_reason(exam.text)}")
        if not _API_TOKEN.search(exam.text):
            raise StepError("start:200 not the exam wrapper page")
        sample.flow_ms = (time.perf_counter() - start) * 1000
        sample.ok, sample.outcome = True, "ok"
    except StepError as exc:
        sample.outcome = str(exc)
    except requests.RequestException as exc:
        sample.outcome = f"{step}:{type(exc).__name__}"
    finally:
        session.close()
    return sample


# -- a burst and its figures ----------------------------------------------------------------------


@dataclasses.dataclass
class Round:
    """One round of launches (every student once) and what the sandboxes saw meanwhile."""

    number: int
    samples: list[Sample]
    seconds: float
    jwks_fetches: int
    upserts: Counter[int]
    unfinished: int
    tool_cpu_s: float
    bench_cpu_s: float
    server_cpu_s: float
    other_cpu_s: float


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes) from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(names: tuple[str, ...] = ("postgres", "redis-server")) -> float:
    """CPU seconds of the database servers on this machine: every process named in names, plus
    what their exited children (PostgreSQL backends of closed connections) left to the parent."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.split("(", 1)[-1] not in names:
            continue
        fields = rest.split()
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_round(
    number: int,
    boxes: Sandboxes,
    students: list[str],
    args: argparse.Namespace,
    deadline: float,
    tool_pids: list[int],
) -> Round:
    """Launch every student once with args.concurrency browsers at a time."""
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    jwks_path = urlsplit(get_sandbox_lms(boxes.lms_app).key_set_url).path
    lms_before, proc_before = boxes.lms_counter.snapshot(), boxes.proctoring_counter.snapshot()
    tool_cpu, bench_cpu = sum(cpu_seconds(p) for p in tool_pids), _own_cpu()
    busy, servers = machine_busy_s(), server_cpu_s()
    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="student")
    futures = [
        pool.submit(launch_student, boxes.lms_url, key, args.request_timeout) for key in students
    ]
    wait(futures, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_EXCEPTION)
    pool.shutdown(wait=False, cancel_futures=True)
    seconds = time.perf_counter() - start
    tool_cpu = sum(cpu_seconds(p) for p in tool_pids) - tool_cpu
    bench_cpu = _own_cpu() - bench_cpu
    server_cpu = server_cpu_s() - servers
    other_cpu = machine_busy_s() - busy - tool_cpu - bench_cpu - server_cpu
    samples = [f.result() for f in futures if f.done() and not f.cancelled()]
    lms_delta = boxes.lms_counter.snapshot() - lms_before
    proc_delta = boxes.proctoring_counter.snapshot() - proc_before
    upserts: Counter[int] = Counter(
        {status: n for (m, p, status), n in proc_delta.items() if (m, p) == ("POST", UPSERT_PATH)}
    )
    return Round(
        number,
        samples,
        seconds,
        count(lms_delta, "GET", jwks_path),
        upserts,
        unfinished=len(students) - len(samples),
        tool_cpu_s=tool_cpu,
        bench_cpu_s=bench_cpu,
        server_cpu_s=server_cpu,
        other_cpu_s=other_cpu,
    )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_row(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of a list of latencies (ms)."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def round_figures(rnd: Round) -> dict[str, Any]:
    """The figures of one round, as printed and as written to --json."""
    ok = [s for s in rnd.samples if s.ok]
    errors = Counter(s.outcome for s in rnd.samples if not s.ok)
    if rnd.unfinished:
        errors["unfinished (time limit)"] = rnd.unfinished
    return {
        "round": rnd.number,
        "students": len(rnd.samples) + rnd.unfinished,
        "ok": len(ok),
        "seconds": round(rnd.seconds, 3),
        "launches_per_s": round(len(ok) / rnd.seconds, 2) if rnd.seconds else None,
        "latency_ms": {
            "login": latency_row([s.login_ms for s in rnd.samples if s.login_ms is not None]),
            "launch": latency_row([s.launch_ms for s in rnd.samples if s.launch_ms is not None]),
            "start": latency_row([s.start_ms for s in rnd.samples if s.start_ms is not None]),
            "flow": latency_row([s.flow_ms for s in ok if s.flow_ms is not None]),
        },
        "errors": dict(errors.most_common()),
        "jwks_fetches": rnd.jwks_fetches,
        "upserts": sum(rnd.upserts.values()),
        "upserts_by_status": {str(k): v for k, v in sorted(rnd.upserts.items())},
        "tool_cpu_s": round(rnd.tool_cpu_s, 2),
        "tool_cpu_ms_per_launch": round(1000 * rnd.tool_cpu_s / max(len(rnd.samples), 1), 1),
        "bench_cpu_s": round(rnd.bench_cpu_s, 2),
        "db_server_cpu_s": round(rnd.server_cpu_s, 2),
        "other_cpu_s": round(max(rnd.other_cpu_s, 0.0), 2),
        "machine_busy_pct": round(
            100
            * (rnd.tool_cpu_s + rnd.bench_cpu_s + rnd.server_cpu_s + max(rnd.other_cpu_s, 0.0))
            / max(rnd.seconds * (os.cpu_count() or 1), 1e-9)
        ),
    }


def tool_figures(
    tool: ToolProcess, idle: dict[int, dict[str, int]], launches: int
) -> dict[str, Any]:
    """Peak RSS and parsed-key cache counters each tool process wrote when it exited."""
    per_process = []
    for path in sorted(tool.stats_dir.glob("tool-*.json")):
        stats = json.loads(path.read_text())
        stats["idle_rss_kb"] = idle.get(stats["pid"], {}).get("VmRSS")
        per_process.append(stats)
    flows = max(launches, 1)
    statements = sum(p["db"]["statements"] for p in per_process)
    return {
        "processes": per_process,
        "sql_statements": statements,
        "sql_per_flow": round(statements / flows, 1),
        "db_connects": sum(p["db"]["connects"] for p in per_process),
        "pool_checkouts_per_flow": round(sum(p["db"]["checkouts"] for p in per_process) / flows, 1),
        "peak_rss_mb": round(sum(p.get("VmHWM", 0) for p in per_process) / 1024, 1),
        "key_parse_misses": sum(p["parsed_key_cache"]["misses"] for p in per_process),
        "key_parse_hits": sum(p["parsed_key_cache"]["hits"] for p in per_process),
    }


def sandbox_timings(boxes: Sandboxes) -> dict[str, dict[str, Any]]:
    """p50/p95 of the time the sandboxes took to answer, per endpoint, over the whole run."""
    out: dict[str, dict[str, Any]] = {}
    for label, counter in (("LMS", boxes.lms_counter), ("proctoring", boxes.proctoring_counter)):
        for endpoint, values in sorted(counter.durations_ms.items()):
            out[f"{label} {endpoint}"] = {
                "n": len(values),
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
            }
    return out


# -- printing -------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _verdict(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def print_report(result: dict[str, Any]) -> None:
    """The figures, with each one checked against its target."""
    setup, tool = result["setup"], result["tool"]
    processes = len(tool["processes"]) or 1
    print(
        f"\nlti-proctor launch burst · {setup['date']} · {setup['cores']} cores · "
        f"Python {setup['python']}"
    )
    print(
        f"tool: {setup['server_desc']} · db {setup['db']} · store {setup['store']} · "
        f"LMS {setup['family']} · {setup['students']} students · concurrency "
        f"{setup['concurrency']}{' · PROFILED (latencies inflated)' if setup['profile'] else ''}"
        + (f" · pool_size {setup['pool_size']} (experiment)" if setup["pool_size"] else "")
        + (
            f" · sandbox upsert latency {setup['upsert_latency_ms']:.0f} ms"
            if setup["upsert_latency_ms"]
            else ""
        )
    )
    for rnd in result["rounds"]:
        kind = "cold start, new attempts" if rnd["round"] == 1 else "relaunch, resumed attempts"
        errors = sum(rnd["errors"].values())
        print(f"\nround {rnd['round']} ({kind})")
        print(
            f"  total {rnd['seconds']:.2f} s · {rnd['launches_per_s']} launches/s · "
            f"ok {rnd['ok']}/{rnd['students']} · errors {errors}   "
            f"[{_verdict(errors <= TARGET_ERRORS)} target {TARGET_ERRORS}]"
        )
        print(f"  {'latency (ms)':<22}{'p50':>7}{'p95':>7}{'p99':>7}{'max':>7}")
        labels = {
            "login": "/lti/login",
            "launch": "/lti/launch POST",
            "start": "/exam/start POST",
            "flow": "whole flow",
        }
        for name, label in labels.items():
            row = rnd["latency_ms"][name]
            line = f"  {label:<22}" + "".join(f"{_ms(row[k]):>7}" for k in row)
            if name == "launch" and row["p95"] is not None:
                ok = row["p95"] < TARGET_P95_LAUNCH_MS
                line += f"   [{_verdict(ok)} p95 < {TARGET_P95_LAUNCH_MS:.0f}]"
            print(line)
        if rnd["errors"]:
            print("  errors by step:status [reason]:")
            for outcome, n in rnd["errors"].items():
                print(f"    {n:5d}  {outcome}")
        jwks_ok = rnd["jwks_fetches"] <= (processes if rnd["round"] == 1 else 0)
        print(
            f"  JWKS fetches served by the LMS: {rnd['jwks_fetches']}   "
            f"[{_verdict(jwks_ok)} target <= {processes if rnd['round'] == 1 else 0}"
            f"{', ideally 1 (shared store)' if rnd['round'] == 1 else ''}]"
        )
        print(
            f"  proctoring session upserts: {rnd['upserts']} (by status {rnd['upserts_by_status']})"
        )
        print(
            f"  CPU: tool {rnd['tool_cpu_s']} s ({rnd['tool_cpu_ms_per_launch']} ms per student "
            f"flow: login + launch + start) · this process (LMS, proctoring, browsers) "
            f"{rnd['bench_cpu_s']} s · PostgreSQL + Redis servers {rnd['db_server_cpu_s']} s · "
            f"everything else {rnd['other_cpu_s']} s · machine busy {rnd['machine_busy_pct']}% "
            f"of {setup['cores']} cores"
        )
        if rnd["other_cpu_s"] > 0.1 * rnd["seconds"] * (setup["cores"] or 1):
            print("  WARNING: other processes used over 10% of the machine: figures are noisy")
    rss_ok = all(p.get("VmHWM", 0) / 1024 < TARGET_RSS_MB for p in tool["processes"])
    print(f"\ntool processes: {processes}")
    for proc in tool["processes"]:
        idle = proc.get("idle_rss_kb")
        print(
            f"  pid {proc['pid']}: peak RSS {proc.get('VmHWM', 0) / 1024:.1f} MB"
            f" (after start {idle / 1024 if idle else 0:.1f} MB) · parsed-key cache misses "
            f"{proc['parsed_key_cache']['misses']} hits {proc['parsed_key_cache']['hits']}"
        )
        for path in ("/lti/login", "/lti/launch", "/exam/start"):
            q = proc.get("in_app_ms", {}).get(path)
            if q:
                print(
                    f"      time inside the app, {path}: p50 {q['p50']} · p95 {q['p95']} · "
                    f"p99 {q['p99']} ms (n {q['n']})"
                )
    print(
        f"  peak RSS, all tool processes: {tool['peak_rss_mb']} MB   "
        f"[{_verdict(rss_ok)} target < {TARGET_RSS_MB:.0f} per process]"
    )
    misses_ok = tool["key_parse_misses"] <= processes
    print(
        f"  key parses (cache misses): {tool['key_parse_misses']}   "
        f"[{_verdict(misses_ok)} target <= 1 per process]"
    )
    print(
        f"  database: {tool['sql_statements']} SQL statements ({tool['sql_per_flow']} per student "
        f"flow, store included when it is the database) · {tool['pool_checkouts_per_flow']} pool "
        f"checkouts per flow · {tool['db_connects']} new DB connections"
    )
    if "master_rss_kb" in tool:
        print(f"  gunicorn master peak RSS: {tool['master_rss_kb'] / 1024:.1f} MB (not counted)")
    print("sandbox handling time (inside the sandbox apps, ms):")
    for name, q in result["sandbox_ms"].items():
        print(f"  {name:<48} p50 {_ms(q['p50'])} · p95 {_ms(q['p95'])} · n {q['n']}")
    checks = result["checks"]
    print(
        f"\nchecks: attempts in the tool DB {checks['db']['attempt']}, learners "
        f"{checks['db']['learner']}, sessions at the sandbox {checks['sandbox_sessions']}"
    )
    if result["tool_log_errors"]:
        print("tool log, exception lines (count):")
        for line, n in result["tool_log_errors"].items():
            print(f"  {n:5d}  {line}")


@contextmanager
def py_spy(pid: int, out: Path, *, subprocesses: bool, mode: str) -> Iterator[None]:
    """Sample the tool with py-spy (raw collapsed stacks) while the block runs."""
    exe = Path(sys.executable).with_name("py-spy")
    cmd = [str(exe), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
           "--output", str(out), "--nonblocking"]  # fmt: skip
    if subprocesses:
        cmd.append("--subprocesses")
    if mode == "gil":
        cmd.append("--gil")
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attach before the burst starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate(timeout=10)
        if not out.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-400:]}")


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path}:{match.group('line')})"


def print_py_spy(out: Path, top: int) -> None:
    """Top frames of py-spy's samples: by own samples, and by samples on the stack (cumulative)."""
    if not out.exists():
        return
    own: Counter[str] = Counter()
    on_stack: Counter[str] = Counter()
    total = 0
    for line in out.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        frames = [_short(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            on_stack[frame] += samples
    print(f"\n--- py-spy: {total} samples of tool threads ---")
    for title, counter in (("cumulative (frame on the stack)", on_stack), ("own", own)):
        print(f"top {top} by {title}:")
        for frame, samples in counter.most_common(top):
            print(f"  {100 * samples / max(total, 1):5.1f}%  {frame}")


def print_sql_log(figures: dict[str, Any]) -> None:
    """The tool's SQL statements per endpoint (use with few students: one flow is enough)."""
    per_path: dict[str, Counter[str]] = {}
    for proc in figures["processes"]:
        for path, statement in proc.get("sql_log", []):
            per_path.setdefault(_STUDENT.sub("/<student>", path), Counter())[statement] += 1
    for path, statements in per_path.items():
        print(f"\n--- SQL of {path}: {sum(statements.values())} statements ---")
        for statement, n in statements.most_common():
            print(f"  {n:5d}  {statement}")


def print_profile(stats_dir: Path, top: int) -> None:
    """The merged cProfile of every tool process: top functions by own time and cumulative."""
    files = sorted(stats_dir.glob("profile-*.pstats"))
    if not files:
        return
    stats = pstats.Stats(str(files[0]))
    for extra in files[1:]:
        stats.add(str(extra))
    for key in ("cumulative", "tottime"):
        print(f"\n--- tool profile (all requests), top {top} by {key} ---")
        stats.sort_stats(key).print_stats(top)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the LTI launch hot path: N students launching one exam at once."
    )
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="round 2+ relaunch every student")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", action="store_true", help="the Redis shared store")
    parser.add_argument("--family", choices=["moodle", "canvas"], default="moodle")
    parser.add_argument("--server", choices=["werkzeug", "gunicorn"], default="werkzeug")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="experiment: SQLAlchemy pool_size of the tool (max_overflow 10); default: the "
        "tool's own setting",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--time-limit", type=float, default=600.0, help="whole run, seconds")
    parser.add_argument(
        "--profile",
        choices=["cpu", "wall"],
        help="cProfile every tool request (cpu: thread CPU time; wall: wall-clock time)",
    )
    parser.add_argument(
        "--py-spy-out", type=Path, help="keep py-spy's raw collapsed stacks in this file"
    )
    parser.add_argument(
        "--py-spy",
        choices=["gil", "active"],
        help="sample the tool with py-spy during the rounds (needs `pip install py-spy`); gil: "
        "only the thread holding the GIL (where Python CPU goes), active: every thread not idle "
        "(includes waiting on the database)",
    )
    parser.add_argument(
        "--sql-log", action="store_true", help="print the tool's SQL statements per endpoint"
    )
    parser.add_argument(
        "--upsert-latency-ms",
        type=float,
        default=0.0,
        help="the sandbox proctoring service answers session upserts this much later "
        "(a remote service's latency)",
    )
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-log", type=Path, help="copy the tool's log to this file")
    args = parser.parse_args(argv)
    for name in ("students", "concurrency", "rounds", "workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def server_desc(args: argparse.Namespace) -> str:
    if args.server == "gunicorn":
        return f"gunicorn {args.workers} workers x {args.threads} threads ({args.worker_class})"
    return "werkzeug threaded, 1 process"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    deadline = time.monotonic() + args.time_limit
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-bench-")))
        db_url = stack.enter_context(database(args.db, workdir))
        prefix = stack.enter_context(redis_prefix(args.redis))
        port = free_port()
        tool_url = f"http://127.0.0.1:{port}"
        boxes = stack.enter_context(sandboxes(tool_url, args.family, args.upsert_latency_ms / 1000))
        students = seed_students(boxes.lms_app, args.students)
        config = tool_config(
            args, workdir=workdir, tool_url=tool_url, db_url=db_url, store_prefix=prefix,
            boxes=boxes,
        )  # fmt: skip
        register_platform(config, boxes.lms_app)
        tool = stack.enter_context(tool_process(args, config, port, workdir, deadline))
        idle = {pid: proc_status(pid) for pid in tool.worker_pids}
        rounds = []
        spy_out = workdir / "py-spy.txt"
        with ExitStack() as sampling:
            if args.py_spy:
                sampling.enter_context(
                    py_spy(
                        tool.proc.pid,
                        spy_out,
                        subprocesses=args.server == "gunicorn",
                        mode=args.py_spy,
                    )
                )
            for number in range(1, args.rounds + 1):
                if time.monotonic() >= deadline:
                    break
                rounds.append(run_round(number, boxes, students, args, deadline, tool.worker_pids))
        master = proc_status(tool.proc.pid) if args.server == "gunicorn" else {}
        _stop_tool(tool.proc)  # the tool writes its figures as it exits
        figures = tool_figures(tool, idle, sum(len(r.samples) for r in rounds))
        if master:
            figures["master_rss_kb"] = master.get("VmHWM")
        from lti_proctor.sandbox.proctoring import get_state

        result: dict[str, Any] = {
            "setup": {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "server": args.server,
                "server_desc": server_desc(args),
                "db": args.db,
                "store": "redis" if args.redis else "database",
                "family": args.family,
                "students": args.students,
                "concurrency": args.concurrency,
                "profile": args.profile,
                "upsert_latency_ms": args.upsert_latency_ms,
                "pool_size": args.pool_size,
            },
            "rounds": [round_figures(r) for r in rounds],
            "tool": figures,
            "checks": {
                "db": db_counts(config),
                "sandbox_sessions": len(get_state(boxes.proctoring_app).by_token),
            },
            "sandbox_ms": sandbox_timings(boxes),
            "tool_log_errors": dict(error_lines(tool.log_path).most_common(10)),
        }
        print_report(result)
        if args.profile:
            print_profile(tool.stats_dir, args.profile_top)
        if args.py_spy:
            print_py_spy(spy_out, args.profile_top)
            if args.py_spy_out:
                shutil.copyfile(spy_out, args.py_spy_out)
        if args.sql_log:
            print_sql_log(figures)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        if args.keep_log:
            args.keep_log.write_bytes(tool.log_path.read_bytes())
    failed = any(sum(r["errors"].values()) for r in result["rounds"])
    return 1 if failed or not rounds else 0


if __name__ == "__main__":
    sys.exit(main())
