"""The tool's schema: which modules hold tables, and bringing a database to the code's revision.

The schema is managed by Alembic (the environment and revisions live in lti_proctor/migrations/).
Nothing here creates tables directly: `upgrade_database` applies the pending revisions under a
lock (a PostgreSQL advisory lock, or a lock file next to a SQLite file), so any number of
processes may call it at once; `pending_revisions` answers "is the schema current?".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import cache
from pathlib import Path
from typing import IO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from flask import Flask
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError

from lti_proctor.config import ConfigError
from lti_proctor.extensions import db

try:  # POSIX only; elsewhere a SQLite file is upgraded without the cross-process lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

# Every module that defines a model; importing them registers their tables with db.metadata.
MODEL_MODULES = (
    "lti_proctor.store",
    "lti_proctor.lti.registrations",
    "lti_proctor.lti.invites",
    "lti_proctor.lti.keys",
    "lti_proctor.identity",
    "lti_proctor.attempts.models",
    "lti_proctor.attempts.reports",
    "lti_proctor.attempts.review",
    "lti_proctor.exam_settings",
    "lti_proctor.jobs.models",
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001_baseline"
# The tables create_all made before migrations existed: a database holding all of them and no
# migration history is taken to be at the baseline (its constraint names match, see extensions).
BASELINE_TABLES = frozenset(
    {
        "store_entry",
        "lti_platform",
        "lti_deployment",
        "lti_tool_key",
        "exam",
        "learner",
        "attempt",
        "webhook_event",
        "attempt_report",
        "outbox_job",
    }
)
UPGRADE_COMMAND = "lti-proctor db upgrade"
_PG_LOCK_CLASS = (
    0x4C5450  # "LTP"; the second key is the schema, so schemas do not wait on each other
)
_REVISION_ID_MAX = 32  # alembic_version.version_num is VARCHAR(32)


class SchemaError(ConfigError):
    """The database cannot be used with this version of the tool (the CLI shows one line)."""


def import_models() -> None:
    """Import every model module so its tables are known."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for the shipped migrations, running on connection (env.py uses it)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s")
    config.attributes["connection"] = connection
    return config


@cache
def _script(location: str) -> ScriptDirectory:
    """The revisions found under location, read once per process."""
    config = Config()
    config.set_main_option("script_location", location)
    return ScriptDirectory.from_config(config)


def script_directory() -> ScriptDirectory:
    """The shipped revisions."""
    return _script(str(MIGRATIONS_DIR))


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions the database is stamped with; empty for a database never migrated."""
    return MigrationContext.configure(connection).get_current_heads()


def _pending(connection: Connection) -> list[str]:
    script = script_directory()
    current = current_revisions(connection)
    try:
        ahead = script.iterate_revisions(tuple(script.get_heads()), current or "base")
        return [rev.revision for rev in reversed(list(ahead))]
    except (ResolutionError, CommandError):
        # Stamped with a revision this code does not know: a newer release migrated it. Newer
        # revisions only add, so this code may run on it; it is not behind.
        return []


def pending_revisions(engine: Engine) -> list[str]:
    """The revisions the database still lacks, oldest first; empty when the schema is current."""
    with engine.connect() as connection:
        return _pending(connection)


def behind_message(pending: list[str]) -> str:
    """The one line that says the database is behind and which command to run."""
    return (
        f"the database is behind this version of the tool ({len(pending)} migration(s) "
        f"pending, up to {pending[-1]}): run `{UPGRADE_COMMAND}`"
    )


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """Hold an exclusive lock on a file beside the SQLite database (none for :memory:)."""
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    handle: IO[str]
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, holding the lock that lets one process migrate at a time."""
    with ExitStack() as stack:
        if engine.dialect.name == "sqlite":
            stack.enter_context(_file_lock(engine.url.database))
        connection = stack.enter_context(engine.connect())
        if engine.dialect.name == "sqlite":
            # SQLite ALTERs by copying a table and dropping the old one; with foreign keys on,
            # dropping a parent (lti_platform) would cascade-delete its children's rows. The
            # pragma is ignored inside a transaction, so it is set before this one begins.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends SQLAlchemy's autobegun (empty) transaction
            stack.callback(connection.exec_driver_sql, "PRAGMA foreign_keys=ON")
        stack.enter_context(connection.begin())
        if engine.dialect.name == "postgresql":
            # Released by the commit (or rollback) that ends the upgrade's transaction.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:k, hashtext(coalesce(current_schema(), '')))"),
                {"k": _PG_LOCK_CLASS},
            )
        yield connection


def _adopt_tables_made_before_migrations(connection: Connection) -> None:
    """Stamp a database that create_all made (all baseline tables, no history) at the baseline."""
    if current_revisions(connection):
        return
    present = BASELINE_TABLES & set(inspect(connection).get_table_names())
    if not present:
        return
    if present != BASELINE_TABLES:
        missing = ", ".join(sorted(BASELINE_TABLES - present))
        raise SchemaError(
            f"the database has some of the tool's tables but no migration history (missing: "
            f"{missing}): point LTI_PROCTOR_DATABASE_URL at an empty database or a complete one"
        )
    MigrationContext.configure(connection).stamp(script_directory(), BASELINE)


def upgrade_database(engine: Engine) -> list[str]:
    """Apply the pending revisions (safe to call from many processes at once); return them."""
    if not pending_revisions(engine):
        return []  # the usual start: one read, no lock
    with _migration_lock(engine) as connection:
        pending = _pending(connection)  # another process may have done it while we waited
        if pending:
            _adopt_tables_made_before_migrations(connection)
            command.upgrade(alembic_config(connection), "heads")
    return pending


def next_revision_id(message: str) -> str:
    """The id of the next revision: the next four-digit number and a slug of message."""
    numbers = [
        int(rev.revision[:4])
        for rev in script_directory().walk_revisions()
        if re.match(r"\d{4}_", rev.revision)
    ]
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_") or "revision"
    return f"{max(numbers, default=0) + 1:04d}_{slug}"[:_REVISION_ID_MAX].rstrip("_")


def create_revision(engine: Engine, message: str, *, autogenerate: bool) -> Path:
    """Write a new revision file after the head (autogenerate: diffed from the models)."""
    with engine.connect() as connection:
        written = command.revision(
            alembic_config(connection),
            message=message,
            autogenerate=autogenerate,
            rev_id=next_revision_id(message),
        )
    _script.cache_clear()
    if not isinstance(written, Script):
        raise SchemaError("alembic wrote no single revision")
    return Path(written.path)


def init_app(app: Flask) -> None:
    """On start: apply pending revisions (AUTO_MIGRATE) or refuse a database that is behind."""
    with app.app_context():
        engine = db.engine
        try:
            if app.config["AUTO_MIGRATE"]:
                upgrade_database(engine)
                return
            pending = pending_revisions(engine)
        except OperationalError as exc:
            engine.dispose()
            where = engine.url.render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise SchemaError(f"cannot reach the database {where}: {reason}") from exc
        if pending:
            engine.dispose()  # the app will never run: leave no connection behind
            raise SchemaError(behind_message(pending))
