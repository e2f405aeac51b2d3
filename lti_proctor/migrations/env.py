"""Alembic's environment: the models' metadata, compared and migrated on the connection that
lti_proctor.schema hands over (it holds the migration lock), never on a connection of its own."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeDecorator

from lti_proctor.extensions import db
from lti_proctor.schema import import_models

import_models()


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types (UtcDateTime, ...) as the plain SQLAlchemy type they store as, so a
    revision never imports model code and stays valid when the models move or change."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with `lti-proctor db ...`, which passes the connection")

context.configure(
    connection=connection,
    target_metadata=db.metadata,
    # Batch operations on every engine: SQLite can only ALTER by copying the table, and a
    # revision written against PostgreSQL must run on the embedded SQLite default too.
    render_as_batch=True,
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
