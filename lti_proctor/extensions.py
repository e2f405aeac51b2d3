"""Unbound Flask extension objects (bound to an app only inside create_app()) and the hooks
every database connection gets: SQLite's pragmas, and a pooled PostgreSQL connection checked
for life without a round trip.
"""

from __future__ import annotations

import select
import sqlite3
import sys
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
    more than the rest of a webhook's SQL). Instead: an idle connection has nothing to say, so
    one whose socket has something to read (the server's goodbye, the end of the stream) is
    being closed; the pool drops it, with every connection older than it, and connects anew.
    A false alarm costs a reconnect; a connection that never answers (the network gone) still
    fails as a 503, as it did with the ping.
    """
    if getattr(dbapi_connection, "pgconn", None) is None:  # SQLite
        return
    if dbapi_connection.closed or _readable_now(dbapi_connection.fileno()):
        raise InvalidatePoolError("the database closed this pooled connection")


def _readable_now(fd: int) -> bool:
    """Whether fd has data or an end of stream to read, asked without waiting (poll, timeout 0).

    Under gevent the patched poll() would yield to its hub even for timeout 0: use the original.
    """
    monkey = sys.modules.get("gevent.monkey")
    make = monkey.get_original("select", "poll") if monkey is not None else select.poll
    poller = make()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
