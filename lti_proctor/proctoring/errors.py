"""Errors from the proctoring service, split by whether a retry can help.

ProviderError(status, request_id)
  ProviderUnavailableError   timeouts, connection errors, 5xx, 429 -> retryable
  ProviderRejectedError      other 4xx, unreadable answers -> permanent, needs an admin
ProfileError                 a profile file is invalid (names the file and the key)
UnknownProfileError          an exam asked for a profile that does not exist
WebhookAuthError             a webhook's secret is missing or wrong (never says which part)
WebhookBodyError             a webhook's body claims JSON but is not a JSON object
"""

from __future__ import annotations


class ProviderError(Exception):
    """The proctoring service could not do what we asked."""

    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.status = status
        self.request_id = request_id
        self.retry_after_s = retry_after_s


class ProviderUnavailableError(ProviderError):
    """The proctoring service is unreachable or overloaded; try again later."""

    retryable = True  # the outbox worker retries any exception that says so


class ProviderRejectedError(ProviderError):
    """The proctoring service refused the request; retrying will not help."""


class ProfileError(Exception):
    """A proctoring profile file is invalid."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


class UnknownProfileError(Exception):
    """The exam asks for a proctoring profile that does not exist."""

    def __init__(self, name: str, known: tuple[str, ...] = ()) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(f"unknown proctoring profile {name!r} (known: {listed})")
        self.name, self.known = name, known


class WebhookAuthError(Exception):
    """The webhook's secret is missing or wrong."""

    def __init__(self) -> None:
        # One fixed message: the caller must not learn which part failed.
        super().__init__((self.__doc__ or "").strip())


class WebhookBodyError(ValueError):
    """The webhook's body is not a JSON object although it says it is JSON."""
