"""HTTP to LTI Advantage services (token endpoint, AGS): one request, and its answer sorted by
whether a retry can help. Tokens, assertions and request bodies never go into a message or log.

AgsError(status, lms_answer, retry_after_s)
  AgsUnavailableError        timeouts, connection errors, 408, 429, 5xx -> retryable
  AgsRejectedError           a 4xx that retrying cannot fix (user not enrolled, key unknown...)
    LineItemGoneError        404 on a line item or its scores: re-create the line item
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

ANSWER_EXCERPT_CHARS = 300


class AgsError(Exception):
    """The LMS could not do what we asked."""

    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        lms_answer: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.status = status
        self.lms_answer = lms_answer
        self.retry_after_s = retry_after_s


class AgsUnavailableError(AgsError):
    """The LMS is unreachable, slow or overloaded; try again later."""

    retryable = True  # the outbox worker retries any exception that says so


class AgsRejectedError(AgsError):
    """The LMS refused the request; retrying will not help."""


class LineItemGoneError(AgsRejectedError):
    """The line item no longer exists in the LMS; create it again."""


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    data: str | bytes | None,
    timeout: float,
) -> requests.Response:
    """Send one request with a timeout; no answer at all is AgsUnavailableError."""
    try:
        return session.request(method, url, headers=dict(headers), data=data, timeout=timeout)
    except requests.Timeout as exc:
        raise AgsUnavailableError(f"The LMS did not answer {method} {url} in time.") from exc
    except requests.RequestException as exc:
        raise AgsUnavailableError(
            f"Could not reach the LMS for {method} {url} ({type(exc).__name__})."
        ) from exc


def raise_for_status(
    resp: requests.Response,
    *,
    what: str,
    gone_error: type[AgsRejectedError] = AgsRejectedError,
) -> None:
    """Raise the error an HTTP error answer stands for; gone_error is used for a 404."""
    status = resp.status_code
    if status < 400:
        return
    answer = lms_answer(resp)
    message = f"The LMS answered HTTP {status} to the {what} request: {answer}"
    if status in (408, 429) or status >= 500:
        raise AgsUnavailableError(
            message, status=status, lms_answer=answer, retry_after_s=retry_after_s(resp)
        )
    error = gone_error if status == 404 else AgsRejectedError
    raise error(message, status=status, lms_answer=answer)


def lms_answer(resp: requests.Response) -> str:
    """A short, single-line excerpt of what the LMS said (its error message where it has one)."""
    text = resp.text.strip()
    detail = _error_detail(text)
    if detail is None and text not in ("", "[]", "{}"):
        detail = text
    if detail is None:
        detail = resp.reason or ""  # Moodle puts some refusals only in the status line
    return " ".join(detail.split())[:ANSWER_EXCERPT_CHARS]


def _error_detail(text: str) -> str | None:
    """Canvas {"errors": {...}|[...]}, OAuth {"error", "error_description"}, Moodle {"reason"}."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        errors = errors[0]
    if isinstance(errors, dict) and isinstance(errors.get("message"), str):
        return str(errors["message"])
    for key in ("error_description", "reason", "error", "message"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    return None


def retry_after_s(resp: requests.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if present."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def json_object(resp: requests.Response, *, what: str) -> dict[str, Any]:
    """The answer's JSON object; anything else is AgsRejectedError."""
    body = _json(resp)
    if not isinstance(body, dict):
        raise AgsRejectedError(
            f"The LMS answered the {what} request with something other than a JSON object.",
            status=resp.status_code,
        )
    return body


def json_list(resp: requests.Response, *, what: str) -> list[dict[str, Any]]:
    """The answer's JSON list of objects; anything else is AgsRejectedError."""
    body = _json(resp)
    if not isinstance(body, list):
        raise AgsRejectedError(
            f"The LMS answered the {what} request with something other than a JSON list.",
            status=resp.status_code,
        )
    return [item for item in body if isinstance(item, dict)]


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def next_page(resp: requests.Response) -> str | None:
    """The rel=next link of a paged answer; Moodle writes its rel values in typographic quotes."""
    for rel, link in resp.links.items():
        if rel.strip("\"'“”") == "next":
            url = link.get("url")
            return str(url) if url else None
    return None
