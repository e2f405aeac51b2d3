"""The finish storm: every student's finish webhook at once, with the outbox workers running.

Starts, on loopback, the sandbox LMS (its gradebook is the LMS stand-in: token endpoint, line
items, scores) and the sandbox proctoring service in this process, a private PostgreSQL schema
and a Redis key prefix, the tool under `lti-proctor serve` and --job-workers `lti-proctor worker`
processes (LISTEN/NOTIFY, default nice). It launches --students students (real signed launches,
which create their proctoring sessions and attempts), starts every session (the service's start
webhook, at 50/s), waits until the gradebook shows each one's "started" status, then sends the
service's finish webhook of every session (the body, query and headers the sandbox service
itself would send) open-loop at --rate per second.

Prints the webhooks' ack p50 / p99 / max and errors, the time from the first webhook until
every student's score says Completed in the LMS, the token requests and line item creations the
LMS served over the whole run (the workers share one cached token), and lost (no Completed
score by the deadline) and duplicate (the same score accepted twice) counts, against the
targets (ack p99 <= 100 ms, all scores <= 30 s, 1 token request, 0 lost, 0 doubled).
Bounded (--time-limit), loopback only, stops what it started.

    .venv/bin/python benchmarks/storm.py                     # 1,000 webhooks at 200/s
    .venv/bin/python benchmarks/storm.py --students 200 --rate 100
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_tool import cpu_seconds  # noqa: E402
from benchmarks.burst import SERVE_CMD  # noqa: E402
from benchmarks.launch_burst import (  # noqa: E402
    count,
    database,
    free_port,
    launch_student,
    percentile,
    redis_prefix,
    register_platform,
    sandboxes,
    seed_students,
    tool_config,
)
from benchmarks.ratio import env_settings, server, tree_pids  # noqa: E402

WORKER_CMD = "{python} -m lti_proctor worker"
TARGET_ACK_P99_MS = 100.0
TARGET_ALL_SCORES_S = 30.0


class ScoreLog:
    """Every score the gradebook accepted, keyed by what makes it the same score."""

    def __init__(self, book: Any) -> None:
        self.accepted: Counter[tuple[Any, ...]] = Counter()
        self._lock = threading.Lock()
        original = book.post_score

        def post_score(number: int, body: object, content_type: str) -> Any:
            stored = original(number, body, content_type)  # a refusal raises: not accepted
            assert isinstance(body, dict)
            key = (
                number,
                body.get("userId"),
                body.get("activityProgress"),
                body.get("gradingProgress"),
                body.get("timestamp"),
            )
            with self._lock:
                self.accepted[key] += 1
            return stored

        book.post_score = post_score

    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.accepted.values() if n > 1)


@contextmanager
def workers(n: int, env: dict[str, str], workdir: Path) -> Any:
    """n `lti-proctor worker` processes; SIGTERM (each finishes its job) and wait at the end."""
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    procs = []
    try:
        for i in range(n):
            with (workdir / f"worker-{i}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        shlex.split(WORKER_CMD.format(python=sys.executable)),
                        env=full_env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=ROOT,
                    )
                )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def proctoring_line_item(book: Any) -> int | None:
    """The number of the tool's gradebook column (tag proctoring), once it exists."""
    with book.lock:
        for item in book.items.values():
            if item.made_by_tool and item.tag == "proctoring":
                return int(item.number)
    return None


def progress(book: Any, subs: set[str], activity: tuple[str, ...]) -> int:
    """How many of subs have a latest score on the proctoring column in one of activity."""
    number = proctoring_line_item(book)
    if number is None:
        return 0
    with book.lock:
        return sum(
            1
            for sub in subs
            if (score := book.scores.get((number, sub))) is not None
            and score.get("activityProgress") in activity
        )


