"""Platform key sets: fetching an LMS's JWKS, caching it in the shared store, finding a kid's key.

The key set document lives in the shared store (every web worker sees one fetch), stamped with
when it was fetched. A kid missing from the cached set is looked up in a set fetched after the
token arrived: this launch fetches it, or waits for the one another launch is fetching. Refetches
of one URL are at least a short cooldown apart across all workers, so a flood of tokens with
invented kids costs the LMS one fetch per cooldown and can never use up the refetch a genuine
token signed with a newly rotated key needs. Parsed public keys are memoised in process by
(URL, kid, key material): a cache of pure values, not shared state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from lti_proctor.lti.errors import LaunchError, LaunchReason

log = logging.getLogger(__name__)

REFETCH_COOLDOWN_S = 2.0  # the shortest gap between two refetches of one key set
FETCH_WAIT_POLL_S = 0.05  # how often a launch waiting for another's key-set fetch looks again
_MAX_KEYSET_BYTES = 512 * 1024


class KeyValueStore(Protocol):
    """The part of the shared store (lti_proctor.store.SharedStore) the LTI code uses."""

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


@dataclass(frozen=True)
class KeySetCache:
    """Finds a platform's signing keys by kid, through the shared store's copy of its JWKS."""

    store: KeyValueStore
    timeout_s: float
    cache_s: float
    refetch_cooldown_s: float = REFETCH_COOLDOWN_S

    def signing_key(self, jwks_url: str, kid: str) -> RSAPublicKey:
        """Return the RSA public key for kid, from a key set fetched after the token arrived
        when the cached one lacks it."""
        arrived = time.time()
        keyset, fresh = self._cached_or_fetched(jwks_url)
        key = _find_key(jwks_url, keyset, kid)
        if key is None and not fresh:
            key = _find_key(jwks_url, self._keyset_fetched_after(jwks_url, arrived), kid)
        if key is None:
            raise LaunchError(LaunchReason.KID_UNKNOWN, f"no RS256 key with kid {kid!r}")
        return key

    def _keyset_fetched_after(self, jwks_url: str, moment: float) -> dict[str, Any]:
        """A key set fetched after moment: by this launch when the cooldown allows, else the
        one the launch holding the cooldown fetched (waiting for the cooldown to end if need be).
        """
        deadline = time.monotonic() + self.refetch_cooldown_s + self.timeout_s + 1
        while True:
            if self.store.add(_refetch_key(jwks_url), "1", self.refetch_cooldown_s):
                return self._fetch_and_cache(jwks_url)
            cached = self.store.get(_cache_key(jwks_url))
            if cached is not None:
                keyset = json.loads(cached)
                if float(keyset.get("fetched_at", 0)) >= moment:
                    return dict(keyset)
            if time.monotonic() >= deadline:
                log.info("jwks refetch skipped (cooldown) host=%s", _host(jwks_url))
                return {"keys": []}
            time.sleep(FETCH_WAIT_POLL_S)

    def _cached_or_fetched(self, jwks_url: str) -> tuple[dict[str, Any], bool]:
        """The cached key set, or a fresh one; True when it was fetched just now.

        At an exam start many first launches miss the cache at once: one of them (across all
        workers) takes a short lock in the store and fetches, the others wait for its copy.
        """
        cached = self.store.get(_cache_key(jwks_url))
        if cached is not None:
            return json.loads(cached), False
        lock = _fetch_lock_key(jwks_url)
        if self.store.add(lock, "1", self.timeout_s + 1):
            try:
                return self._fetch_and_cache(jwks_url), True
            finally:
                self.store.pop(lock)
        deadline = time.monotonic() + self.timeout_s + 1
        while time.monotonic() < deadline:
            time.sleep(FETCH_WAIT_POLL_S)
            cached = self.store.get(_cache_key(jwks_url))
            if cached is not None:
                return json.loads(cached), True  # as fresh as a fetch of our own
        return self._fetch_and_cache(jwks_url), True  # the fetching worker gave up or died

    def _fetch_and_cache(self, jwks_url: str) -> dict[str, Any]:
        fetched_at = time.time()  # before the request: a key published meanwhile is not missed
        keyset: dict[str, Any] = {
            **fetch_keyset(jwks_url, timeout_s=self.timeout_s),
            "fetched_at": fetched_at,
        }
        self.store.set(_cache_key(jwks_url), json.dumps(keyset), self.cache_s)
        return keyset


def fetch_keyset(jwks_url: str, *, timeout_s: float) -> dict[str, Any]:
    """GET a JWKS document; LaunchError(launch.jwks_unavailable) when it cannot be had."""
    try:
        resp = requests.get(jwks_url, timeout=timeout_s, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise _unavailable(jwks_url, type(exc).__name__) from exc
    if resp.status_code != 200:
        raise _unavailable(jwks_url, f"HTTP {resp.status_code}")
    if len(resp.content) > _MAX_KEYSET_BYTES:
        raise _unavailable(jwks_url, "key set too large")
    try:
        keyset = resp.json()
    except ValueError as exc:
        raise _unavailable(jwks_url, "not JSON") from exc
    if not isinstance(keyset, dict) or not isinstance(keyset.get("keys"), list):
        raise _unavailable(jwks_url, "no 'keys' list")
    log.info("jwks fetched host=%s keys=%d", _host(jwks_url), len(keyset["keys"]))
    return {"keys": [k for k in keyset["keys"] if isinstance(k, dict)]}


def _find_key(jwks_url: str, keyset: dict[str, Any], kid: str) -> RSAPublicKey | None:
    """The RS256 signing key named kid, or None; keys for other uses or types never match."""
    for jwk in keyset.get("keys", []):
        if jwk.get("kid") != kid or jwk.get("kty") != "RSA":
            continue
        if jwk.get("alg", "RS256") != "RS256" or jwk.get("use", "sig") != "sig":
            continue
        if not isinstance(jwk.get("n"), str) or not isinstance(jwk.get("e"), str):
            continue
        return _parse_rsa_key(jwks_url, kid, jwk["n"], jwk["e"])
    return None


@lru_cache(maxsize=256)
def _parse_rsa_key(jwks_url: str, kid: str, n: str, e: str) -> RSAPublicKey | None:
    """Parse a public key once per (URL, kid, material); only public members are used."""
    try:
        key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": e})
    except (ValueError, TypeError) as exc:
        log.warning("jwks key unusable host=%s kid=%r: %s", _host(jwks_url), kid, exc)
        return None
    return key if isinstance(key, RSAPublicKey) else None


def parsed_key_cache_info() -> Any:
    """Hit/miss counters of the in-process parsed-key cache (for tests and diagnostics)."""
    return _parse_rsa_key.cache_info()


def _unavailable(jwks_url: str, why: str) -> LaunchError:
    log.warning("jwks fetch failed host=%s: %s", _host(jwks_url), why)
    return LaunchError(LaunchReason.JWKS_UNAVAILABLE, f"{_host(jwks_url)}: {why}")


def _digest(jwks_url: str) -> str:
    return hashlib.sha256(jwks_url.encode()).hexdigest()[:32]


def _cache_key(jwks_url: str) -> str:
    return f"lti:jwks:{_digest(jwks_url)}"


def _fetch_lock_key(jwks_url: str) -> str:
    return f"lti:jwks-fetching:{_digest(jwks_url)}"


def _refetch_key(jwks_url: str) -> str:
    return f"lti:jwks-refetch:{_digest(jwks_url)}"


def _host(url: str) -> str:
    return urlsplit(url).netloc or "?"
