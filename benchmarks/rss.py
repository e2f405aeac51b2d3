"""Memory over many launches: the RSS of each web worker of `lti-proctor serve`, every 1,000.

Starts, on loopback, the sandbox LMS and proctoring service in this process, a private
PostgreSQL schema and a Redis key prefix, and the tool under `lti-proctor serve` (settings from
LTI_PROCTOR_* variables). Then runs --launches launches of distinct new students, --concurrency
at a time (login + launch, real signed launches), and after each --every launches reads VmRSS
of every gunicorn worker from /proc. Prints the table and the growth from the first sample to
the last against the target (flat: at most 10% per worker). Bounded (--time-limit), loopback
only, stops what it started.

    .venv/bin/python benchmarks/rss.py                        # 10,000 launches, sampled per 1,000
    .venv/bin/python benchmarks/rss.py --launches 2000 --every 500
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.burst import SERVE_CMD  # noqa: E402
from benchmarks.launch_burst import (  # noqa: E402
    database,
    free_port,
    launch_student,
    redis_prefix,
    register_platform,
    sandboxes,
    seed_students,
    tool_config,
)
from benchmarks.ratio import env_settings, server, tree_pids  # noqa: E402

TARGET_GROWTH = 0.10  # flat: at most 10% more RSS per worker from the first sample to the last


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process in MB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1000, help="sample RSS after this many")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=1200.0, help="whole run, seconds")
    parser.add_argument("--server-cmd", default=SERVE_CMD)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandboxes' access logs
    deadline = time.monotonic() + args.time_limit
    samples: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-rss-")))
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        port = free_port()
        tool_url = f"http://127.0.0.1:{port}"
        boxes = stack.enter_context(sandboxes(tool_url, "moodle", 0.0))
        keys = seed_students(boxes.lms_app, args.launches)
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
        proc = stack.enter_context(server(cmd, run_args, port, env, workdir / "tool.log"))
        worker_pids = [pid for pid in tree_pids(proc.pid) if pid != proc.pid]
        start_rss = {pid: rss_mb(pid) for pid in worker_pids}
        print(
            "  workers after start: "
            + ", ".join(f"{pid} {mb:.0f} MB" for pid, mb in start_rss.items() if mb),
            flush=True,
        )
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for done in range(0, args.launches, args.every):
                if time.monotonic() > deadline:
                    print("  time limit reached", flush=True)
                    break
                chunk = keys[done : done + args.every]
                t0 = time.perf_counter()
                results = list(pool.map(lambda k: launch_student(boxes.lms_url, k, 30.0), chunk))
                errors.update(s.outcome for s in results if not s.ok)
                row = {
                    "launches": done + len(chunk),
                    "rss_mb": {str(pid): rss_mb(pid) for pid in worker_pids},
                    "per_s": len(chunk) / (time.perf_counter() - t0),
                }
                samples.append(row)
                print(
                    f"  {row['launches']:>6} launches · "
                    + " · ".join(f"{mb or 0:.1f} MB" for mb in row["rss_mb"].values())
                    + f" · {row['per_s']:.0f} launches/s",
                    flush=True,
                )
    ok = print_summary(args, samples, errors)
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "errors": dict(errors)}, indent=2))
    return 0 if ok else 1


def print_summary(
    args: argparse.Namespace, samples: list[dict[str, Any]], errors: Counter[str]
) -> bool:
    """Growth per worker from the first sample to the last; True when flat and error-free."""
    print(
        f"\nRSS over launches · {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · {os.cpu_count()} cores"
        f" · serve {args.workers} {args.worker_class} · PostgreSQL + Redis · "
        f"{samples[-1]['launches'] if samples else 0} launches, c={args.concurrency}"
    )
    flat = bool(samples) and len(samples) >= 2
    if flat:
        first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
        for pid, mb in first.items():
            end = last.get(pid)
            if mb is None or end is None:
                print(f"  worker {pid}: gone (restarted?)")
                flat = False
                continue
            growth = (end - mb) / mb
            flat = flat and growth <= TARGET_GROWTH
            print(
                f"  worker {pid}: {mb:.1f} MB after {samples[0]['launches']} -> {end:.1f} MB "
                f"after {samples[-1]['launches']} ({growth:+.1%})"
            )
    print(
        f"  errors {sum(errors.values())}{' ' + str(dict(errors)) if errors else ''}   "
        f"[{'ok  ' if flat and not errors else 'MISS'} flat: <= {TARGET_GROWTH:.0%} growth, "
        "0 errors]"
    )
    return flat and not errors


if __name__ == "__main__":
    sys.exit(main())
