"""Readiness of this process's dependencies (database, Redis, schema) for /readyz and operators.

Each check answers "ok" or a short failure naming the exception type only: connection errors
can carry URLs, and a readiness answer is public, so no message text ever leaves this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy import text

from lti_proctor.extensions import db
from lti_proctor.schema import pending_revisions
from lti_proctor.store import RedisStore

log = logging.getLogger(__name__)
OK = "ok"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Readiness:
    """The outcome of every check, by name; ready when none failed."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """True when every check passed or did not apply."""
        return all(outcome in (OK, SKIPPED) for outcome in self.checks.values())


def _failed(name: str, exc: Exception) -> str:
    log.warning("readiness check %s failed: %s", name, type(exc).__name__)
    return f"failed: {type(exc).__name__}"


def check_database() -> str:
    """Run SELECT 1 on a connection from the app's pool."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _failed("database", exc)
    return OK


def check_redis(app: Flask) -> str:
    """PING the Redis shared store; skipped when the database holds the store."""
    store = app.extensions.get("lti_proctor_store")
    if not isinstance(store, RedisStore):
        return SKIPPED
    try:
        store.ping()
    except Exception as exc:
        return _failed("redis", exc)
    return OK


def check_migrations(app: Flask) -> str:
    """OK when the database holds every Alembic revision of this release; else how many lack."""
    try:
        pending = pending_revisions(db.engine)
    except Exception as exc:
        return _failed("migrations", exc)
    return OK if not pending else f"failed: {len(pending)} pending (run lti-proctor db upgrade)"


READINESS_CHECKS: dict[str, Callable[[Flask], str]] = {
    "database": lambda app: check_database(),
    "redis": check_redis,
    "migrations": check_migrations,
}


def check_readiness(app: Flask) -> Readiness:
    """Run every readiness check (inside an app context) and collect their outcomes."""
    return Readiness({name: check(app) for name, check in READINESS_CHECKS.items()})
