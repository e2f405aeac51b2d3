"""The machine's test PostgreSQL and Redis: whether they answer, private schemas, migrating a URL.

Plain helpers (no fixtures) that tests/conftest.py and the schema and store tests share.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
import sqlalchemy as sa
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.schema import upgrade_database
from tests.constants import PG_URL, REDIS_URL


@cache
def pg_available() -> bool:
    """True when the test PostgreSQL answers within two seconds."""
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception:
        return False
    return True


@cache
def redis_available() -> bool:
    """True when the test Redis answers within two seconds."""
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


PG_SKIP_REASON = f"PostgreSQL not reachable at {PG_URL}: PostgreSQL run skipped"


def migrate(url: str) -> None:
    """Bring the database at url to the code's revision, as `lti-proctor db upgrade` does."""
    engine = sa.create_engine(url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


@contextmanager
def private_pg_schema(prefix: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty PostgreSQL schema, dropped afterwards."""
    if not pg_available():
        pytest.skip(PG_SKIP_REASON)
    schema = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def close_app_database(app: Flask) -> None:
    """End a test app's database use: on the shared PostgreSQL schema, empty every table (the
    next test starts clean: no tool key sealed with this app's secret), then drop connections."""
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.engine.dispose()
