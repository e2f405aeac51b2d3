"""HTTP client for the proctoring service: session upsert and AI report, timeouts and retries.

Only this module knows the service's URLs and auth header; the body and answer shapes are in
messages.py. The API key travels in the X-Authorization header, never in a URL or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests
from flask import Flask
from requests.adapters import HTTPAdapter

import lti_proctor.metrics as metrics
from lti_proctor.proctoring.errors import (
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
)
from lti_proctor.proctoring.messages import build_session_body, parse_report, parse_session_result
from lti_proctor.proctoring.types import AttemptReport, SessionRequest, SessionResult

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.trustexam.ai/api"
DEFAULT_REPORT_BASE = "https://trust-rating.trustexam.ai/api/v1"
SESSION_PATH = "/external-session/assignment.json"
REPORT_PATH = "/actions/reports/ai/{attempt_id}"
AUTH_HEADER = "X-Authorization"
USER_AGENT = "lti-proctor/0.1"
NOT_READY = frozenset({202, 204, 404})  # the report is not ready yet (§4.6)
EXCERPT_CHARS = 200
AuthMode = Literal["header", "query"]
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
EXTENSION_KEY = "lti_proctor_client"
POOL_MAXSIZE = 32  # kept-alive connections per host: a launch burst runs many requests at once
_build_lock = threading.Lock()


class ProctoringClient:
    """Talks to the proctoring service (or the sandbox, which speaks the same contract)."""

    def __init__(
        self,
        api_base: str,
        api_key: str,
        *,
        report_base: str = DEFAULT_REPORT_BASE,
        report_api_key: str | None = None,
        auth_mode: AuthMode = "header",
        timeout: tuple[float, float] = (5.0, 10.0),
        max_retries: int = 2,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        retry_after_max_s: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if auth_mode not in ("header", "query"):
            raise ValueError("auth_mode must be 'header' or 'query'")
        self.api_base = api_base.rstrip("/")
        self.report_base = report_base.rstrip("/")
        self.auth_mode = auth_mode
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self._api_key = api_key
        self._report_key = report_api_key or api_key
        self._http = session or _pooled_session(self.api_base)
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"ProctoringClient(api_base={self.api_base!r}, report_base={self.report_base!r})"

    def close(self) -> None:
        """Close the kept-alive connections (the app's client lives as long as the app)."""
        self._http.close()

    def upsert_session(self, req: SessionRequest) -> SessionResult:
        """Create or refresh the service session for one attempt (the call is idempotent)."""
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            AUTH_HEADER: self._api_key,
        }
        # Retrying the POST is safe: the service upserts by the external ids (§2.4).
        resp = self._send(
            "POST",
            self.api_base + SESSION_PATH,
            operation="session_upsert",
            headers=headers,
            data=json.dumps(build_session_body(req)),
        )
        self._reject_unless_ok(resp)
        return parse_session_result(self._json(resp))

    def fetch_report(self, service_attempt_id: str | int) -> AttemptReport | None:
        """The AI report for a service attempt id, or None while it is not ready (404/202)."""
        url = self.report_base + REPORT_PATH.format(attempt_id=quote(str(service_attempt_id), ""))
        headers = {"Accept": "application/json"}
        params: dict[str, str] = {}
        if self.auth_mode == "query":
            params["api_token"] = self._report_key
        else:
            headers[AUTH_HEADER] = self._report_key
        resp = self._send("GET", url, operation="report_fetch", headers=headers, params=params)
        if resp.status_code in NOT_READY:
            return None
        self._reject_unless_ok(resp)
        return parse_report(self._json(resp))

    # -- transport ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, operation: str, **kwargs: Any) -> requests.Response:
        """One request with retries on connection errors, timeouts, 5xx and 429."""
        path = urlsplit(url).path
        for attempt in range(self.max_retries + 1):
            started = time.perf_counter()
            try:
                failure, retry_after = self._try_once(method, url, path, **kwargs)
            except ProviderRejectedError:
                _observe(operation, started, "rejected")
                raise
            _observe(operation, started, _error_kind(failure, operation))
            if isinstance(failure, requests.Response):
                return failure
            if attempt >= self.max_retries:
                raise failure
            delay = self._delay(attempt, retry_after)
            log.warning("proctoring %s %s: %s, retry in %.1fs", method, path, failure, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _try_once(
        self, method: str, url: str, path: str, **kwargs: Any
    ) -> tuple[requests.Response | ProviderError, float | None]:
        try:
            resp = self._http.request(
                method, url, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except _TRANSIENT as exc:
            return ProviderUnavailableError(f"{method} {path}: {type(exc).__name__}"), None
        except requests.RequestException as exc:
            raise ProviderRejectedError(f"{method} {path}: {type(exc).__name__}") from None
        log.info("proctoring %s %s -> %s", method, path, resp.status_code)
        if resp.status_code < 500 and resp.status_code != 429:
            return resp, None
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        return (
            ProviderUnavailableError(
                f"{method} {path}: HTTP {resp.status_code}",
                status=resp.status_code,
                request_id=_request_id(resp),
                retry_after_s=retry_after,
            ),
            retry_after,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the service gave one (capped), else exponential backoff, full jitter."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return self._rng.uniform(0, ceiling)

    def _reject_unless_ok(self, resp: requests.Response) -> None:
        if 200 <= resp.status_code < 300:
            return
        path = urlsplit(resp.request.url or "").path if resp.request else ""
        raise ProviderRejectedError(
            f"HTTP {resp.status_code} on {resp.request.method if resp.request else ''} {path}: "
            f"{self._excerpt(resp.text)}",
            status=resp.status_code,
            request_id=_request_id(resp),
        )

    def _json(self, resp: requests.Response) -> Mapping[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderRejectedError(
                f"unreadable answer (not a JSON object): {self._excerpt(resp.text)}",
                status=resp.status_code,
                request_id=_request_id(resp),
            )
        return body

    def _excerpt(self, text: str) -> str:
        short = " ".join(text.split())[:EXCERPT_CHARS]
        for secret in (self._api_key, self._report_key):
            short = short.replace(secret, "***")
        return short


def _error_kind(outcome: requests.Response | ProviderError, operation: str) -> str | None:
    """unavailable (retryable), rejected (another 4xx), or None for a usable answer."""
    if isinstance(outcome, ProviderError):
        return "unavailable"
    if outcome.status_code < 400 or (
        operation == "report_fetch" and outcome.status_code in NOT_READY
    ):
        return None
    return "rejected"


def _observe(operation: str, started: float, error: str | None) -> None:
    metrics.record_service_call(
        operation=operation, seconds=time.perf_counter() - started, error=error
    )


def _request_id(resp: requests.Response) -> str | None:
    return resp.headers.get("X-Request-Id") or resp.headers.get("X-Request-ID")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def from_config(
    config: Mapping[str, Any],
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ProctoringClient:
    """A client built from the app settings (TRUSTEXAM_*, PROCTOR_TIMEOUT_S)."""
    key = config.get("TRUSTEXAM_API_KEY")
    if not key:
        raise ProviderRejectedError("TRUSTEXAM_API_KEY is not set: configure the service's key")
    read = float(config.get("PROCTOR_TIMEOUT_S") or 10)
    mode = str(config.get("TRUSTEXAM_AUTH_MODE") or "header").lower()
    if mode not in ("header", "query"):
        raise ProviderRejectedError("TRUSTEXAM_AUTH_MODE must be 'header' or 'query'")
    return ProctoringClient(
        str(config.get("TRUSTEXAM_API_BASE") or DEFAULT_API_BASE),
        str(key),
        report_base=str(config.get("TRUSTEXAM_REPORT_BASE") or DEFAULT_REPORT_BASE),
        report_api_key=str(config.get("TRUSTEXAM_REPORT_API_KEY") or key),
        auth_mode="query" if mode == "query" else "header",
        timeout=(min(read, 5.0), read),
        max_retries=int(config.get("PROCTOR_MAX_RETRIES", 2)),
        session=session,
        sleep=sleep,
    )


def _pooled_session(service_url: str) -> requests.Session:
    """A session whose pool keeps enough connections alive for concurrent launches.

    One client (and so one session) serves every thread of an app process; requests' Session
    is safe to share for plain requests like ours (urllib3's pool is thread-safe). The
    environment's proxy and CA bundle settings (HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE) are
    read once here instead of at every request (requests' trust_env re-reads them, and ~/.netrc,
    on each call: 3% of a launch's CPU).
    """
    session = requests.Session()
    session.trust_env = False
    if not requests.utils.should_bypass_proxies(service_url, no_proxy=None):
        session.proxies = dict(urllib.request.getproxies())
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    adapter = HTTPAdapter(pool_maxsize=POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def get_client(app: Flask) -> ProctoringClient:
    """The app's one client, built from its settings on first use and reused (kept-alive TLS).

    It lives in app.extensions, so each app object (each test's app) has its own. A settings
    error raises ProviderRejectedError each time and caches nothing.
    """
    client: ProctoringClient | None = app.extensions.get(EXTENSION_KEY)
    if client is None:
        with _build_lock:
            client = app.extensions.get(EXTENSION_KEY)
            if client is None:
                client = from_config(app.config)
                app.extensions[EXTENSION_KEY] = client
    return client
