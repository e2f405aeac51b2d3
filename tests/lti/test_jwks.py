"""The platform key-set cache: fetched with a timeout, kept in the shared store, refetched once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from flask import Flask

from lti_proctor.lti.errors import LaunchError, LaunchReason
from lti_proctor.lti.jwks import KeySetCache
from lti_proctor.store import get_store
from tests.launches import platform_key

JWKS_URL = "https://moodle.example.edu/mod/lti/certs.php"


@pytest.fixture
def cache(app: Flask) -> Iterator[KeySetCache]:
    with app.app_context():
        yield KeySetCache(get_store(), timeout_s=3.5, cache_s=600)


def _calls(http: responses.RequestsMock) -> int:
    return sum(1 for call in http.calls if call.request.url == JWKS_URL)


def test_key_is_fetched_with_the_timeout_and_then_served_from_the_store(
    app: Flask, cache: KeySetCache, http: responses.RequestsMock
) -> None:
    key = platform_key()
    http.get(JWKS_URL, json={"keys": [key.public_jwk]})

    first = cache.signing_key(JWKS_URL, key.kid)
    with app.app_context():  # another worker: a new cache object on the same store
        second = KeySetCache(get_store(), timeout_s=3.5, cache_s=600).signing_key(JWKS_URL, key.kid)

    assert first.public_numbers() == key.private_key.public_key().public_numbers()
    assert second.public_numbers() == first.public_numbers()
    assert _calls(http) == 1
    assert http.calls[0].request.req_kwargs["timeout"] == 3.5


def test_unknown_kid_refetch_cooldown_is_shared_across_workers(
    app: Flask, http: responses.RequestsMock
) -> None:
    import time

    key = platform_key()
    http.get(JWKS_URL, json={"keys": [key.public_jwk]})
    with app.app_context():
        first_worker = KeySetCache(get_store(), timeout_s=1, cache_s=600, refetch_cooldown_s=0.3)
        first_worker.signing_key(JWKS_URL, key.kid)
        with pytest.raises(LaunchError) as first:
            first_worker.signing_key(JWKS_URL, "unknown")
    started = time.monotonic()
    with app.app_context(), pytest.raises(LaunchError) as other_worker:
        KeySetCache(get_store(), timeout_s=1, cache_s=600, refetch_cooldown_s=0.3).signing_key(
            JWKS_URL, "unknown-2"
        )

    assert first.value.reason is other_worker.value.reason is LaunchReason.KID_UNKNOWN
    assert _calls(http) == 3  # one refetch each, the second only once the cooldown was over
    assert time.monotonic() - started >= 0.2


def test_forged_kid_flood_from_many_workers_never_hides_a_rotated_key(
    app: Flask, http: responses.RequestsMock
) -> None:
    import threading
    import time

    key, rotated = platform_key(), platform_key("rotated")
    http.get(JWKS_URL, json={"keys": [key.public_jwk]})
    with app.app_context():
        KeySetCache(get_store(), timeout_s=1, cache_s=600).signing_key(JWKS_URL, key.kid)
    stop = threading.Event()
    refused: list[LaunchReason] = []

    def flood(n: int) -> None:
        with app.app_context():
            cache = KeySetCache(get_store(), timeout_s=1, cache_s=600, refetch_cooldown_s=0.3)
            while not stop.is_set():
                try:
                    cache.signing_key(JWKS_URL, f"forged-{n}-{time.monotonic()}")
                except LaunchError as exc:
                    refused.append(exc.reason)

    workers = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    started = time.monotonic()
    for t in workers:
        t.start()
    try:
        time.sleep(0.5)  # the flood holds the cooldown; now the LMS rotates its key
        http.replace(responses.GET, JWKS_URL, json={"keys": [key.public_jwk, rotated.public_jwk]})
        with app.app_context():
            genuine = KeySetCache(
                get_store(), timeout_s=1, cache_s=600, refetch_cooldown_s=0.3
            ).signing_key(JWKS_URL, rotated.kid)
    finally:
        stop.set()
        for t in workers:
            t.join(10)
    elapsed = time.monotonic() - started

    assert genuine.public_numbers() == rotated.private_key.public_key().public_numbers()
    assert refused and set(refused) == {LaunchReason.KID_UNKNOWN}
    assert _calls(http) - 1 <= elapsed / 0.3 + 1  # one refetch per cooldown, however many kids


@pytest.mark.parametrize(
    "jwk_change",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"alg": "RS512"},
        {"use": "enc"},
        {"n": 12345},
    ],
    ids=["symmetric-key", "other-alg", "encryption-key", "malformed"],
)
def test_keys_unfit_for_rs256_signatures_never_match(
    cache: KeySetCache, http: responses.RequestsMock, jwk_change: dict[str, Any]
) -> None:
    key = platform_key()
    http.get(JWKS_URL, json={"keys": [{**key.public_jwk, **jwk_change}]})

    with pytest.raises(LaunchError) as refused:
        cache.signing_key(JWKS_URL, key.kid)

    assert refused.value.reason is LaunchReason.KID_UNKNOWN


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": "oops"},
        {"status": 200, "body": "<html>login</html>"},
        {"status": 200, "json": {"keys": "none"}},
        {"status": 200, "json": ["not", "a", "key set"]},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.Timeout("slow")},
    ],
    ids=["5xx", "not-json", "keys-not-a-list", "not-an-object", "connection-error", "timeout"],
)
def test_unusable_key_set_is_jwks_unavailable_and_not_cached(
    cache: KeySetCache, http: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    http.get(JWKS_URL, **answer)

    for _ in range(2):
        with pytest.raises(LaunchError) as refused:
            cache.signing_key(JWKS_URL, "any")
        assert refused.value.reason is LaunchReason.JWKS_UNAVAILABLE

    assert _calls(http) == 2  # nothing bad was cached


def test_concurrent_first_launches_fetch_the_key_set_once(
    app: Flask, cache: KeySetCache, http: responses.RequestsMock
) -> None:
    import threading
    import time

    key = platform_key()

    def slow_jwks(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.3)  # a slow LMS: the other launches arrive while this fetch runs
        return 200, {"Content-Type": "application/json"}, json.dumps({"keys": [key.public_jwk]})

    http.add_callback(responses.GET, JWKS_URL, callback=slow_jwks)
    found: list[Any] = []
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            with app.app_context():  # each launch its own worker thread, one shared store
                worker_cache = KeySetCache(get_store(), timeout_s=3, cache_s=600)
                found.append(worker_cache.signing_key(JWKS_URL, key.kid))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=launch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert not errors
    assert len(found) == 8
    assert _calls(http) == 1
