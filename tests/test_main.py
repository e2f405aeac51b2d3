"""The lti-proctor console script (__main__.py): --version, --help and the demo's ports."""

from __future__ import annotations

import importlib.metadata
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from lti_proctor.__main__ import build_cli, demo_command
from lti_proctor.demo import RunningDemo

OUR_COMMANDS = ("platform", "keys", "jobs", "serve", "worker", "demo")
FLASK_OPTIONS = ("--app", "--debug", "--env-file", "--no-debug")
FLASK_COMMANDS = ("routes", "shell", "run")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The script's environment: an instance folder of its own, nothing in the repository's."""
    return {"LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance")}


def test_version_prints_lti_proctors_own_version(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(build_cli(), ["--version"], prog_name="lti-proctor", env=cli_env)

    assert result.exit_code == 0
    assert result.output == f"lti-proctor {importlib.metadata.version('lti-proctor')}\n"


def test_help_lists_our_commands_and_none_of_flasks_options(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(build_cli(), ["--help"], prog_name="lti-proctor", env=cli_env)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: lti-proctor [OPTIONS] COMMAND")
    commands = result.output.split("Commands:")[1]
    listed = {line.split()[0] for line in commands.strip().splitlines() if line.strip()}
    assert set(OUR_COMMANDS) <= listed
    assert not listed & set(FLASK_COMMANDS)
    options = result.output.split("Options:")[1].split("Commands:")[0]
    assert "--version" in options and "--help" in options
    for option in FLASK_OPTIONS:
        assert option not in result.output
    assert "TrustExam proctoring" in result.output


@pytest.fixture
def default_ports_taken() -> Iterator[int]:
    """The demo's default tool port (5000) is in use, by us here or by something else already."""
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", 5000))
            other.listen()
        except OSError:
            pass  # already taken by another program: just as good
        yield 5000


def test_demo_with_default_ports_taken_moves_to_free_ports_and_says_which_to_open(
    default_ports_taken: int, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answered: list[int] = []

    def one_look_then_ctrl_c(demo: RunningDemo) -> None:
        # Stands in for the person at the terminal: open the printed URL once, then stop.
        answered.append(requests.get(demo.urls.lms + "/", timeout=10).status_code)

    monkeypatch.setattr(RunningDemo, "wait", one_look_then_ctrl_c)
    result = CliRunner().invoke(demo_command, [], env=cli_env)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"port {default_ports_taken}" in lines[0] and "already in use" in lines[0]
    assert lines[0].endswith("Using free ports instead.")
    opened = re.search(r"Open  http://127\.0\.0\.1:(\d+)/", result.output)
    assert opened is not None and int(opened.group(1)) != default_ports_taken + 1
    assert answered == [200]
    assert lines[-1] == "Demo stopped."


def test_demo_with_an_asked_for_port_taken_refuses_instead_of_moving(
    default_ports_taken: int, cli_env: dict[str, str]
) -> None:
    result = CliRunner().invoke(
        demo_command, ["--port-base", str(default_ports_taken)], env=cli_env
    )

    assert result.exit_code == 1
    assert "Using free ports" not in result.output
    assert result.output.startswith(f"Error: port {default_ports_taken} ")
