from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.store import DatabaseStore, RedisStore, SharedStore
from tests.constants import REDIS_URL
from tests.services import redis_available


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, app: Flask) -> SharedStore:
    if request.param == "redis":
        if not redis_available():
            pytest.skip(f"Redis not reachable at {REDIS_URL}: Redis store run skipped")
        return RedisStore(REDIS_URL, prefix=f"lp-test:{uuid.uuid4().hex}:")
    with app.app_context():
        return DatabaseStore(db.engine)


def test_add_stores_only_once(store: SharedStore) -> None:
    assert store.add("nonce:abc", "1", 60) is True
    assert store.add("nonce:abc", "2", 60) is False
    assert store.get("nonce:abc") == "1"


def test_pop_hands_the_value_to_one_caller_only(store: SharedStore) -> None:
    store.set("k", "v", 60)
    assert store.pop("k") == "v"
    assert store.pop("k") is None
    assert store.get("k") is None


def test_pop_and_set_consumes_once_and_leaves_the_mark(store: SharedStore) -> None:
    store.set("nonce:n1", "issued", 60)
    assert store.pop_and_set("nonce:n1", "used:n1", "1", 60) == "issued"
    assert store.get("nonce:n1") is None
    assert store.get("used:n1") == "1"
    assert store.pop_and_set("nonce:n1", "used:n1", "1", 60) is None  # a replay gets nothing


def test_expired_value_is_gone_and_key_reusable(store: SharedStore) -> None:
    store.set("short", "x", 0.05)
    import time

    time.sleep(0.2)
    assert store.get("short") is None
    assert store.pop("short") is None
    assert store.add("short", "y", 60) is True


def test_set_replaces_and_delete_removes(store: SharedStore) -> None:
    store.set("k", "a", 60)
    store.set("k", "b", 60)
    assert store.get("k") == "b"
    store.delete("k")
    assert store.get("k") is None


def test_app_uses_redis_store_when_configured(app: Flask) -> None:
    from lti_proctor.store import get_store

    with app.app_context():
        expected: Callable[..., object] = (
            RedisStore if app.config.get("REDIS_URL") else DatabaseStore
        )
        assert isinstance(get_store(), expected)


def test_concurrent_writers_of_one_key_never_fail(store: SharedStore) -> None:
    # At an exam start many workers cache the same key set at once.
    import threading

    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for _ in range(10):
                store.set("lti:jwks:same", f"value-{n}", 60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert (store.get("lti:jwks:same") or "").startswith("value-")
