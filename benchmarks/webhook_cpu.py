"""The webhook's CPU, alone: one process, no server, no load generator, PostgreSQL + Redis.

Builds the tool with create_app() on a private PostgreSQL schema (dropped at the end) and the
benchmark Redis, adds --webhooks started attempts as rows, then calls the WSGI app directly with
each attempt's finish webhook (the body, query and headers the service sends) one after the
other, and prints this process's CPU per webhook (time.process_time: the web tier's own share,
without PostgreSQL's), the wall time, and the SQL statements per webhook. As under
`lti-proctor serve`: the access log is JSON (to a file here) and the metrics are prometheus-client's
multiprocess files (a temporary PROMETHEUS_MULTIPROC_DIR). `--profile N` prints the top N
cProfile entries timed by the process's CPU clock (not waits; the profiler's own overhead
inflates the figures printed with it); `--rounds` repeats the measurement on fresh attempts
(a warm-up round before them fills the caches and is not counted). The SQL count is of the
statements SQLAlchemy sends (not psycopg's BEGIN/COMMIT, nor a pool pre-ping).

    .venv/bin/python benchmarks/webhook_cpu.py                     # 500 webhooks x 3 rounds
    .venv/bin/python benchmarks/webhook_cpu.py --profile 25
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.launch_burst import REDIS_URL, database, redis_prefix  # noqa: E402


def tool(db_url: str, prefix: str | None, workdir: Path) -> Any:
    from lti_proctor import create_app

    config: dict[str, Any] = {
        "BASE_URL": "http://127.0.0.1:9",
        "INSTANCE_PATH": str(workdir / "instance"),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "TRUSTEXAM_API_KEY": "bench",
        "TRUSTEXAM_API_BASE": "http://127.0.0.1:9/api",
        "OUTBOX_EMBEDDED_WORKER": False,
        "AUTO_SETUP": True,
        "AUTO_MIGRATE": True,
        "LOG_FORMAT": "json",
    }
    if prefix is not None:
        config.update(REDIS_URL=REDIS_URL, STORE_PREFIX=prefix)
    return create_app(config)


def started_attempts(app: Any, n: int) -> list[tuple[str, str]]:
    """n started attempts, each of its own learner at one exam: (attempt id, webhook secret)."""
    from lti_proctor.attempts.models import Attempt
    from lti_proctor.extensions import db
    from lti_proctor.identity import Exam, Learner
    from lti_proctor.lti.registrations import Platform
    from lti_proctor.timeutil import utcnow

    now, tag = utcnow(), uuid.uuid4().hex[:8]
    out = []
    with app.app_context():
        platform = db.session.scalar(db.select(Platform).limit(1))
        if platform is None:
            platform = Platform(
                name="bench", family="moodle", issuer="https://lms.bench.test",
                client_id="bench", auth_login_url="https://lms.bench.test/auth",
                auth_token_url="https://lms.bench.test/token",
                key_set_url="https://lms.bench.test/certs",
            )  # fmt: skip
            db.session.add(platform)
            db.session.flush()
        exam = Exam(
            platform_id=platform.id, deployment_id="1", resource_link_id=f"rl-{tag}",
            external_id=f"lti:{tag}", title="Bench",
        )  # fmt: skip
        db.session.add(exam)
        db.session.flush()
        for i in range(n):
            learner = Learner(platform_id=platform.id, sub=f"{tag}-{i}", external_id=f"{tag}-{i}")
            db.session.add(learner)
            db.session.flush()
            secret = secrets.token_urlsafe(32)
            attempt = Attempt(
                id=str(uuid.uuid4()), exam_id=exam.id, learner_id=learner.id, number=1,
                state="started", profile_name="standard", start_proof="webhook",
                webhook_secret=secret, token="t", created_at=now, started_at=now,
                state_changed_at=now,
            )  # fmt: skip
            db.session.add(attempt)
            out.append((attempt.id, secret))
        db.session.commit()
    return out


def finish_environ(attempt_id: str, secret: str, n: int) -> dict[str, Any]:
    """The WSGI environ of the finish webhook the service sends for this attempt."""
    from werkzeug.test import EnvironBuilder

    body = {
        "event": "finish",
        "status": "closed",
        "attempt": {
            "id": 880000 + n,
            "attempt": 1,
            "status": "closed",
            "started_at": "2026-03-02T08:00:14Z",
            "finished_at": "2026-03-02T09:12:40Z",
        },
        "assignment": {"id": 55120, "external_id": "lti:bench"},
        "student": {"id": 310000 + n, "external_id": "s"},
        "session_data": {"external_id": attempt_id},
        "metadata": {"application": "browser"},
        "report_url": f"http://127.0.0.1:9/report/session/{n}",
        "timestamp": "2026-03-02T09:12:41Z",
        "attempt_id": attempt_id,
    }
    query = urlencode({"sig": secret, "attempt_id": attempt_id})
    builder = EnvironBuilder(
        path="/webhooks/trustexam/finish",
        method="POST",
        query_string=query,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "User-Agent": "sandbox-proctoring/1",
            "X-Tool-Webhook-Secret": secret,
        },
    )
    environ: dict[str, Any] = builder.get_environ()
    builder.close()
    return environ


@contextmanager
def sql_counter(app: Any) -> Iterator[list[int]]:
    from sqlalchemy import event

    from lti_proctor.extensions import db

    counted = [0]

    def on_execute(*_: Any) -> None:
        counted[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield counted
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def deliver(app: Any, environs: list[dict[str, Any]]) -> list[int]:
    statuses: list[int] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(int(status.split()[0]))
        return lambda _data: None

    for environ in environs:
        body = b"".join(app(environ, start_response))
        del body
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", type=int, default=500, help="per round")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after a warm-up)")
    parser.add_argument("--profile", type=int, default=0, help="print the top N cProfile rows")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-hookcpu-")))
        (workdir / "metrics").mkdir()
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(workdir / "metrics"))
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        app = tool(db_url, prefix, workdir)
        log_file = (workdir / "access.log").open("w")
        stack.callback(log_file.close)
        for handler in logging.getLogger().handlers:  # the tool's JSON lines, not the terminal
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log_file)
        cpu_ms: list[float] = []
        wall_ms: list[float] = []
        statements: list[float] = []
        profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not waits
        for round_no in range(args.rounds + 1):
            attempts = started_attempts(app, args.webhooks)
            environs = [finish_environ(a, s, i) for i, (a, s) in enumerate(attempts)]
            with sql_counter(app) as counted:
                if profiler is not None and round_no:
                    profiler.enable()
                c0, w0 = time.process_time(), time.perf_counter()
                statuses = deliver(app, environs)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                if profiler is not None:
                    profiler.disable()
            bad = [s for s in statuses if s != 200]
            if bad:
                print(f"  round {round_no}: {len(bad)} answers were not 200: {set(bad)}")
                return 1
            label = "warm-up" if round_no == 0 else f"round {round_no}"
            per_cpu, per_wall = 1000 * cpu / len(environs), 1000 * wall / len(environs)
            per_sql = counted[0] / len(environs)
            print(
                f"  {label}: {per_cpu:.2f} ms CPU / webhook · {per_wall:.2f} ms wall · "
                f"{per_sql:.1f} SQL statements",
                flush=True,
            )
            if round_no:
                cpu_ms.append(per_cpu)
                wall_ms.append(per_wall)
                statements.append(per_sql)
        print(
            f"\nwebhook CPU (this process, PostgreSQL + Redis, {args.webhooks} x {args.rounds}): "
            f"median {statistics.median(cpu_ms):.2f} ms · wall {statistics.median(wall_ms):.2f} ms"
            f" · {statistics.median(statements):.1f} SQL statements per webhook"
        )
        if profiler is not None:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(out.getvalue())
        with app.app_context():
            from lti_proctor.extensions import db

            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
