"""The shared key-value store: short-lived state every web worker must see (nonces, caches).

Redis when REDIS_URL is set, else a table in the tool's database. Never process memory. Store
writes commit on their own connection, independent of the request's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from flask import Flask, current_app
from sqlalchemy import DateTime, String, Text, create_engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.extensions import db


class StoreEntry(db.Model):  # type: ignore[name-defined,misc]
    """One key of the database-backed shared store."""

    __tablename__ = "store_entry"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class SharedStore(Protocol):
    """What callers may ask of the shared store; values are strings, every key expires."""

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds, replacing any value."""

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True when this call stored it."""

    def pop(self, key: str) -> str | None:
        """Remove key and return its live value; of two callers, only one gets it."""

    def pop_and_set(self, key: str, mark: str, value: str, ttl_s: float) -> str | None:
        """pop(key), and store value under mark for ttl_s seconds (one round trip on Redis)."""

    def delete(self, key: str) -> None:
        """Remove key if present."""


class RedisStore:
    """SharedStore on Redis, with short socket timeouts so a slow Redis never hangs a launch."""

    def __init__(self, url: str, prefix: str = "lti-proctor:") -> None:
        self._r = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    def ping(self) -> None:
        """Raise when Redis does not answer (a readiness check)."""
        self._r.ping()

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""
        value = self._r.get(self._k(key))
        return None if value is None else str(value)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds, replacing any value."""
        self._r.set(self._k(key), value, px=max(1, int(ttl_s * 1000)))

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True when this call stored it."""
        return bool(self._r.set(self._k(key), value, px=max(1, int(ttl_s * 1000)), nx=True))

    def pop(self, key: str) -> str | None:
        """Remove key and return its live value; of two callers, only one gets it."""
        value = self._r.getdel(self._k(key))
        return None if value is None else str(value)

    def pop_and_set(self, key: str, mark: str, value: str, ttl_s: float) -> str | None:
        """pop(key), and store value under mark for ttl_s seconds, in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.getdel(self._k(key))
        pipe.set(self._k(mark), value, px=max(1, int(ttl_s * 1000)))
        popped, _ = pipe.execute()
        return None if popped is None else str(popped)

    def delete(self, key: str) -> None:
        """Remove key if present."""
        self._r.delete(self._k(key))


class DatabaseStore:
    """SharedStore on the tool's database (the embedded default); expired rows are ignored."""

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self._engine = engine
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _expiry(self, ttl_s: float) -> datetime:
        return self._now() + timedelta(seconds=ttl_s)

    def _insert(self) -> Any:
        """INSERT with ON CONFLICT support on the store's dialect (PostgreSQL or SQLite)."""
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(StoreEntry)

    def dispose(self) -> None:
        """Close the store's own connection pool."""
        self._engine.dispose()

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(StoreEntry.value, StoreEntry.expires_at).where(
                    StoreEntry.key == self._k(key)
                )
            ).first()
        if row is None or _aware(row.expires_at) <= self._now():
            return None
        return str(row.value)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds, replacing any value (one atomic upsert)."""
        row = {"key": self._k(key), "value": value, "expires_at": self._expiry(ttl_s)}
        insert = self._insert().values(**row)
        upsert = insert.on_conflict_do_update(
            index_elements=[StoreEntry.key],
            set_={"value": insert.excluded.value, "expires_at": insert.excluded.expires_at},
        )
        with self._engine.begin() as conn:
            conn.execute(upsert)

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True when this call stored it."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(StoreEntry).where(
                    StoreEntry.key == self._k(key), StoreEntry.expires_at <= self._now()
                )
            )
        insert = self._insert().values(
            key=self._k(key), value=value, expires_at=self._expiry(ttl_s)
        )
        stmt = insert.on_conflict_do_nothing(index_elements=[StoreEntry.key]).returning(
            StoreEntry.key
        )
        with self._engine.begin() as conn:
            stored = conn.execute(stmt).first()
        return stored is not None

    def pop(self, key: str) -> str | None:
        """Remove key and return its live value; of two callers, only one gets it."""
        value = self.get(key)
        if value is None:
            return None
        with self._engine.begin() as conn:
            gone = conn.execute(delete(StoreEntry).where(StoreEntry.key == self._k(key)))
        return value if gone.rowcount == 1 else None

    def pop_and_set(self, key: str, mark: str, value: str, ttl_s: float) -> str | None:
        """pop(key), and store value under mark for ttl_s seconds."""
        popped = self.pop(key)
        self.set(mark, value, ttl_s)
        return popped

    def delete(self, key: str) -> None:
        """Remove key if present."""
        with self._engine.begin() as conn:
            conn.execute(delete(StoreEntry).where(StoreEntry.key == self._k(key)))

    def purge_expired(self) -> int:
        """Delete expired rows; returns how many went."""
        with self._engine.begin() as conn:
            res = conn.execute(delete(StoreEntry).where(StoreEntry.expires_at <= self._now()))
        return int(res.rowcount or 0)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def init_app(app: Flask) -> None:
    """Build the app's shared store once; workers reach it through get_store()."""
    url = app.config.get("REDIS_URL")
    prefix = str(app.config.get("STORE_PREFIX", "lti-proctor:"))
    store: SharedStore
    if url:
        store = RedisStore(str(url), prefix=prefix)
    else:
        # Its own pool: a request holding its session's connection must never wait for a
        # second connection from the same pool to read a nonce (that deadlocks under load).
        store = DatabaseStore(_store_engine(app), prefix="")
    app.extensions["lti_proctor_store"] = store


def _store_engine(app: Flask) -> Engine:
    uri = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if uri.get_backend_name() == "sqlite" and uri.database in (None, "", ":memory:"):
        with app.app_context():  # an in-memory database exists only behind the app's engine
            return db.engine
    return create_engine(uri, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_store() -> SharedStore:
    """Return the shared store of the current app."""
    store: SharedStore = current_app.extensions["lti_proctor_store"]
    return store
