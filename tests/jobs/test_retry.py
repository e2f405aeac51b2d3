from __future__ import annotations

import pytest

from lti_proctor.jobs.retry import (
    LAST_ERROR_MAX_CHARS,
    JobCancelledError,
    PermanentJobError,
    RetryableJobError,
    RetryPolicy,
    UnknownJobKindError,
    describe_error,
    is_retryable,
)
from lti_proctor.proctoring.errors import ProviderRejectedError, ProviderUnavailableError


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (50, 3600), (10_000, 3600)],
)
def test_delay_doubles_per_failure_up_to_the_maximum(attempts: int, delay: float) -> None:
    policy = RetryPolicy(base_delay_s=30, max_delay_s=3600, jitter=0)
    assert policy.delay_s(attempts) == delay


@pytest.mark.parametrize(("rand", "delay"), [(0.0, 60.0), (0.5, 66.0), (0.999, 71.988)])
def test_jitter_adds_up_to_its_fraction_and_never_shortens_the_delay(
    rand: float, delay: float
) -> None:
    policy = RetryPolicy(base_delay_s=30, jitter=0.2, rand=lambda: rand)
    assert policy.delay_s(2) == pytest.approx(delay)


def test_default_jitter_spreads_workers_that_failed_together() -> None:
    policy = RetryPolicy()
    delays = {policy.delay_s(3) for _ in range(20)}
    assert len(delays) > 1
    assert all(120 <= d <= 132 for d in delays)


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [(None, 60), (10, 60), (60, 60), (120, 120), (7200, 7200), (-5, 60), ("soon", 60)],
)
def test_retry_after_of_the_error_wins_only_when_longer(retry_after: object, delay: float) -> None:
    exc = ProviderUnavailableError("429 Too Many Requests", status=429)
    exc.retry_after_s = retry_after  # type: ignore[assignment]
    assert RetryPolicy(base_delay_s=30, jitter=0).delay_s(2, exc) == delay


@pytest.mark.parametrize(("attempts", "again"), [(1, True), (7, True), (8, False), (9, False)])
def test_max_attempts_counts_every_try(attempts: int, again: bool) -> None:
    assert RetryPolicy(max_attempts=8).should_retry(attempts) is again


def test_policy_defaults_and_config() -> None:
    assert (RetryPolicy().max_attempts, RetryPolicy().base_delay_s) == (8, 30)
    policy = RetryPolicy.from_config(
        {"OUTBOX_MAX_ATTEMPTS": "3", "OUTBOX_BASE_DELAY_S": 5, "OUTBOX_MAX_DELAY_S": 50}
    )
    assert (policy.max_attempts, policy.base_delay_s, policy.max_delay_s) == (3, 5, 50)


class SaysRetryable(Exception):
    retryable = "yes"  # truthy but not True: the protocol asks for True


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ProviderUnavailableError(status=503), True),
        (RetryableJobError("LMS busy"), True),
        (UnknownJobKindError("x"), True),
        (ProviderRejectedError(status=400), False),
        (PermanentJobError("line item gone"), False),
        (JobCancelledError(), False),
        (ValueError("bug"), False),
        (SaysRetryable(), False),
    ],
)
def test_is_retryable_follows_the_retryable_attribute(exc: Exception, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_describe_error_names_the_type_message_status_and_request_id() -> None:
    exc = ProviderUnavailableError("service\n  unavailable", status=503, request_id="req-42")
    assert describe_error(exc) == (
        "ProviderUnavailableError: service unavailable (status 503, request_id req-42)"
    )


def test_describe_error_without_message_uses_the_class_doc() -> None:
    assert describe_error(JobCancelledError()) == (
        "JobCancelledError: The job has nothing left to do (e.g. its attempt was deleted)."
    )


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("401 for Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("sent eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "c2lnbmF0dXJl"),
        ("GET /x?api_key=sk_live_123&x=1", "sk_live_123"),
        ('{"access_token": "tok-999", "expires_in": 3600}', "tok-999"),
        ("client_assertion=eyJ0eXAi", "eyJ0eXAi"),
        ("password: hunter2", "hunter2"),
    ],
)
def test_describe_error_cuts_out_credentials(message: str, secret: str) -> None:
    text = describe_error(RuntimeError(message))
    assert secret not in text
    assert "redacted" in text


def test_describe_error_is_short() -> None:
    text = describe_error(RuntimeError("x" * 5000))
    assert len(text) == LAST_ERROR_MAX_CHARS and text.endswith("…")


@pytest.mark.parametrize(
    ("attempts", "age_s", "again"),
    [(8, None, False), (8, 3600.0, True), (40, 2 * 86400.0, True), (40, 3 * 86400.0, False)],
)
def test_horizon_keeps_a_retryable_job_going_for_days(
    attempts: int, age_s: float | None, again: bool
) -> None:
    policy = RetryPolicy(max_attempts=8, horizon_s=3 * 86400)
    assert policy.should_retry(attempts, age_s=age_s) is again


def test_horizon_comes_from_config_and_defaults_to_three_days() -> None:
    from lti_proctor.config import Defaults

    assert RetryPolicy.from_config({"OUTBOX_RETRY_HORIZON_S": "600"}).horizon_s == 600
    assert Defaults.OUTBOX_RETRY_HORIZON_S == 3 * 86400
