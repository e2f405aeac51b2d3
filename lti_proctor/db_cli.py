"""The `lti-proctor db` commands: upgrade, current, revision. They run before (and without) the
full app, so they work on an empty database or one that is behind, where the app refuses to start.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic.util import CommandError
from sqlalchemy import Engine

from lti_proctor import config, schema
from lti_proctor.extensions import db


@contextmanager
def _engine() -> Iterator[Engine]:
    """The configured database's engine (settings as the app loads them), disposed afterwards."""
    try:
        app = config.new_app()
    except config.ConfigError as exc:
        raise click.ClickException(f"cannot start: {exc}") from exc
    schema.import_models()
    db.init_app(app)
    with app.app_context():
        try:
            yield db.engine
        finally:
            db.engine.dispose()


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@click.group("db")
def db_group() -> None:
    """Apply and inspect the schema's migrations (run `db upgrade` on every deploy)."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the code's revision (safe to run from several hosts at once)."""
    with _engine() as engine:
        try:
            applied = schema.upgrade_database(engine)
        except (schema.SchemaError, CommandError) as exc:
            raise click.ClickException(str(exc)) from exc
        where = _where(engine)
    head = ", ".join(schema.script_directory().get_heads())
    if applied:
        click.secho(f"Upgraded {where} to {head}: applied {', '.join(applied)}.", fg="green")
    else:
        click.secho(f"{where} is current ({head}); nothing to apply.", fg="green")


@db_group.command("current")
def db_current() -> None:
    """Show the database's revision and what is pending; exit 1 when it is behind."""
    with _engine() as engine:
        with engine.connect() as connection:
            current = schema.current_revisions(connection)
        pending = schema.pending_revisions(engine)
        where = _where(engine)
    click.echo(f"{where}: at {', '.join(current) or 'no revision (empty)'}")
    if pending:
        click.secho(
            f"Behind: {len(pending)} pending ({', '.join(pending)}); run "
            f"`{schema.UPGRADE_COMMAND}`.",
            fg="yellow",
        )
        raise SystemExit(1)
    click.secho("Current.", fg="green")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--autogenerate", is_flag=True, help="Diff the models against the database.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Write the next revision file into lti_proctor/migrations/versions/ (for developers)."""
    with _engine() as engine:
        try:
            path = schema.create_revision(engine, message, autogenerate=autogenerate)
        except CommandError as exc:
            raise click.ClickException(str(exc)) from exc
    click.secho(f"Wrote {path}; review it, then run `{schema.UPGRADE_COMMAND}`.", fg="green")
