"""Service access tokens: the client-credentials grant with a signed JWT assertion, cached in the
shared store so that all workers together ask a platform about once per token lifetime per scope
set. The token and the assertion never reach a log line, an error message or a URL.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

import lti_proctor.metrics as metrics
from lti_proctor.lti.service_http import (
    AgsRejectedError,
    AgsUnavailableError,
    json_object,
    raise_for_status,
    send,
)

log = logging.getLogger(__name__)

CT_FORM = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 60
DEFAULT_EXPIRES_IN_S = 3600.0  # what Moodle and Canvas issue; used when expires_in is missing
POLL_S = 0.05

# lti.keys.get_signing_key fits: returns (kid, private key) of the tool's current key.
SigningKeyProvider = Callable[[], tuple[str, RSAPrivateKey]]


class TokenStore(Protocol):
    """The part of the shared store (lti_proctor.store.SharedStore) that tokens use."""

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None."""

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds."""

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True when this call stored it."""

    def delete(self, key: str) -> None:
        """Remove key if present."""


@dataclass(frozen=True)
class PlatformCredentials:
    """How the tool authenticates to one platform's token endpoint; `id` keys the token cache."""

    id: str
    client_id: str
    token_url: str
    auth_audience: str | None = None

    @property
    def audience(self) -> str:
        """The aud of our client assertion: the platform's auth audience, else its token URL."""
        return self.auth_audience or self.token_url


def build_client_assertion(
    credentials: PlatformCredentials, *, kid: str, key: RSAPrivateKey, now: float | None = None
) -> str:
    """The RS256 JWT that authenticates the tool at the token endpoint (single use, 60 s)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": credentials.client_id,
        "sub": credentials.client_id,
        "aud": credentials.audience,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_S,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class TolerantStore:
    """A TokenStore whose failures only cost the cache: a store outage must not fail a grade.

    get() answers None, add() answers True (go ahead without a lock), set()/delete() do nothing;
    each failure is logged with its type only, never with the value.
    """

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    def get(self, key: str) -> str | None:
        """Return the live value of key, or None (also when the store fails)."""
        try:
            return self._store.get(key)
        except Exception as exc:
            _store_failed("get", exc)
            return None

    def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store value under key for ttl_s seconds, if the store works."""
        try:
            self._store.set(key, value, ttl_s)
        except Exception as exc:
            _store_failed("set", exc)

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        """Store value only if key has no live value; True also when the store fails."""
        try:
            return self._store.add(key, value, ttl_s)
        except Exception as exc:
            _store_failed("add", exc)
            return True

    def delete(self, key: str) -> None:
        """Remove key if present and the store works."""
        try:
            self._store.delete(key)
        except Exception as exc:
            _store_failed("delete", exc)


def _store_failed(operation: str, exc: Exception) -> None:
    log.warning(
        "Shared store %s failed (%s); going on without the cache", operation, type(exc).__name__
    )


def wait_while_locked(store: TokenStore, lock_key: str, *, wait_s: float) -> None:
    """Wait (bounded) until another worker releases lock_key."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and store.get(lock_key) is not None:
        time.sleep(POLL_S)


class ServiceTokens:
    """Access tokens for one platform and one scope set, shared by all workers via the store.

    A missing token is fetched by one worker under a short lock (store.add); the others wait
    briefly for it and reread the cache. Cached until shortly before expires_in.
    """

    def __init__(
        self,
        credentials: PlatformCredentials,
        scopes: Iterable[str],
        *,
        store: TokenStore,
        signer: SigningKeyProvider,
        session: requests.Session,
        timeout: float,
    ) -> None:
        self.credentials = credentials
        self.scope = " ".join(sorted(set(scopes)))
        store = store if isinstance(store, TolerantStore) else TolerantStore(store)
        self._store, self._signer, self._session, self._timeout = store, signer, session, timeout
        digest = hashlib.sha256(self.scope.encode()).hexdigest()[:16]
        self.cache_key = f"lti-service-token:{credentials.id}:{digest}"
        self._lock_key = self.cache_key + ":lock"

    def get(self) -> str:
        """Return a live access token, fetching one only when no worker has cached it."""
        token = self._store.get(self.cache_key)
        if token:
            return token
        locked = self._store.add(self._lock_key, "1", ttl_s=2 * self._timeout + 5)
        if not locked:
            wait_while_locked(self._store, self._lock_key, wait_s=self._timeout + 1)
        try:
            # Read again: another worker may have cached one since our first read.
            token = self._store.get(self.cache_key)
            if token:
                return token
            return self._fetch_and_cache()  # else we hold the lock, or its holder gave up
        finally:
            if locked:
                self._store.delete(self._lock_key)

    def send_authorized(
        self,
        send_one: Callable[[Mapping[str, str]], requests.Response],
        headers: Mapping[str, str],
        *,
        what: str,
    ) -> requests.Response:
        """Send with the cached token as Bearer; on 401 forget it and send once more, fresh."""
        token = self.get()
        resp = send_one({**headers, "Authorization": f"Bearer {token}"})
        if resp.status_code == 401:
            log.info("%s answered 401; retrying once with a fresh token", what)
            self.forget(token)
            resp = send_one({**headers, "Authorization": f"Bearer {self.get()}"})
        return resp

    def forget(self, token: str) -> None:
        """Drop token from the cache (the LMS refused it), unless another worker replaced it."""
        if self._store.get(self.cache_key) == token:
            self._store.delete(self.cache_key)

    def _fetch_and_cache(self) -> str:
        token, expires_in = self._request_token()
        ttl = expires_in - min(60.0, expires_in / 10)
        if ttl > 0:
            self._store.set(self.cache_key, token, ttl_s=ttl)
        log.info("Service token for platform %s (%s): %ss", self.credentials.id, self.scope, ttl)
        return token

    def _request_token(self) -> tuple[str, float]:
        kid, key = self._signer()
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": build_client_assertion(self.credentials, kid=kid, key=key),
            "scope": self.scope,
        }
        try:
            resp = send(
                self._session,
                "POST",
                self.credentials.token_url,
                headers={"Content-Type": CT_FORM, "Accept": "application/json"},
                data=urlencode(form),
                timeout=self._timeout,
            )
        except AgsUnavailableError:
            metrics.record_token_request(None)
            raise
        metrics.record_token_request(resp.status_code)
        raise_for_status(resp, what="access token")
        body = json_object(resp, what="access token")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AgsRejectedError("The token endpoint answered without an access_token.")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and expires_in > 0:
            return token, float(expires_in)
        return token, DEFAULT_EXPIRES_IN_S
