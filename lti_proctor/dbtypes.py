"""Column types and insert helpers every model may use; the bottom floor, below the domain.

Imports nothing of ours but the extensions, so the outbox, the domain and the protocol code can
all build on it without importing each other.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Insert, Table, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from lti_proctor.extensions import db


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store every timestamp in UTC; a naive one is taken to be UTC already."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Give back an aware UTC datetime on every database."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_if_absent(model: Any, values: Mapping[str, Any], *, unique_on: list[str]) -> bool:
    """Insert one row unless a row with the same unique key exists; True when this call added it.

    Safe when two transactions race: `INSERT ... ON CONFLICT DO NOTHING` waits for the other
    transaction (PostgreSQL: on its uncommitted key; SQLite: on the write lock) and then does
    nothing, so neither side sees an IntegrityError that would spoil its transaction.
    """
    dialect = db.session.get_bind().dialect.name
    table = model.__table__
    if dialect in ("postgresql", "sqlite"):
        # RETURNING the key: rowcount is unreliable here on psycopg
        stmt = _insert_ignoring(table, tuple(unique_on), dialect, whole_row=False)
        return db.session.execute(stmt, dict(values)).first() is not None
    try:  # other databases: a savepoint keeps the outer transaction usable
        with db.session.begin_nested():
            db.session.execute(table.insert().values(**values))
    except IntegrityError:
        return False
    return True


@functools.cache
def _insert_ignoring(
    table: Table, unique_on: tuple[str, ...], dialect: str, *, whole_row: bool
) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the key (or the whole row), built once per
    table: the VALUES come from the parameters (launches and webhooks run these)."""
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    returned = table.columns if whole_row else table.primary_key.columns
    stmt: Insert = (
        make(table).on_conflict_do_nothing(index_elements=list(unique_on)).returning(*returned)
    )
    return stmt


def insert_returning(model: Any, values: Mapping[str, Any], *, unique_on: list[str]) -> Any:
    """Insert one row unless its unique key exists: the new row, persistent in the session, or None.

    Like insert_if_absent, safe when transactions race; the row comes back from RETURNING, so
    the caller holds it without reading it again.
    """
    dialect = db.session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return (
            db.session.get(model, _pk(model, values))
            if insert_if_absent(model, values, unique_on=unique_on)
            else None
        )
    table = model.__table__
    row = db.session.execute(
        _insert_ignoring(table, tuple(unique_on), dialect, whole_row=True), dict(values)
    ).first()
    if row is None:
        return None
    obj = model(**{col.key: row._mapping[col] for col in table.columns})
    make_transient_to_detached(obj)  # every column is loaded: nothing is read back later
    db.session.add(obj)
    return obj


def _pk(model: Any, values: Mapping[str, Any]) -> Any:
    keys = [col.key for col in model.__table__.primary_key.columns]
    return values[keys[0]] if len(keys) == 1 else tuple(values[k] for k in keys)
