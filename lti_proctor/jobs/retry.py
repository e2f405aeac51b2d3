"""When a failed job runs again: RetryPolicy (backoff, max attempts) and the job error protocol.

The protocol, for any exception a handler raises:
  `retryable = True` attribute      -> the job is retried with backoff (ProviderUnavailableError)
  `retry_after_s` attribute (float) -> the retry waits at least that long (a 429's Retry-After)
  JobCancelledError                 -> the job ends as cancelled: nothing is left to do
  anything else                     -> the job fails at once (dead), with last_error kept

RetryableJobError(message, retry_after_s=None)   retryable; for handlers with no richer type
PermanentJobError                                fails at once; says so explicitly
JobCancelledError                                ends the job as cancelled, not dead
UnknownJobKindError                              no handler for the kind; retryable, since a
                                                 worker of another release may know it
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LAST_ERROR_MAX_CHARS = 500

# Whatever looks like a credential is cut out of last_error before it is stored or logged.
_SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(
        r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|client_assertion)"
        r"([\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
    ),
)


class RetryableJobError(Exception):
    """The job could not finish now; the worker retries it later."""

    retryable = True

    def __init__(self, message: str | None = None, *, retry_after_s: float | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.retry_after_s = retry_after_s


class PermanentJobError(Exception):
    """The job cannot succeed; retrying will not help."""

    retryable = False


class JobCancelledError(Exception):
    """The job has nothing left to do (e.g. its attempt was deleted)."""


class UnknownJobKindError(RetryableJobError):
    """No handler is registered for this job kind."""


def is_retryable(exc: BaseException) -> bool:
    """True when exc asks for a retry (its `retryable` attribute is True)."""
    return getattr(exc, "retryable", False) is True


def retry_after_s(exc: BaseException) -> float | None:
    """The minimum wait exc asks for (its `retry_after_s` attribute), if it is a number."""
    value = getattr(exc, "retry_after_s", None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


def redact(text: str) -> str:
    """Cut tokens, keys and passwords out of text."""
    text = _SECRET_PATTERNS[0].sub(r"\1 [redacted]", text)
    text = _SECRET_PATTERNS[1].sub("[redacted-jwt]", text)
    return _SECRET_PATTERNS[2].sub(r"\1\2[redacted]", text)


def describe_error(exc: BaseException) -> str:
    """A short, single-line, credential-free description of exc for last_error and logs."""
    message = " ".join(str(exc).split()) or (type(exc).__doc__ or "").strip()
    extra = [
        f"{name} {value}"
        for name in ("status", "request_id")
        if (value := getattr(exc, name, None)) is not None
    ]
    text = f"{type(exc).__name__}: {message}"
    if extra:
        text += f" ({', '.join(extra)})"
    text = redact(text)
    if len(text) > LAST_ERROR_MAX_CHARS:
        text = text[: LAST_ERROR_MAX_CHARS - 1] + "…"
    return text


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits base * 2**(n-1), at most max_delay_s.

    `max_attempts` counts every try, the first included. `horizon_s` keeps a retryable job
    going past max_attempts for as long as it is younger than that (an LMS down over a
    weekend): the outage's backlog then drains once the LMS is back. `jitter` is the fraction
    of the delay added at random (0.1 = up to 10% more), so workers that failed together do not
    return together; the delay is never shorter than the nominal one.
    """

    max_attempts: int = 8
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    horizon_s: float = 0.0
    jitter: float = 0.1
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """The policy the OUTBOX_* settings describe."""
        return cls(
            max_attempts=int(config.get("OUTBOX_MAX_ATTEMPTS", cls.max_attempts)),
            base_delay_s=float(config.get("OUTBOX_BASE_DELAY_S", cls.base_delay_s)),
            max_delay_s=float(config.get("OUTBOX_MAX_DELAY_S", cls.max_delay_s)),
            horizon_s=float(config.get("OUTBOX_RETRY_HORIZON_S", cls.horizon_s)),
        )

    def should_retry(self, attempts: int, *, age_s: float | None = None) -> bool:
        """True when a job that has failed `attempts` times, `age_s` after it was queued, may
        run again: under max_attempts, or (age known) still within the horizon."""
        if attempts < self.max_attempts:
            return True
        return age_s is not None and age_s < self.horizon_s

    def delay_s(self, attempts: int, exc: BaseException | None = None) -> float:
        """Seconds to wait after the `attempts`-th failure; honours a longer retry_after_s."""
        exponent = min(max(attempts - 1, 0), 62)
        delay = min(self.base_delay_s * (2.0**exponent), self.max_delay_s)
        delay += delay * self.jitter * self.rand()
        asked = retry_after_s(exc) if exc is not None else None
        return max(delay, asked) if asked is not None else delay
