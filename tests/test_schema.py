"""Migrations: an empty database and one at the baseline (with rows) both reach the models'
schema on SQLite and PostgreSQL, a database behind is refused with one line, and concurrent
upgrades all succeed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from lti_proctor import create_app, schema
from lti_proctor.config import new_app
from lti_proctor.db_cli import db_group
from lti_proctor.extensions import db
from lti_proctor.lti.platforms import list_platforms
from lti_proctor.schema import (
    BASELINE,
    SchemaError,
    pending_revisions,
    script_directory,
    upgrade_database,
)
from tests.services import private_pg_schema

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

# Every revision, oldest first: what an empty database needs.
ALL = [rev.revision for rev in reversed(list(script_directory().walk_revisions()))]
HEAD = ALL[-1]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    with private_pg_schema("lp_mig") as url:
        yield url


@pytest.fixture
def engine(empty_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(empty_url)
    yield eng
    eng.dispose()


def drift(engine: sa.Engine) -> list[Any]:
    """What autogenerate would still change to make the database match the models."""
    schema.import_models()
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), db.metadata))


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def upgrade_to_baseline(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), BASELINE)


def insert_baseline_rows(engine: sa.Engine) -> None:
    """Rows written with the baseline's own columns (never the models, which move on)."""
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(
            t["lti_platform"].insert(),
            {
                "id": 1,
                "name": "Moodle",
                "issuer": "https://moodle.example.edu",
                "client_id": "qJFGPTxkK5WNQyx",
                "auth_login_url": "https://moodle.example.edu/mod/lti/auth.php",
                "auth_token_url": "https://moodle.example.edu/mod/lti/token.php",
                "key_set_url": "https://moodle.example.edu/mod/lti/certs.php",
                "created_at": NOW,
            },
        )
        conn.execute(
            t["lti_deployment"].insert(),
            {"id": 1, "platform_id": 1, "deployment_id": "1", "active": True, "created_at": NOW},
        )
        conn.execute(
            t["outbox_job"].insert(),
            {
                "id": 1,
                "kind": "report.fetch",
                "payload": {"attempt_id": "a1"},
                "status": "todo",
                "attempts": 0,
                "scheduled_at": NOW,
                "created_at": NOW,
            },
        )


def test_upgrade_of_an_empty_database_matches_the_models(engine: sa.Engine) -> None:
    assert pending_revisions(engine) == ALL

    applied = upgrade_database(engine)

    assert applied == ALL
    assert pending_revisions(engine) == []
    assert drift(engine) == []
    assert upgrade_database(engine) == []  # a second run changes nothing


def test_upgrade_of_a_database_at_the_baseline_keeps_its_rows(
    engine: sa.Engine, empty_url: str, tmp_path: Path
) -> None:
    upgrade_to_baseline(engine)
    insert_baseline_rows(engine)

    upgrade_database(engine)

    assert pending_revisions(engine) == []
    assert drift(engine) == []
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": empty_url,
            "SECRET_KEY": "test-secret-key",
            "AUTO_MIGRATE": False,
        }
    )
    with app.app_context():
        (platform,) = list_platforms()
        assert platform.client_id == "qJFGPTxkK5WNQyx"
        assert [d.deployment_id for d in platform.deployments] == ["1"]
        jobs = db.session.execute(sa.text("SELECT kind, status FROM outbox_job")).all()
        assert [tuple(j) for j in jobs] == [("report.fetch", "todo")]
        db.session.remove()
        db.engine.dispose()


def test_database_made_before_migrations_is_taken_as_the_baseline(engine: sa.Engine) -> None:
    upgrade_to_baseline(engine)
    insert_baseline_rows(engine)
    with engine.begin() as conn:  # what create_all left: the tables, no migration history
        conn.execute(sa.text("DROP TABLE alembic_version"))
    assert pending_revisions(engine) == ALL

    upgrade_database(engine)

    assert pending_revisions(engine) == []
    assert drift(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM lti_deployment")).scalar() == 1


def test_database_with_some_tables_and_no_history_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE lti_platform (id INTEGER PRIMARY KEY)"))

    with pytest.raises(SchemaError, match="no migration history") as refused:
        upgrade_database(engine)

    assert "\n" not in str(refused.value)
    assert table_names(engine) == {"lti_platform"}


def test_app_refuses_to_start_on_a_database_behind(
    engine: sa.Engine, empty_url: str, tmp_path: Path
) -> None:
    with pytest.raises(SchemaError) as refused:
        create_app(
            {
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "SQLALCHEMY_DATABASE_URI": empty_url,
                "SECRET_KEY": "test-secret-key",
                "AUTO_MIGRATE": False,
            }
        )

    message = str(refused.value)
    assert "\n" not in message
    assert "behind" in message and message.endswith("run `lti-proctor db upgrade`")
    assert table_names(engine) == set()  # nothing was created behind the admin's back


def test_auto_migrate_upgrades_on_start(engine: sa.Engine, empty_url: str, tmp_path: Path) -> None:
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": empty_url,
            "SECRET_KEY": "test-secret-key",
            "AUTO_MIGRATE": True,
        }
    )
    with app.app_context():
        db.engine.dispose()

    assert pending_revisions(engine) == []


def test_embedded_default_upgrades_itself_on_first_start(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance")})

    assert app.config["AUTO_MIGRATE"] is True
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'instance' / 'lti_proctor.sqlite3'}")
    assert pending_revisions(engine) == []
    engine.dispose()
    with app.app_context():
        db.engine.dispose()


