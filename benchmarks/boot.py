"""Boot check: `lti-proctor serve --workers N` on an empty PostgreSQL database, many times in a row.

Each run: a new empty PostgreSQL schema, `lti-proctor db upgrade` once (as the deployment guide
says), then `lti-proctor serve --workers N` with the production server; the run passes when
`/readyz` answers 200, all N workers are alive after a settle time, every one of --probes
readiness requests answers 200, the log holds no traceback or failed worker, and the server
stops cleanly on SIGTERM. Prints one line per run and a summary. Loopback only, bounded, and it
removes the schemas it made.

    .venv/bin/python benchmarks/boot.py                  # 10 runs, 4 workers
    .venv/bin/python benchmarks/boot.py --runs 3 --workers 2 --worker-class gthread
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.launch_burst import REDIS_URL, database, free_port, redis_prefix  # noqa: E402
from benchmarks.ratio import tree_pids  # noqa: E402

FAILURE = re.compile(r"Traceback|Worker failed to boot|Exception in worker|\bERROR\b")


def settings(db_url: str, port: int, prefix: str, instance: Path) -> dict[str, str]:
    """What an operator sets for a PostgreSQL + Redis deployment (sandbox service, plain http)."""
    return {
        "LTI_PROCTOR_SQLALCHEMY_DATABASE_URI": db_url,
        "LTI_PROCTOR_INSTANCE_PATH": str(instance),
        "LTI_PROCTOR_BASE_URL": f"http://127.0.0.1:{port}",
        "LTI_PROCTOR_SECRET_KEY": secrets.token_urlsafe(32),
        "LTI_PROCTOR_REDIS_URL": REDIS_URL,
        "LTI_PROCTOR_STORE_PREFIX": prefix,
        "LTI_PROCTOR_SANDBOX_PROCTORING": "true",
        "LTI_PROCTOR_DEV_INSECURE_COOKIES": "true",
        "LTI_PROCTOR_OUTBOX_EMBEDDED_WORKER": "false",
    }


def one_run(number: int, args: argparse.Namespace, workdir: Path) -> tuple[bool, str]:
    """One empty database, one upgrade, one boot; (passed, what happened)."""
    with ExitStack() as stack:
        db_url = stack.enter_context(database("postgresql", workdir))
        prefix = stack.enter_context(redis_prefix(True))
        assert prefix is not None
        port = free_port()
        instance = workdir / f"instance-{number}"
        env = {**os.environ, **settings(db_url, port, prefix, instance)}
        cli = [sys.executable, "-m", "lti_proctor"]
        upgrade = subprocess.run(
            [*cli, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
        )
        if upgrade.returncode != 0:
            return False, f"db upgrade exited {upgrade.returncode}: {upgrade.stderr[-300:]}"
        log_path = workdir / f"serve-{number}.log"
        serve = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
        serve += ["--workers", str(args.workers), "--worker-class", args.worker_class]
        started = time.monotonic()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(serve, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready_s = _wait_ready(port, proc, args.timeout)
            if ready_s is None:
                return False, f"not ready in {args.timeout:.0f} s (exit {proc.poll()})"
            time.sleep(args.settle)
            workers = len(tree_pids(proc.pid)) - 1
            probes = [_status(port) for _ in range(args.probes)]
            bad = [s for s in probes if s != 200]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(timeout=10)
        text = log_path.read_text(errors="replace")
        failures = FAILURE.findall(text)
        passed = workers >= args.workers and not bad and not failures and code == 0
        what = (
            f"ready in {ready_s:.1f} s (boot {time.monotonic() - started:.1f} s in all) · "
            f"workers alive {workers}/{args.workers} · /readyz {len(probes) - len(bad)}/"
            f"{len(probes)} 200 · exit {code}"
            + (f" · log: {sorted(set(failures))}" if failures else "")
        )
        return passed, what


def _status(port: int) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
    except requests.RequestException:
        return 0


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> float | None:
    """Seconds until /readyz answered 200, or None (timeout, or the server exited)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            return None
        if _status(port) == 200:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"])
    parser.add_argument("--probes", type=int, default=20, help="/readyz requests once booted")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before counting")
    parser.add_argument("--timeout", type=float, default=60.0, help="per boot, seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    passed = 0
    with tempfile.TemporaryDirectory(prefix="lp-boot-") as tmp:
        for number in range(1, args.runs + 1):
            ok, what = one_run(number, args, Path(tmp))
            passed += ok
            print(f"  run {number:>2}: {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    print(
        f"\nboot · {args.runs} runs · `lti-proctor serve --workers {args.workers} --worker-class "
        f"{args.worker_class}` on an empty PostgreSQL schema after `lti-proctor db upgrade` · "
        f"{passed}/{args.runs} passed   [{'ok  ' if passed == args.runs else 'MISS'} "
        f"every run]"
    )
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
