"""A per-process cache of what the login and the launch read on every request (registrations).

Values live in this process for a short TTL. A commit that changed a watched table (the CLI,
Dynamic Registration, a deployment learned at a launch) clears this process's copy at once and
writes a new version into the shared store; every other process reads that version at most once
per check interval and drops its copy when it changed. So the cache holds nothing another worker
needs, and a change reaches every worker within the check interval (the TTL bounds the rest, e.g.
a row edited by hand in SQL). Knows no model: registrations.py says what is cached and how it loads.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

log = logging.getLogger(__name__)

V = TypeVar("V")
_CHANGED = "lti_proctor.changed_cached_tables"
VERSION_TTL_S = 7 * 24 * 3600  # far longer than any TTL: a vanished version is a change too


class VersionStore(Protocol):
    """The part of the shared store the cache uses."""

    def get(self, key: str) -> str | None:
        """The live value of key, or None."""

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds."""


@dataclass
class _Entry(Generic[V]):
    value: V
    loaded_at: float


class SharedVersionedCache(Generic[V]):
    """key -> value, kept ttl_s seconds, dropped when the shared version key changes."""

    def __init__(
        self,
        *,
        version_key: str,
        store: Callable[[], VersionStore],
        ttl_s: float,
        check_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version_key, self._store, self._clock = version_key, store, clock
        self._ttl_s, self._check_s = ttl_s, check_s
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._lock = threading.Lock()
        self._version: str | None = None
        self._checked_at: float | None = None

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value of key, or load() cached now (a TTL of 0 turns caching off)."""
        if self._ttl_s <= 0:
            return load()
        self._follow_shared_version()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry.loaded_at < self._ttl_s:
            return entry.value
        value = load()  # outside the lock: two threads may both load, both get the same rows
        with self._lock:
            self._entries[key] = _Entry(value, now)
        return value

    def clear_local(self) -> None:
        """Forget every value of this process."""
        with self._lock:
            self._entries.clear()

    def invalidate(self) -> None:
        """Forget every value here, and tell the other processes to forget theirs."""
        self.clear_local()
        version = uuid.uuid4().hex
        self._store().set(self._version_key, version, VERSION_TTL_S)
        with self._lock:
            self._version = version

    def _follow_shared_version(self) -> None:
        now = self._clock()
        with self._lock:
            if self._checked_at is not None and now - self._checked_at < self._check_s:
                return
            self._checked_at = now
        version = self._store().get(self._version_key)
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version


def watch_tables(tables: Iterable[str], on_commit: Callable[[], None]) -> None:
    """Call on_commit after each commit of a session that wrote to one of tables.

    Sees ORM changes (new, changed and deleted rows) and ORM-executed INSERT/UPDATE/DELETE
    statements. A failing on_commit is logged, never raised: the commit itself has happened and
    the TTL bounds how long other processes keep the old rows.
    """
    names = frozenset(tables)

    def note_flush(session: Session, flush_context: Any) -> None:
        for obj in (*session.new, *session.dirty, *session.deleted):
            if getattr(obj, "__tablename__", None) in names:
                session.info[_CHANGED] = True
                return

    def note_statement(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in names:
                state.session.info[_CHANGED] = True

    def after_commit(session: Session) -> None:
        if not session.info.pop(_CHANGED, False):
            return
        try:
            on_commit()
        except Exception:
            log.warning(
                "could not announce a registration change to other processes", exc_info=True
            )

    event.listen(Session, "after_flush", note_flush)
    event.listen(Session, "do_orm_execute", note_statement)
    event.listen(Session, "after_commit", after_commit)


def has_uncommitted_changes(session: Session) -> bool:
    """True when the session wrote to a watched table and has not committed yet."""
    return bool(session.info.get(_CHANGED))
