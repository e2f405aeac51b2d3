from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from lti_proctor.lti.service_http import (
    AgsRejectedError,
    AgsUnavailableError,
    LineItemGoneError,
    lms_answer,
    next_page,
    raise_for_status,
    retry_after_s,
)


def answer(
    status: int, body: str = "", reason: str | None = None, **headers: str
) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content, resp.reason = status, body.encode(), reason  # type: ignore[assignment]
    resp.headers.update(headers)
    return resp


@pytest.mark.parametrize(
    ("body", "reason", "expected"),
    [
        (
            json.dumps(
                {
                    "errors": {
                        "type": "unprocessable_entity",
                        "message": "User not found in course or is not a student",
                    }
                }
            ),
            "Unprocessable Entity",
            "User not found in course or is not a student",
        ),
        (
            json.dumps({"errors": [{"message": "The specified resource does not exist."}]}),
            "Not Found",
            "The specified resource does not exist.",
        ),
        (json.dumps({"error": "invalid_scope"}), "Bad Request", "invalid_scope"),
        (
            json.dumps({"error": "invalid_client", "error_description": "unknown kid"}),
            "Bad Request",
            "unknown kid",
        ),
        (
            json.dumps(
                {
                    "status": 404,
                    "reason": "Not Found: Grade item 9 doesn't exist.",
                    "request": {"method": "POST", "url": "/mod/lti/services.php/2/..."},
                }
            ),
            "Not Found",
            "Not Found: Grade item 9 doesn't exist.",
        ),
        ("[]", "Incorrect score received", "Incorrect score received"),  # Moodle's status line
        (
            "<html>\n  <b>Bad   gateway</b>\n</html>",
            "Bad Gateway",
            "<html> <b>Bad gateway</b> </html>",
        ),
    ],
)
def test_lms_answer_picks_the_message_of_each_lms_shape(
    body: str, reason: str, expected: str
) -> None:
    assert lms_answer(answer(400, body, reason)) == expected


def test_lms_answer_is_short() -> None:
    assert len(lms_answer(answer(500, "x" * 5000))) == 300


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, AgsRejectedError),
        (401, AgsRejectedError),
        (403, AgsRejectedError),
        (404, LineItemGoneError),
        (408, AgsUnavailableError),
        (422, AgsRejectedError),
        (429, AgsUnavailableError),
        (500, AgsUnavailableError),
        (502, AgsUnavailableError),
        (503, AgsUnavailableError),
    ],
)
def test_status_codes_sort_into_retryable_or_not(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        raise_for_status(answer(status, "{}"), what="score", gone_error=LineItemGoneError)
    assert type(caught.value) is error
    assert caught.value.retryable is (error is AgsUnavailableError)  # type: ignore[attr-defined]


def test_404_on_a_container_is_a_plain_rejection() -> None:
    with pytest.raises(AgsRejectedError) as caught:
        raise_for_status(answer(404, "{}"), what="line items")
    assert type(caught.value) is AgsRejectedError


def test_success_passes() -> None:
    raise_for_status(answer(201, "{}"), what="line item creation")


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("120", 120, 120), ("0", 0, 0), ("soon", None, None), ("past", 0, 0), ("future", 50, 60)],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str, low: float | None, high: float | None
) -> None:
    now = datetime.now(UTC)
    value = {
        "past": format_datetime(now - timedelta(minutes=5), usegmt=True),
        "future": format_datetime(now + timedelta(seconds=60), usegmt=True),
    }.get(header, header)
    seconds = retry_after_s(answer(429, **{"Retry-After": value}))
    if low is None:
        assert seconds is None
    else:
        assert seconds is not None and low <= seconds <= (high or 0)


def test_no_retry_after_header_means_none() -> None:
    assert retry_after_s(answer(503)) is None


@pytest.mark.parametrize(
    "link",
    [
        '<https://m.example/lineitems?from=10>; rel="next"',
        "<https://m.example/lineitems?from=10>; rel=“next”",  # Moodle's typographic quotes
        '<https://m.example/lineitems?from=0>; rel="first", '
        '<https://m.example/lineitems?from=10>; rel="next"',
    ],
)
def test_next_page_link_is_found(link: str) -> None:
    assert next_page(answer(200, "[]", Link=link)) == "https://m.example/lineitems?from=10"


def test_last_page_has_no_next() -> None:
    assert next_page(answer(200, "[]", Link='<https://m.example/l?from=0>; rel="first"')) is None
