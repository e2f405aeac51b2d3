from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from lti_proctor import create_app
from lti_proctor.config import ConfigError
from lti_proctor.extensions import db
from lti_proctor.lti import keys

MakeApp = Callable[..., Flask]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LTI_PROCTOR_* setting from the machine running the tests leaks into these apps."""
    for name in list(os.environ):
        if name.startswith("LTI_PROCTOR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def make_app(instance: Path) -> Iterator[MakeApp]:
    """Build apps on the embedded defaults (SQLite under instance/), closing them afterwards."""
    built: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app({"INSTANCE_PATH": str(instance), **overrides})
        built.append(app)
        return app

    yield make
    for app in built:
        with app.app_context():
            db.engine.dispose()


def write_instance_config(instance: Path, text: str) -> None:
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "config.py").write_text(text)


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ((), "http://127.0.0.1:5000"),
        (("file",), "https://from-file.example"),
        (("file", "env"), "https://from-env.example"),
        (("file", "env", "overrides"), "https://from-overrides.example"),
        (("env",), "https://from-env.example"),
    ],
    ids=["defaults", "file over defaults", "env over file", "overrides over env", "env only"],
)
def test_settings_layer_defaults_file_env_overrides(
    make_app: MakeApp,
    instance: Path,
    monkeypatch: pytest.MonkeyPatch,
    layers: tuple[str, ...],
    expected: str,
) -> None:
    overrides: dict[str, Any] = {}
    if "file" in layers:
        write_instance_config(
            instance, 'BASE_URL = "https://from-file.example"\nLTI_LEEWAY_S = 5\n'
        )
    if "env" in layers:
        monkeypatch.setenv("LTI_PROCTOR_BASE_URL", "https://from-env.example/")
    if "overrides" in layers:
        overrides["BASE_URL"] = "https://from-overrides.example"

    app = make_app(**overrides)

    assert app.config["BASE_URL"] == expected
    assert app.config["LTI_LEEWAY_S"] == (5 if "file" in layers else 30)
    assert app.config["PROCTOR_TIMEOUT_S"] == 10


def test_embedded_default_is_a_sqlite_file_under_instance(
    make_app: MakeApp, instance: Path
) -> None:
    app = make_app()
    database = instance / "lti_proctor.sqlite3"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{database}"
    assert database.is_file()


def test_database_url_from_env_is_used(
    make_app: MakeApp, tmp_path: Path, instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    monkeypatch.setenv("LTI_PROCTOR_DATABASE_URL", f"sqlite:///{elsewhere}")

    app = make_app()

    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{elsewhere}"
    assert elsewhere.is_file()
    assert not (instance / "lti_proctor.sqlite3").exists()


def test_secret_key_from_env_is_used_and_none_is_written(
    make_app: MakeApp, instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LTI_PROCTOR_SECRET_KEY", "from-the-environment")
    assert make_app().secret_key == "from-the-environment"
    assert not (instance / "secret_key").exists()


def test_instance_path_from_env_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = tmp_path / "env-instance"
    monkeypatch.setenv("LTI_PROCTOR_INSTANCE_PATH", str(instance))
    app = create_app()
    with app.app_context():
        db.engine.dispose()
    assert app.instance_path == str(instance)
    assert (instance / "lti_proctor.sqlite3").is_file()


def test_secret_key_is_generated_on_first_start_and_reused(
    make_app: MakeApp, instance: Path
) -> None:
    first = make_app().secret_key
    secret_file = instance / "secret_key"

    assert isinstance(first, str) and len(first) >= 32
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert make_app().secret_key == first


def test_tool_key_is_generated_on_first_start_and_served_again_on_the_second(
    make_app: MakeApp,
) -> None:
    first = make_app().test_client().get("/.well-known/jwks.json").json
    second_app = make_app()
    second = second_app.test_client().get("/.well-known/jwks.json").json

    assert first is not None and len(first["keys"]) == 1
    assert second == first
    with second_app.app_context():
        assert len(keys.find_keys()) == 1


def test_without_auto_setup_no_key_is_generated(make_app: MakeApp) -> None:
    first = make_app()
    with first.app_context():
        db.session.execute(sa.delete(keys.ToolKey))
        db.session.commit()

    second = make_app(AUTO_SETUP=False)

    with second.app_context():
        assert keys.find_keys() == []


BROKEN_CONFIGS = {
    "syntax error": "BASE_URL = 'https://x.example\n",
    "unknown name": "BASE_URL = undefined_name\n",
    "failing import": "import no_such_module_here\n",
}


@pytest.mark.parametrize("text", BROKEN_CONFIGS.values(), ids=BROKEN_CONFIGS.keys())
def test_broken_instance_config_is_an_error_naming_the_file(
    make_app: MakeApp, instance: Path, text: str
) -> None:
    write_instance_config(instance, text)
    with pytest.raises(ConfigError, match=str(instance / "config.py")):
        make_app()


def run_cli(
    args: list[str], *, instance: Path, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the lti-proctor console entry point in a clean environment, as an admin would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTI_PROCTOR_")}
    env.update({"LTI_PROCTOR_INSTANCE_PATH": str(instance), **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-c", "from lti_proctor.__main__ import main; main()", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broken_instance_config_through_the_cli_is_one_clear_line(
    instance: Path, tmp_path: Path
) -> None:
    write_instance_config(instance, "BASE_URL = undefined_name\n")
    done = run_cli(["keys", "show"], instance=instance, cwd=tmp_path)

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: ") and str(instance / "config.py") in line
    assert "NameError" in line


def test_broken_profile_through_the_cli_is_one_clear_line(instance: Path, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shipped = Path(__file__).resolve().parent.parent / "configs" / "profiles"
    for source in shipped.glob("*.yaml"):
        (profiles / source.name).write_text(source.read_text())
    standard = profiles / "standard.yaml"
    standard.write_text(standard.read_text().replace("fullscreen_mode:", "fullscreen_mod:"))
    done = run_cli(
        ["keys", "show"],
        instance=instance,
        cwd=tmp_path,
        extra_env={"LTI_PROCTOR_PROCTOR_PROFILES_DIR": str(profiles)},
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert str(standard) in line and "fullscreen_mod" in line


# --- on/off settings are read strictly -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "insecure"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("YES", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("No", False),
    ],
)
def test_boolean_setting_from_env_is_read_strictly(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, text: str, insecure: bool
) -> None:
    monkeypatch.setenv("LTI_PROCTOR_DEV_INSECURE_COOKIES", text)

    app = make_app()

    assert app.config["DEV_INSECURE_COOKIES"] is insecure
    assert app.config["SESSION_COOKIE_SECURE"] is not insecure
    assert app.config["SESSION_COOKIE_SAMESITE"] == ("Lax" if insecure else "None")


@pytest.mark.parametrize("text", ["maybe", "2", "", "on", "Flase", "null"])
def test_boolean_setting_with_another_value_is_a_one_line_error_naming_it(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("LTI_PROCTOR_DEV_INSECURE_COOKIES", text)

    with pytest.raises(ConfigError) as refused:
        make_app()

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("LTI_PROCTOR_DEV_INSECURE_COOKIES must be true or false")


def test_boolean_setting_as_text_in_the_instance_file_is_read_strictly(
    make_app: MakeApp, instance: Path
) -> None:
    write_instance_config(instance, 'OUTBOX_EMBEDDED_WORKER = "false"\n')

    assert make_app().config["OUTBOX_EMBEDDED_WORKER"] is False


def test_bad_boolean_through_the_cli_is_one_clear_line(instance: Path, tmp_path: Path) -> None:
    done = run_cli(
        ["keys", "show"],
        instance=instance,
        cwd=tmp_path,
        extra_env={"LTI_PROCTOR_PRODUCTION": "ture"},
    )

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: cannot start: LTI_PROCTOR_PRODUCTION must be true or false")
