"""A fake of the proctoring service's AI report endpoint (trustexam-api.md §4.6).

GET {report_base}/actions/reports/ai/{service attempt id}: 401 without the API key, 404 (JSON
message) while the report is not ready, then the report JSON. Install it on the `http` mock.
"""

from __future__ import annotations

import copy
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import responses
from requests import PreparedRequest

REPORT_BASE = "https://reports.proctor.example.test/api/v1"
PATH = re.compile(r"/actions/reports/ai/([^/?]+)$")

# The contract's example report (§4.6): risk 28, six violations.
EXAMPLE_REPORT: dict[str, Any] = {
    "attempt_id": 884211,
    "overall_risk_score": 28,
    "risk_level": "low",
    "credibility": 72,
    "summary": "Short head turns and background noise; no second person detected.",
    "violations": [
        {"type": "noise_detect", "count": 3, "severity": "low"},
        {"type": "head_rotated", "count": 2, "severity": "medium"},
        {"type": "focus_down", "count": 1, "severity": "medium"},
    ],
    "timeline": [
        {
            "at": "2026-03-02T08:40:51Z",
            "offset_sec": 2437,
            "action_type": "focus_down",
            "is_warning": 1,
        },
        {
            "at": "2026-03-02T08:14:03Z",
            "offset_sec": 829,
            "action_type": "head_rotated",
            "is_warning": 1,
            "description": "Head turned away for 4 s",
            "screenshot": "https://cdn.proctor.example.test/s/1.jpg",
        },
    ],
    "recommendations": ["Review minute 13-15 of the screen recording."],
}


@dataclass
class FakeReports:
    """Serves reports by service attempt id; a report is 404 until publish() makes it ready."""

    api_key: str
    base: str = REPORT_BASE
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _planned: deque[tuple[int, dict[str, str], str]] = field(default_factory=deque)

    def install(self, http: responses.RequestsMock) -> FakeReports:
        pattern = re.compile(re.escape(self.base) + r"/actions/reports/ai/[^/?]+(\?.*)?$")
        http.add_callback(responses.GET, pattern, callback=self)
        return self

    def publish(self, service_attempt_id: str | int, **fields: Any) -> dict[str, Any]:
        """Make the report of an attempt ready: the example report with fields changed."""
        body = copy.deepcopy(EXAMPLE_REPORT)
        body["attempt_id"] = service_attempt_id
        body.update(fields)
        self.reports[str(service_attempt_id)] = body
        return body

    def fail_next(self, status: int, *, headers: dict[str, str] | None = None) -> None:
        """The next report request gets this status."""
        self._planned.append((status, dict(headers or {}), '{"message":"Server Error"}'))

    def __call__(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = urlsplit(str(request.url)).path
        match = PATH.search(path)
        assert match, path
        self.requests.append(match.group(1))
        if self._planned:
            return self._planned.popleft()
        if request.headers.get("X-Authorization") != self.api_key:
            return _json(401, {"message": "Unauthenticated."})
        body = self.reports.get(match.group(1))
        if body is None:
            return _json(404, {"message": "The report is not ready."})
        return _json(200, body)


def _json(status: int, body: Any) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(body)
