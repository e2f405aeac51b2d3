"""Unbound Flask extension objects (bound to an app only inside create_app()) and the hooks
every database connection gets: SQLite's pragmas, and a pooled PostgreSQL connection checked
for life without a round trip.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

# Every constraint gets a name, so a migration can drop or alter it by name on both engines
# (SQLite's batch mode needs the name). The names are PostgreSQL's own defaults, so a
# PostgreSQL database made by create_all before migrations existed already matches them.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "ix": "ix_%(column_0_label)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every model of the tool."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite: enforce foreign keys (cascades) and wait for the writer instead of failing."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


@event.listens_for(Pool, "checkout")
def _refuse_closed_connection(
    dbapi_connection: Any, connection_record: Any, connection_proxy: Any
) -> None:
    """PostgreSQL: replace a pooled connection the server has closed (a restart), with no query.

    SQLAlchemy's pre-ping costs every request a round trip (~1 ms of CPU and ~3 ms of waiting,
    more than the rest of a webhook's SQL). Instead libpq reads what is waiting on the idle
    socket without blocking: nothing for a live connection; the server's goodbye and the end of
    the stream for a closed one, which the pool then drops with every connection older than it
    and replaces (a connection that never answers, the network gone, still fails as 503). It
    reads twice: a read that got the goodbye stops there, the next one finds the end.
    """
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:  # SQLite
        return
    try:
        pgconn.consume_input()
        pgconn.consume_input()
    except Exception as exc:  # psycopg.OperationalError: the server closed the connection
        raise InvalidatePoolError("the database closed this pooled connection") from exc
    if pgconn.status != 0:  # CONNECTION_OK
        raise InvalidatePoolError("the database closed this pooled connection")
