"""The launch against its ceiling: server CPU per launch and launches/s, alternated in one run.

Starts two sandbox LMSs (each with its sandbox proctoring service, answering in 0 ms unless
--upsert-latency-ms) on loopback, the tool (registered with the first) and the ceiling app
(ceiling_app.py, configured with the second), both under the same server command and worker
count, both on PostgreSQL + Redis. Then, for each concurrency, alternates segments of new
students' launches: tool, ceiling, tool, ceiling ... (--pairs), and finally one relaunch segment
each (resumed attempts). For each segment it takes the CPU of the server's whole process tree
(master + workers) from /proc. It prints CPU per launch (login + launch + start), launches/s and the
tool/ceiling ratios against the targets (CPU <= 2x, throughput >= 0.5x). Bounded, loopback only.

    .venv/bin/python benchmarks/ratio.py
    .venv/bin/python benchmarks/ratio.py --server-cmd "lti-proctor serve --host {host} \
        --port {port} --workers {workers}"       # once `serve` runs gunicorn
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
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_tool import CONFIG_ENV, STATS_ENV, cpu_seconds  # noqa: E402
from benchmarks.launch_burst import (  # noqa: E402
    REDIS_URL,
    UPSERT_PATH,
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

GUNICORN = (
    "{python} -m gunicorn -b {host}:{port} -w {workers} -k {worker_class} --threads {threads} "
    "--timeout 60 --graceful-timeout 10 --pythonpath {bench}"
)
TOOL_CMD = GUNICORN + " -c {bench}/gunicorn_conf.py bench_tool:build_app()"
CEILING_CMD = GUNICORN + " ceiling_app:build_app()"
CEILING_ENV = "LTI_PROCTOR_CEILING_CONFIG"
TARGET_CPU_RATIO = 2.0
TARGET_THROUGHPUT_RATIO = 0.5


def tree_pids(root: int) -> list[int]:
    """root and every process descending from it (gunicorn's master and workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def env_settings(config: dict[str, Any]) -> dict[str, str]:
    """The tool's settings as LTI_PROCTOR_* variables (for a server that reads only those).

    Text goes raw (Flask's from_prefixed_env keeps what is not JSON as text; the instance path is
    read before it, raw); everything else as JSON.
    """
    return {
        f"LTI_PROCTOR_{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }


@contextmanager
def server(cmd: str, args: argparse.Namespace, port: int, env: dict[str, str], log: Path) -> Any:
    """Start a server command on 127.0.0.1:port, wait until it answers, stop it at the end."""
    line = cmd.format(
        python=sys.executable,
        host="127.0.0.1",
        port=port,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        bench=HERE,
    )
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            shlex.split(line), env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/lti/login", timeout=2)
                break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{line!r} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def segment(lms_url: str, keys: list[str], concurrency: int, pid: int) -> dict[str, Any]:
    """Launch every student in keys, concurrency at a time; the server tree's CPU meanwhile."""
    pids = tree_pids(pid)
    cpu0, busy0, t0 = sum(cpu_seconds(p) for p in pids), machine_busy_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        samples = list(pool.map(lambda key: launch_student(lms_url, key, 30.0), keys))
    seconds = time.perf_counter() - t0
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    ok = [s for s in samples if s.ok]
    return {
        "launches": len(keys),
        "ok": len(ok),
        "errors": dict(Counter(s.outcome for s in samples if not s.ok)),
        "seconds": seconds,
        "per_s": len(ok) / seconds,
        "cpu_ms": 1000 * cpu / len(keys),
        "flow_p99_ms": percentile([s.flow_ms for s in ok if s.flow_ms is not None], 99),
        "machine_busy_pct": 100 * (machine_busy_s() - busy0) / (seconds * (os.cpu_count() or 1)),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=150, help="launches per segment")
    parser.add_argument("--pairs", type=int, default=2, help="tool/ceiling alternations")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--upsert-latency-ms", type=float, default=0.0)
    parser.add_argument("--server-cmd", default=TOOL_CMD, help="the tool's server command")
    parser.add_argument("--ceiling-cmd", default=CEILING_CMD)
    parser.add_argument("--json", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandboxes' access logs
    per_c = args.students * (args.pairs + 1)
    total = per_c * len(args.concurrency)
    latency = args.upsert_latency_ms / 1000
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lp-ratio-")))
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        assert prefix is not None
        tool_port, ceiling_port = free_port(), free_port()
        tool_url, ceiling_url = f"http://127.0.0.1:{tool_port}", f"http://127.0.0.1:{ceiling_port}"
        tool_box = stack.enter_context(sandboxes(tool_url, "moodle", latency))
        ceiling_box = stack.enter_context(sandboxes(ceiling_url, "moodle", latency))
        tool_keys = seed_students(tool_box.lms_app, total)
        ceiling_keys = seed_students(ceiling_box.lms_app, total)
        settings = argparse.Namespace(pool_size=None)
        config = tool_config(
            settings, workdir=workdir, tool_url=tool_url, db_url=db_url, store_prefix=prefix,
            boxes=tool_box,
        )  # fmt: skip
        register_platform(config, tool_box.lms_app)
        from lti_proctor.sandbox.lms_platform import get_sandbox_lms

        ceiling_config = {
            "platform": get_sandbox_lms(ceiling_box.lms_app).describe(),
            "base_url": ceiling_url,
            "redis_url": REDIS_URL,
            "prefix": prefix + "ceiling:",
            "pg_dsn": db_url.replace("postgresql+psycopg://", "postgresql://"),
            "service_url": ceiling_box.proctoring_url + UPSERT_PATH,
            "api_key": ceiling_box.api_key,
        }
        (workdir / "stats").mkdir()
        tool_env = {
            CONFIG_ENV: json.dumps(config),
            STATS_ENV: str(workdir / "stats"),
            **env_settings(config),
        }
        tool = stack.enter_context(
            server(args.server_cmd, args, tool_port, tool_env, workdir / "tool.log")
        )
        ceiling = stack.enter_context(
            server(
                args.ceiling_cmd,
                args,
                ceiling_port,
                {CEILING_ENV: json.dumps(ceiling_config)},
                workdir / "ceiling.log",
            )
        )
        # Warm-up: every worker parses its key and fills its caches before anything counts.
        segment(tool_box.lms_url, tool_keys[-20:], 4, tool.pid)
        segment(ceiling_box.lms_url, ceiling_keys[-20:], 4, ceiling.pid)
        for n, c in enumerate(args.concurrency):
            base = n * per_c
            for pair in range(args.pairs + 1):
                keys = slice(base + pair * args.students, base + (pair + 1) * args.students)
                if pair == args.pairs:  # the relaunch: the first segment's students again
                    keys = slice(base, base + args.students)
                kind = "resumed" if pair == args.pairs else "new"
                for name, box, pool, proc in (
                    ("tool", tool_box, tool_keys, tool),
                    ("ceiling", ceiling_box, ceiling_keys, ceiling),
                ):
                    figures = segment(box.lms_url, pool[keys], c, proc.pid)
                    results.append({"server": name, "c": c, "kind": kind, **figures})
                    print(
                        f"  c={c:<3} {kind:<8} {name:<8} {figures['per_s']:7.1f} launches/s · "
                        f"CPU {figures['cpu_ms']:5.1f} ms/launch · p99 "
                        f"{figures['flow_p99_ms'] or 0:6.0f} ms · errors "
                        f"{sum(figures['errors'].values())} · machine "
                        f"{figures['machine_busy_pct']:.0f}%"
                        + (f" {figures['errors']}" if figures["errors"] else ""),
                        flush=True,
                    )
    print_summary(args, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["errors"] for r in results) else 0


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] for r in rows) / max(len(rows), 1)


def print_summary(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Means per concurrency and kind, and the tool/ceiling ratios against their targets."""
    print(
        f"\nlti-proctor vs ceiling · {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · "
        f"{os.cpu_count()} cores · {args.workers} workers {args.worker_class} x {args.threads} · "
        f"PostgreSQL + Redis · {args.students} launches per segment, {args.pairs} pairs"
    )
    print(
        f"  {'':16}{'tool ms':>9}{'ceil ms':>9}{'CPU x':>7}{'tool/s':>9}{'ceil/s':>9}{'thru x':>8}"
    )
    for c in args.concurrency:
        for kind in ("new", "resumed"):
            rows = [r for r in results if r["c"] == c and r["kind"] == kind]
            tool = [r for r in rows if r["server"] == "tool"]
            ceil = [r for r in rows if r["server"] == "ceiling"]
            cpu_x = _mean(tool, "cpu_ms") / max(_mean(ceil, "cpu_ms"), 1e-9)
            thru_x = _mean(tool, "per_s") / max(_mean(ceil, "per_s"), 1e-9)
            verdict = "ok  " if cpu_x <= TARGET_CPU_RATIO else "MISS"
            verdict2 = "ok  " if thru_x >= TARGET_THROUGHPUT_RATIO else "MISS"
            print(
                f"  c={c:<3} {kind:<10}{_mean(tool, 'cpu_ms'):9.1f}{_mean(ceil, 'cpu_ms'):9.1f}"
                f"{cpu_x:7.2f}{_mean(tool, 'per_s'):9.1f}{_mean(ceil, 'per_s'):9.1f}{thru_x:8.2f}"
                f"   [{verdict} CPU <= {TARGET_CPU_RATIO}x] [{verdict2} thru >= "
                f"{TARGET_THROUGHPUT_RATIO}x]"
            )
    print(
        "  (CPU: the server's process tree per launch, login + launch + start; means over segments)"
    )


if __name__ == "__main__":
    sys.exit(main())