def wait_for(book: Any, subs: set[str], activity: tuple[str, ...], limit_s: float) -> float | None:
    """Seconds until every sub has such a score, or None when limit_s passed first."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        if progress(book, subs, activity) == len(subs):
            return time.perf_counter() - start
        time.sleep(0.05)
    return None


def webhook_calls(
    proctoring_app: Any, proctoring_url: str, event: str
) -> list[tuple[str, Any, Any]]:
    """Move every session the service holds (as its SDK would: start, then finish) and return
    the webhook (url, body, headers) the service sends for that event."""
    from lti_proctor.sandbox.proctoring import get_state
    from lti_proctor.sandbox.proctoring_state import finish_attempt, start_attempt, webhook_call

    state = get_state(proctoring_app)
    move = start_attempt if event == "start" else finish_attempt
    with state.lock:
        sessions = list(state.by_token.values())
        for session in sessions:
            move(state, session)
        calls = [webhook_call(s, event, base_url=proctoring_url) for s in sessions]
    return [call for call in calls if call is not None]


def storm(
    calls: list[tuple[str, Any, Any]], rate: float
) -> tuple[list[tuple[int | str, float]], float]:
    """POST every call open-loop at rate per second: (status or exception, ack ms) each, and the
    rate at which they were sent; the latency counts from the moment the webhook was due."""
    results: list[tuple[int | str, float]] = []
    lock = threading.Lock()
    local = threading.local()

    def send(call: tuple[str, Any, Any], due: float) -> None:
        url, body, headers = call
        if not hasattr(local, "session"):  # a service keeps its connections alive, per thread
            local.session = requests.Session()
        try:
            status: int | str = local.session.post(
                url, json=body, headers=headers, timeout=10
            ).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with lock:
            results.append((status, (time.perf_counter() - due) * 1000))

    # Enough senders that none waits for a free thread while the server takes 2 s per ack.
    pool = ThreadPoolExecutor(max_workers=max(16, int(rate * 2)), thread_name_prefix="hook")
    start = time.perf_counter()
    for i, call in enumerate(calls):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        pool.submit(send, call, due)
    spread = time.perf_counter() - start
    pool.shutdown(wait=True)
    return results, (len(calls) - 1) / spread if spread > 0 else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=1000, help="finish webhooks")
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks per second")
    parser.add_argument("--workers", type=int, default=2, help="web workers")
    parser.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--job-workers", type=int, default=2, help="`lti-proctor worker`s")
    parser.add_argument("--launch-concurrency", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=120.0, help="for the scores, s")
    parser.add_argument("--server-cmd", default=SERVE_CMD)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandboxes' access logs
    from lti_proctor.sandbox.lms_gradebook import get_gradebook
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-storm-")))
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        port = free_port()
        tool_url = f"http://127.0.0.1:{port}"
        boxes = stack.enter_context(sandboxes(tool_url, "moodle", 0.0))
        book = get_gradebook(boxes.lms_app)
        scores = ScoreLog(book)
        lms = get_sandbox_lms(boxes.lms_app)
        keys = seed_students(boxes.lms_app, args.students)
        subs = {lms.users[key].sub for key in keys}
        config = tool_config(
            argparse.Namespace(pool_size=None), workdir=workdir, tool_url=tool_url,
            db_url=db_url, store_prefix=prefix, boxes=boxes,
        )  # fmt: skip
        register_platform(config, boxes.lms_app)  # also applies the schema, as `db upgrade` does
        config["AUTO_MIGRATE"] = False
        env = env_settings(config)
        env["LTI_PROCTOR_INSTANCE_PATH"] = config["INSTANCE_PATH"]  # read raw, not as JSON
        run_args = argparse.Namespace(
            workers=args.workers, worker_class=args.worker_class, threads=args.threads
        )
        cmd = args.server_cmd + (" --threads {threads}" if args.worker_class == "gthread" else "")
        web = stack.enter_context(server(cmd, run_args, port, env, workdir / "tool.log"))
        job_procs = stack.enter_context(workers(args.job_workers, env, workdir))

        print(f"  launching {args.students} students ...", flush=True)
        with ThreadPoolExecutor(max_workers=args.launch_concurrency) as pool:
            launches = list(pool.map(lambda k: launch_student(boxes.lms_url, k, 30.0), keys))
        failed = Counter(s.outcome for s in launches if not s.ok)
        started_acks, _ = storm(
            webhook_calls(boxes.proctoring_app, boxes.proctoring_url, "start"), 50
        )
        start_errors = Counter(str(s) for s, _ in started_acks if not str(s).startswith("2"))
        started = wait_for(book, subs, ("Started", "InProgress"), args.time_limit)
        print(
            f"  launched: {len(keys) - sum(failed.values())} ok"
            + (f", failed {dict(failed)}" if failed else "")
            + f"; {len(started_acks)} start webhooks"
            + (f" (errors {dict(start_errors)})" if start_errors else "")
            + f"; every 'started' score in the LMS: {'yes' if started is not None else 'NO'}",
            flush=True,
        )
        calls = webhook_calls(boxes.proctoring_app, boxes.proctoring_url, "finish")
        token_path = urlsplit(lms.auth_token_url).path
        duplicates_before = scores.duplicates()
        web_pids = tree_pids(web.pid)
        web_cpu0 = sum(cpu_seconds(pid) for pid in web_pids)
        job_cpu0 = sum(cpu_seconds(proc.pid) for proc in job_procs)
        t0 = time.perf_counter()
        acks, sent_rate = storm(calls, args.rate)
        sent_s = time.perf_counter() - t0
        remaining = max(0.0, args.time_limit - sent_s)
        all_in = wait_for(book, subs, ("Completed",), remaining)
        all_in_s = None if all_in is None else sent_s + all_in
        lms_delta = boxes.lms_counter.snapshot()  # the whole run: one token for everything
        completed = progress(book, subs, ("Completed",))
        duplicates = scores.duplicates() - duplicates_before
        web_cpu = sum(cpu_seconds(pid) for pid in web_pids) - web_cpu0
        job_cpu = sum(cpu_seconds(proc.pid) for proc in job_procs) - job_cpu0
    ok = [ms for status, ms in acks if isinstance(status, int) and 200 <= status < 300]
    result = {
        "webhooks": len(calls),
        "acked": len(ok),
        "errors": dict(Counter(str(s) for s, _ in acks if not (isinstance(s, int) and s < 300))),
        "rate": sent_rate,
        "ack_p50_ms": percentile(ok, 50),
        "ack_p99_ms": percentile(ok, 99),
        "ack_max_ms": max(ok) if ok else None,
        "all_scores_s": all_in_s,
        "token_requests": count(lms_delta, "POST", token_path),
        "line_item_posts": sum(
            n for (m, p, _), n in lms_delta.items() if m == "POST" and p.endswith("/lineitems")
        ),
        "lost": len(subs) - completed,
        "duplicates": duplicates,
        "launch_failures": sum(failed.values()),
        "web_cpu_ms_per_webhook": 1000 * web_cpu / max(len(calls), 1),
        "worker_cpu_ms_per_finish": 1000 * job_cpu / max(len(calls), 1),
    }
    print_summary(args, result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if _all_ok(result) else 1


def _all_ok(r: dict[str, Any]) -> bool:
    return (
        not r["errors"]
        and r["ack_p99_ms"] is not None
        and r["ack_p99_ms"] <= TARGET_ACK_P99_MS
        and r["all_scores_s"] is not None
        and r["all_scores_s"] <= TARGET_ALL_SCORES_S
        and r["token_requests"] <= 1
        and r["lost"] == 0
        and r["duplicates"] == 0
    )


def _v(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def print_summary(args: argparse.Namespace, r: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    threads = f" x {args.threads}" if args.worker_class == "gthread" else ""
    print(
        f"\nfinish storm · {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · {os.cpu_count()} cores · "
        f"{r['webhooks']} webhooks at {args.rate:.0f}/s (sent at {r['rate']:.0f}/s) · "
        f"serve {args.workers} {args.worker_class}{threads} + {args.job_workers} job workers · "
        "PostgreSQL + Redis"
    )
    p99 = r["ack_p99_ms"]
    all_s = r["all_scores_s"]
    print(
        f"  ack p50 {ms(r['ack_p50_ms'])} · p99 {ms(p99)} · max {ms(r['ack_max_ms'])} · "
        f"errors {sum(r['errors'].values())} {r['errors'] or ''}"
        f"   [{_v(p99 is not None and p99 <= TARGET_ACK_P99_MS and not r['errors'])} "
        f"p99 <= {TARGET_ACK_P99_MS:.0f} ms, 0 errors]"
    )
    print(
        f"  all scores Completed in the LMS after "
        f"{'-' if all_s is None else f'{all_s:.1f} s'}"
        f"   [{_v(all_s is not None and all_s <= TARGET_ALL_SCORES_S)} <= "
        f"{TARGET_ALL_SCORES_S:.0f} s]"
    )
    print(
        f"  token requests {r['token_requests']}   [{_v(r['token_requests'] <= 1)} <= 1] · "
        f"line items created {r['line_item_posts']} · lost {r['lost']} · doubled "
        f"{r['duplicates']}   [{_v(r['lost'] == 0 and r['duplicates'] == 0)} 0 and 0]"
    )
    print(
        f"  CPU per finish: web {r['web_cpu_ms_per_webhook']:.1f} ms (the webhook) · job "
        f"workers {r['worker_cpu_ms_per_finish']:.1f} ms (its gradebook update and report fetch "
        "until the scores were in)"
    )
    if r["launch_failures"]:
        print(f"  ({r['launch_failures']} launches failed before the storm)")


if __name__ == "__main__":
    sys.exit(main())
