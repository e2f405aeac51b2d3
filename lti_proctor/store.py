"""The shared key-value store: short-lived state every web worker must see (nonces, caches).

Redis when REDIS_URL is set, else a table in the tool's database. Never process memory. Store
writes commit on their own connection, independent of the request's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from flask import Flask, current_app
from sqlalchemy import DateTime, String, Text, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
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
        """Store value under key for ttl_s seconds, replacing any value."""
        expires = self._now() + timedelta(seconds=ttl_s)
        with self._engine.begin() as conn:
            conn.execute(delete(StoreEntry).where(StoreEntry.key == self._k(key)))
            conn.execute(
                StoreEntry.__table__.insert().values(
                    key=self._k(key), value=value, expires_at=expires
                )
            )

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True when this call stored it."""
        now = self._now()
        with self._engine.begin() as conn:
            conn.execute(
                delete(StoreEntry).where(
                    StoreEntry.key == self._k(key), StoreEntry.expires_at <= now
                )
            )
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    StoreEntry.__table__.insert().values(
                        key=self._k(key), value=value, expires_at=now + timedelta(seconds=ttl_s)
                    )
                )
        except IntegrityError:
            return False
        return True

    def pop(self, key: str) -> str | None:
        """Remove key and return its live value; of two callers, only one gets it."""
        value = self.get(key)
        if value is None:
            return None
        with self._engine.begin() as conn:
            gone = conn.execute(delete(StoreEntry).where(StoreEntry.key == self._k(key)))
        return value if gone.rowcount == 1 else None

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
        with app.app_context():
            store = DatabaseStore(db.engine, prefix="")
    app.extensions["lti_proctor_store"] = store


def get_store() -> SharedStore:
    """Return the shared store of the current app."""
    store: SharedStore = current_app.extensions["lti_proctor_store"]
    return store
