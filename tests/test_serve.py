"""`lti-proctor serve`: gunicorn with the shipped configuration, or the development server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskCliRunner

from lti_proctor import cli, gunicorn_conf


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Capture the exec of gunicorn instead of replacing the test process."""
    calls: list[list[str]] = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append(list(argv)))
    return calls


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_serve_runs_gunicorn_with_the_shipped_config_and_given_flags(
    runner: FlaskCliRunner, execs: list[list[str]]
) -> None:
    result = runner.invoke(
        args=["serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "3",
              "--worker-class", "gthread", "--threads", "40"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (argv,) = execs
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert _option(argv, "--config") == "python:lti_proctor.gunicorn_conf"
    assert _option(argv, "--bind") == "0.0.0.0:8080"
    assert _option(argv, "--workers") == "3"
    assert _option(argv, "--worker-class") == "gthread"
    assert _option(argv, "--threads") == "40"


def test_serve_defaults_to_gevent_one_worker_per_core_or_one_on_sqlite(
    app: Flask, runner: FlaskCliRunner, execs: list[list[str]]
) -> None:
    assert runner.invoke(args=["serve"]).exit_code == 0
    (argv,) = execs
    assert _option(argv, "--worker-class") == "gevent"
    assert "--threads" not in argv
    assert _option(argv, "--bind") == "127.0.0.1:5000"
    on_sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    assert _option(argv, "--workers") == ("1" if on_sqlite else str(os.cpu_count() or 1))


def test_serve_gthread_gets_enough_threads_for_30_service_calls_in_flight(
    runner: FlaskCliRunner, execs: list[list[str]]
) -> None:
    assert runner.invoke(args=["serve", "--worker-class", "gthread"]).exit_code == 0
    assert int(_option(execs[0], "--threads")) >= 30


def test_serve_binds_an_ipv6_host_in_brackets(
    runner: FlaskCliRunner, execs: list[list[str]]
) -> None:
    assert runner.invoke(args=["serve", "--host", "::1", "--port", "9000"]).exit_code == 0
    assert _option(execs[0], "--bind") == "[::1]:9000"


@pytest.mark.parametrize(
    "args",
    [
        ["--threads", "8"],  # threads without gthread
        ["--worker-class", "sync"],
        ["--workers", "0"],
        ["--port", "0"],
        ["--port", "http"],
    ],
)
def test_serve_refuses_bad_arguments_without_starting(
    runner: FlaskCliRunner, execs: list[list[str]], args: list[str]
) -> None:
    result = runner.invoke(args=["serve", *args])
    assert result.exit_code == 2
    assert "Error" in result.output
    assert execs == []


def test_serve_dev_runs_the_reloading_development_server(
    runner: FlaskCliRunner, execs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def run_simple(host: str, port: int, app: Any, **kw: Any) -> None:
        calls.append({"host": host, "port": port, **kw})

    monkeypatch.setattr("werkzeug.serving.run_simple", run_simple)
    assert runner.invoke(args=["serve", "--dev", "--port", "5055"]).exit_code == 0
    assert calls == [{"host": "127.0.0.1", "port": 5055, "threaded": True, "use_reloader": True}]
    assert execs == []


def test_gunicorn_workers_build_the_app_without_migrating_or_creating_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("lti_proctor.create_app", lambda overrides=None: seen.append(overrides))
    gunicorn_conf.worker_app()
    assert seen == [{"AUTO_SETUP": False, "AUTO_MIGRATE": False}]


def test_gunicorn_master_gives_workers_a_metrics_dir_and_removes_it_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PROMETHEUS_MULTIPROC_DIR", "LTI_PROCTOR_OWNS_METRICS_DIR"):
        monkeypatch.setenv(name, "")  # so the test's end restores them, whatever on_starting set
        monkeypatch.delenv(name)
    gunicorn_conf.on_starting(None)
    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert path.is_dir()
    gunicorn_conf.on_exit(None)
    assert not path.exists()


def test_gunicorn_master_empties_a_configured_metrics_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old samples")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("LTI_PROCTOR_OWNS_METRICS_DIR", "")
    monkeypatch.delenv("LTI_PROCTOR_OWNS_METRICS_DIR")
    gunicorn_conf.on_starting(None)
    gunicorn_conf.on_exit(None)
    assert tmp_path.is_dir()  # an operator's directory stays
    assert list(tmp_path.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_boots_two_gunicorn_workers_that_answer_healthz(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance"),
        "LTI_PROCTOR_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [str(Path(sys.executable).parent / "lti-proctor"), "serve", "--port", str(port),
               "--workers", "2"]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        resp = None
        deadline = time.monotonic() + 60
        while resp is None and time.monotonic() < deadline and server.poll() is None:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            except (requests.ConnectionError, requests.Timeout):  # workers still booting
                time.sleep(0.2)
        assert resp is not None, "gunicorn did not answer"
        assert resp.status_code == 200
        assert resp.json() == {"status": "ok"}
        assert resp.headers["Server"].startswith("gunicorn")
        assert len(resp.headers["X-Request-ID"]) >= 8
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert output.count("Booting worker") == 2