def test_a_configured_postgresql_is_not_migrated_by_the_app(tmp_path: Path) -> None:
    app_config = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": "postgresql+psycopg://root@127.0.0.1:5432/test",
    }
    assert new_app(app_config).config["AUTO_MIGRATE"] is False


# --- the CLI --------------------------------------------------------------------------------


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The lti-proctor console entry point in a clean environment, as an admin runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LTI_PROCTOR_")}
    return subprocess.run(
        [sys.executable, "-c", "from lti_proctor.__main__ import main; main()", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def cli_env(empty_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance"),
        "LTI_PROCTOR_DATABASE_URL": empty_url,
        "LTI_PROCTOR_SECRET_KEY": "test-secret-key",
        "LTI_PROCTOR_AUTO_MIGRATE": "false",
    }


def test_server_and_worker_refuse_a_database_behind_with_one_line(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    for args in (["worker", "--once"], ["serve", "--port", "0"]):
        done = run_cli(args, env=cli_env, cwd=tmp_path)

        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("Error: cannot start: the database is behind")
        assert "run `lti-proctor db upgrade`" in line

    upgraded = run_cli(["db", "upgrade"], env=cli_env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"applied {BASELINE}" in upgraded.stdout

    worked = run_cli(["worker", "--once"], env=cli_env, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    assert "Ran 0 job(s)." in worked.stdout


def test_db_current_says_behind_then_current(cli_env: dict[str, str]) -> None:
    runner = CliRunner()

    behind = runner.invoke(db_group, ["current"], env=cli_env)
    assert behind.exit_code == 1
    assert "no revision (empty)" in behind.output
    assert f"{len(ALL)} pending ({', '.join(ALL)}); run `lti-proctor db upgrade`" in behind.output

    assert runner.invoke(db_group, ["upgrade"], env=cli_env).exit_code == 0
    current = runner.invoke(db_group, ["current"], env=cli_env)
    assert current.exit_code == 0
    assert f"at {HEAD}" in current.output and "Current." in current.output
    assert "test-secret-key" not in current.output


def test_db_upgrade_hides_the_database_password(tmp_path: Path) -> None:
    env = {
        "LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance"),
        "LTI_PROCTOR_DATABASE_URL": "postgresql+psycopg://tool:s3cret-pw@127.0.0.1:1/nodb",
    }
    done = CliRunner().invoke(db_group, ["upgrade"], env=env)

    assert done.exit_code != 0
    assert "s3cret-pw" not in done.output


def test_db_revision_writes_the_next_revision_and_the_app_then_waits_for_it(
    cli_env: dict[str, str], empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", migrations)
    runner = CliRunner()
    assert runner.invoke(db_group, ["upgrade"], env=cli_env).exit_code == 0

    written = runner.invoke(
        db_group, ["revision", "--autogenerate", "-m", "Add review table"], env=cli_env
    )

    assert written.exit_code == 0, written.output
    new = f"{len(ALL) + 1:04d}_add_review_table"
    path = migrations / "versions" / f"{new}.py"
    text = path.read_text()
    assert f'revision = "{new}"' in text
    assert f'down_revision = "{HEAD}"' in text
    assert "from __future__ import annotations" in text
    with pytest.raises(SchemaError, match=rf"1 migration\(s\) pending, up to {new}"):
        create_app(
            {
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "SQLALCHEMY_DATABASE_URI": empty_url,
                "SECRET_KEY": "test-secret-key",
                "AUTO_MIGRATE": False,
            }
        )
    assert runner.invoke(db_group, ["upgrade"], env=cli_env).exit_code == 0
    eng = sa.create_engine(empty_url)
    assert pending_revisions(eng) == []
    eng.dispose()


# --- many processes at once (PostgreSQL) ----------------------------------------------------


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    with private_pg_schema("lp_race") as url:
        yield url


def test_concurrent_upgrades_on_postgresql_all_succeed(pg_empty_url: str) -> None:
    workers = 6
    barrier = threading.Barrier(workers)
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def upgrade() -> None:
        eng = sa.create_engine(pg_empty_url)
        try:
            barrier.wait()
            applied.append(upgrade_database(eng))
        except BaseException as exc:
            errors.append(exc)
        finally:
            eng.dispose()

    threads = [threading.Thread(target=upgrade) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(applied) == [[]] * (workers - 1) + [ALL]  # one did it, once
    eng = sa.create_engine(pg_empty_url)
    assert drift(eng) == []
    eng.dispose()


def test_processes_starting_together_on_postgresql_never_fail(
    pg_empty_url: str, tmp_path: Path
) -> None:
    env = {
        "LTI_PROCTOR_INSTANCE_PATH": str(tmp_path / "instance"),
        "LTI_PROCTOR_DATABASE_URL": pg_empty_url,
        "LTI_PROCTOR_SECRET_KEY": "test-secret-key",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LTI_PROCTOR_")}

    def start_together(args: list[str]) -> list[tuple[int, str]]:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", "from lti_proctor.__main__ import main; main()", *args],
                env={**clean, **env},
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        return [(p.wait(timeout=120), p.communicate()[1]) for p in procs]

    # Four deploy hosts upgrading an empty database, then four workers booting on it at once
    # (each also races to create the first tool key).
    for args in (["db", "upgrade"], ["worker", "--once"]):
        results = start_together(args)
        assert [rc for rc, _ in results] == [0] * 4, [err for _, err in results]
    eng = sa.create_engine(pg_empty_url)
    with eng.connect() as conn:
        current = conn.execute(sa.text("SELECT count(*) FROM lti_tool_key")).scalar()
    eng.dispose()
    assert current == 1
