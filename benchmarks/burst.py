"""The exam-start burst: students arriving at a fixed rate against `lti-proctor serve`.

Starts, on loopback ephemeral ports, the sandbox LMS and the sandbox proctoring service (its
session upsert answering --service-ms later, a remote service) in this process, a private
PostgreSQL schema and a Redis key prefix, and the tool under the production server command
(`lti-proctor serve --workers N --worker-class K`, settings from LTI_PROCTOR_* variables). Then,
for each worker class in turn (a fresh server, new students): a short warm-up, and --students
students arriving open-loop at --rate per second, each doing a browser's login + launch + start
(launch_burst.launch_student: real RS256-signed launches from the sandbox LMS). A student's
latency counts from the moment it was due to arrive, so a server that falls behind shows it.

Prints per worker class p50 / p99 / max of the whole flow, errors by step and status, the
arrival rate achieved, session upserts the service saw, and the CPU of the server's process tree
and of this process (browsers + sandboxes), against the target (0 errors, p99 <= 1 s).
Bounded (--time-limit), loopback only, and stops what it started.

    .venv/bin/python benchmarks/burst.py                          # 1,000 at 100/s, gevent + gthread
    .venv/bin/python benchmarks/burst.py --students 200 --worker-class gevent
    .venv/bin/python benchmarks/burst.py --worker-class gevent --ceiling   # and the bare ceiling
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_tool import cpu_seconds  # noqa: E402
from benchmarks.launch_burst import (  # noqa: E402
    REDIS_URL,
    UPSERT_PATH,
    Sample,
    count,
    database,
    free_port,
    launch_student,
    machine_busy_s,
    percentile,
    redis_prefix,
    register_platform,
    sandboxes,
    seed_students,
    tool_config,
)
from benchmarks.ratio import (  # noqa: E402
    CEILING_CMD,
    CEILING_ENV,
    env_settings,
    server,
    tree_pids,
)

SERVE_CMD = (
    "{python} -m lti_proctor serve --host {host} --port {port} --workers {workers} "
    "--worker-class {worker_class}"
)
TARGET_P99_MS = 1000.0


def arrivals(
    lms_url: str,
    keys: list[str],
    rate: float,
    timeout_s: float,
    deadline: float,
    processes: int = 1,
) -> tuple[list[tuple[Sample, float]], float]:
    """Start one browser per key at rate per second (open loop); (sample, latency ms) each and
    the seconds the arrivals took. Latency counts from the moment the student was due.

    With processes > 1 the browsers run in that many forked processes (student i in process
    i % processes, on the same schedule), so the load generator is not capped at the one core
    its own interpreter lock allows while the sandboxes serve in this process.
    """
    start = time.monotonic() + 0.2  # every process starts counting from the same moment
    if processes <= 1:
        return _arrivals_share(lms_url, keys, rate, timeout_s, deadline, start, 0, 1)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        shares = pool.starmap(
            _arrivals_share,
            [
                (lms_url, keys, rate, timeout_s, deadline, start, n, processes)
                for n in range(processes)
            ],
        )
    results = [item for share, _ in shares for item in share]
    return results, max(spread for _, spread in shares)


def _arrivals_share(
    lms_url: str,
    keys: list[str],
    rate: float,
    timeout_s: float,
    deadline: float,
    start: float,
    share: int,
    shares: int,
) -> tuple[list[tuple[Sample, float]], float]:
    """The students i with i % shares == share, each started when due (start + i / rate)."""
    results: list[tuple[Sample, float]] = []
    lock = threading.Lock()

    def student(key: str, due: float) -> None:
        sample = launch_student(lms_url, key, timeout_s)
        with lock:
            results.append((sample, (time.monotonic() - due) * 1000))

    # Enough browsers that none waits for a free thread: rate x the slowest flow we tolerate.
    workers = min(1000, int(rate * 4 / shares) + 16)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s")
    futures: list[Future[None]] = []
    for i in range(share, len(keys), shares):
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if time.monotonic() > deadline:
            break
        futures.append(pool.submit(student, keys[i], due))
    spread = time.monotonic() - start
    pool.shutdown(wait=True)
    return results, spread


def run_class(
    worker_class: str, keys: list[str], args: argparse.Namespace, target: dict[str, Any]
) -> dict[str, Any]:
    """One fresh server of worker_class (the tool, or the ceiling): warm-up, then the burst."""
    boxes, port, workdir = target["boxes"], target["port"], target["workdir"]
    cmd = target["cmd"] + (" --threads {threads}" if worker_class == "gthread" else "")
    run_args = argparse.Namespace(
        workers=args.workers, worker_class=worker_class, threads=args.threads, bench=HERE
    )
    log = workdir / f"{target['name']}-{worker_class}.log"
    with server(cmd, run_args, port, target["env"], log) as proc:
        warm, burst = keys[: args.warmup], keys[args.warmup :]
        with ThreadPoolExecutor(max_workers=4) as pool:  # every worker parses its key first
            list(pool.map(lambda k: launch_student(boxes.lms_url, k, 30.0), warm))
        pids = tree_pids(proc.pid)
        cpu0, own0, busy0 = sum(cpu_seconds(p) for p in pids), _own_cpu(), machine_busy_s()
        before = boxes.proctoring_counter.snapshot()
        t0 = time.perf_counter()
        deadline = time.monotonic() + args.time_limit
        results, spread = arrivals(
            boxes.lms_url, burst, args.rate, args.request_timeout, deadline, args.processes
        )
        seconds = time.perf_counter() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        own = _own_cpu() - own0
        busy = machine_busy_s() - busy0
        upserts = count(boxes.proctoring_counter.snapshot() - before, "POST", UPSERT_PATH)
    ok = [ms for sample, ms in results if sample.ok]
    return {
        "server": target["name"],
        "worker_class": worker_class,
        "students": len(burst),
        "done": len(results),
        "ok": len(ok),
        "errors": dict(Counter(s.outcome for s, _ in results if not s.ok)),
        "unstarted": len(burst) - len(results),
        "arrival_rate": len(results) / spread if spread else 0.0,
        "seconds": seconds,
        "p50_ms": percentile(ok, 50),
        "p99_ms": percentile(ok, 99),
        "max_ms": max(ok) if ok else None,
        "upserts": upserts,
        "server_cpu_ms_per_launch": 1000 * cpu / max(len(results), 1),
        "bench_cpu_s": own,
        "machine_busy_pct": 100 * busy / (seconds * (os.cpu_count() or 1)),
    }


def ceiling_target(
    stack: ExitStack, args: argparse.Namespace, db_url: str, prefix: str, workdir: Path
) -> tuple[dict[str, Any], list[str]]:
    """The ceiling app (ceiling_app.py) with a sandbox LMS and service of its own, as ratio.py."""
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    boxes = stack.enter_context(sandboxes(url, "moodle", args.service_ms / 1000))
    keys = seed_students(boxes.lms_app, args.warmup + args.students)
    config = {
        "platform": get_sandbox_lms(boxes.lms_app).describe(),
        "base_url": url,
        "redis_url": REDIS_URL,
        "prefix": prefix + "ceiling:",
        "pg_dsn": db_url.replace("postgresql+psycopg://", "postgresql://"),
        "service_url": boxes.proctoring_url + UPSERT_PATH,
        "api_key": boxes.api_key,
    }
    target = {
        "name": "ceiling",
        "cmd": CEILING_CMD,
        "env": {CEILING_ENV: json.dumps(config)},
        "boxes": boxes,
        "port": port,
        "workdir": workdir,
    }
    return target, keys


def _own_cpu() -> float:
    """CPU of this process and of its finished children (the forked browser processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=1000, help="arrivals per worker class")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second")
    parser.add_argument("--service-ms", type=float, default=300.0, help="service upsert latency")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-class", nargs="+", default=["gevent", "gthread"], choices=["gevent", "gthread"]
    )
    parser.add_argument("--threads", type=int, default=32, help="gthread threads per worker")
    parser.add_argument("--warmup", type=int, default=20, help="launches before the burst")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="forked processes running the browsers (the sandboxes stay in this one)",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--time-limit", type=float, default=120.0, help="per burst, seconds")
    parser.add_argument("--server-cmd", default=SERVE_CMD)
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="then run the same burst against the bare ceiling app (the first worker class): "
        "what this machine and this load generator allow at all",
    )
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandboxes' access logs
    per_class = args.warmup + args.students
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-burst-")))
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        port = free_port()
        tool_url = f"http://127.0.0.1:{port}"
        boxes = stack.enter_context(sandboxes(tool_url, "moodle", args.service_ms / 1000))
        keys = seed_students(boxes.lms_app, per_class * len(args.worker_class))
        config = tool_config(
            argparse.Namespace(pool_size=None), workdir=workdir, tool_url=tool_url,
            db_url=db_url, store_prefix=prefix, boxes=boxes,
        )  # fmt: skip
        register_platform(config, boxes.lms_app)  # also applies the schema, as `db upgrade` does
        config["AUTO_MIGRATE"] = False
        tool = {
            "name": "tool",
            "cmd": args.server_cmd,
            "env": env_settings(config),
            "boxes": boxes,
            "port": port,
            "workdir": workdir,
        }
        ceiling, ceiling_keys = (
            ceiling_target(stack, args, db_url, prefix, workdir) if args.ceiling else (None, [])
        )
        for n, worker_class in enumerate(args.worker_class):
            figures = run_class(worker_class, keys[n * per_class : (n + 1) * per_class], args, tool)
            results.append(figures)
            print_row(figures, args)
        if ceiling is not None:  # the same arrivals against the bare launch, same worker class
            figures = run_class(args.worker_class[0], ceiling_keys, args, ceiling)
            results.append(figures)
            print_row(figures, args)
    print_summary(args, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["errors"] or r["unstarted"] for r in results) else 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_row(r: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"  {r['server']:<8} {r['worker_class']:<8} {r['ok']}/{r['students']} ok · arrivals "
        f"{r['arrival_rate']:.1f}/s · p50 {_ms(r['p50_ms'])} ms · p99 {_ms(r['p99_ms'])} ms · "
        f"max {_ms(r['max_ms'])} ms · upserts {r['upserts']} · server CPU "
        f"{r['server_cpu_ms_per_launch']:.1f} ms/launch · machine {r['machine_busy_pct']:.0f}%"
        + (f" · errors {r['errors']}" if r["errors"] else ""),
        flush=True,
    )


def print_summary(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(
        f"\nburst · {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · {os.cpu_count()} cores · "
        f"{args.students} students at {args.rate:.0f}/s · service {args.service_ms:.0f} ms · "
        f"`lti-proctor serve --workers {args.workers}` · PostgreSQL + Redis"
    )
    for r in results:
        errors = sum(r["errors"].values()) + r["unstarted"]
        p99 = r["p99_ms"]
        verdict = "ok  " if errors == 0 and p99 is not None and p99 <= TARGET_P99_MS else "MISS"
        threads = f" x {args.threads}" if r["worker_class"] == "gthread" else ""
        print(
            f"  {r['server']:<8} {r['worker_class'] + threads:<12} "
            f"p50 {_ms(r['p50_ms']):>6} ms  p99 "
            f"{_ms(p99):>6} ms  errors {errors:<4} upserts {r['upserts']:<5} "
            f"bench CPU {r['bench_cpu_s']:.1f} s   [{verdict} 0 errors, p99 <= "
            f"{TARGET_P99_MS:.0f} ms]"
        )
    print("  (latency: from the student's due arrival to the exam page, login + launch + start)")


if __name__ == "__main__":
    sys.exit(main())
