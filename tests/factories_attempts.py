"""Factories for exams, learners and attempts, and a faithful fake of the proctoring service's HTTP.

The fake answers POST {api}/external-session/assignment.json the way trustexam-api.md §4.4 says
(JSON, `external_session.token`, `report_url`, `session_url`) and records every body it got.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import responses
from flask.testing import FlaskClient

from lti_proctor.attempts import operations
from lti_proctor.attempts.models import Attempt
from lti_proctor.identity import Exam, Learner, sync_exam_from_launch, sync_learner_from_launch
from lti_proctor.lti.context import AgsEndpoint, LaunchContext
from lti_proctor.lti.registrations import Platform
from lti_proctor.lti.roles import Role
from lti_proctor.proctoring.types import Profile
from tests.factories import make_platform as make_platform  # the one factory; kept importable here

PROCTOR_API = "https://proctor.example.test/api"
SESSION_URL = PROCTOR_API + "/external-session/assignment.json"
SDK_URL = "https://sdk.proctor.example.test/extension/app.js"
LMS = "https://moodle.example.edu"
PROCTOR_CONFIG: dict[str, Any] = {
    "TRUSTEXAM_API_KEY": "test-api-key-7c1d",
    "TRUSTEXAM_API_BASE": PROCTOR_API,
    "TRUSTEXAM_SDK_URL": SDK_URL,
    "SANDBOX_PROCTORING": False,
    "PROCTOR_MAX_RETRIES": 0,
}
EXAM_URL = LMS + "/mod/quiz/view.php?id=42"
ACCESS_CODE = "QUIZ-7731"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def make_launch(platform: Platform, **overrides: Any) -> LaunchContext:
    """A validated learner launch of the exam link, as lti/launch.py hands it over."""
    ctx = LaunchContext(
        platform_id=platform.id,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_id=platform.deployments[0].deployment_id,
        message_type="LtiResourceLinkRequest",
        user_sub="17",
        roles=frozenset({Role.LEARNER}),
        context_id="2",
        context_label="PHYS101",
        context_title="Physics 101",
        resource_link_id="42",
        resource_link_title="Midterm exam",
        user_name="Aigerim Sadykova",
        given_name="Aigerim",
        family_name="Sadykova",
        email="a.sadykova@example.edu",
        custom={"exam_url": EXAM_URL, "access_code": ACCESS_CODE},
        locale="en",
        return_url=LMS + "/mod/lti/return.php?course=2&launch_container=2",
        ags=AgsEndpoint(
            scopes=("https://purl.imsglobal.org/spec/lti-ags/scope/score",),
            lineitems=LMS + "/mod/lti/services.php/2/lineitems?type_id=1",
            lineitem=LMS + "/mod/lti/services.php/2/lineitems/7/lineitem?type_id=1",
        ),
    )
    return replace(ctx, **overrides)


def make_exam_and_learner(platform: Platform, **overrides: Any) -> tuple[Exam, Learner]:
    """The exam and learner rows a launch creates, flushed."""
    ctx = make_launch(platform, **overrides)
    return sync_exam_from_launch(ctx, now=NOW), sync_learner_from_launch(ctx, now=NOW)


@dataclass
class FakeService:
    """Records session upserts and answers them like the service (a new token each time)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(self.delay_s)
        with self._lock:
            self.bodies.append(json.loads(request.body))
            self.headers.append(dict(request.headers))
            n = len(self.bodies)
        if self.status != 200:
            return self.status, {"Content-Type": "application/json"}, '{"message":"Server Error"}'
        body = {
            "external_session": {"token": f"sdk-token-{n}", "id": 880000 + n},
            "report_url": "https://app.proctor.example.test/assignments/55120/students/310077",
            "session_url": f"https://app.proctor.example.test/session/{n}",
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    @property
    def calls(self) -> int:
        """How many upserts the service received."""
        return len(self.bodies)


def fake_service(http: responses.RequestsMock, **kwargs: Any) -> FakeService:
    """Register the fake session endpoint on the `http` mock."""
    service = FakeService(**kwargs)
    http.add_callback(responses.POST, SESSION_URL, callback=service)
    return service


class FakeClient:
    """A ProctoringClient stand-in for the domain tests: answers upserts, or raises `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[Any] = []
        self.error = error

    def upsert_session(self, request: Any) -> Any:
        from lti_proctor.proctoring.types import SessionResult

        self.requests.append(request)
        if self.error is not None:
            raise self.error
        n = len(self.requests)
        return SessionResult(
            token=f"sdk-token-{n}",
            report_url="https://app.proctor.example.test/report/1",
            session_url=None,
            session_id=str(880000 + n),
            raw={"external_session": {"token": f"sdk-token-{n}"}},
        )


LINKS = operations.SessionLinks(
    webhook_start_url="https://tool.example.com/webhooks/trustexam/start",
    webhook_finish_url="https://tool.example.com/webhooks/trustexam/finish",
)


def make_attempt(
    platform: Platform, profile: Profile, *, state: str | None = None, **launch: Any
) -> Attempt:
    """An open attempt created the way a launch creates it, optionally moved to `state`."""
    exam, learner = make_exam_and_learner(platform, **launch)
    pending = operations.begin_start(
        exam=exam,
        learner=learner,
        profile=profile,
        links=LINKS,
        now=NOW,
        exam_url=EXAM_URL,
        access_code=ACCESS_CODE,
    )
    assert pending.session is not None
    result = FakeClient().upsert_session(pending.session)
    attempt = operations.complete_start(pending, result, now=NOW)
    if state in ("started", "finished"):
        operations.mark_started(attempt, now=NOW)
    if state == "finished":
        operations.mark_finished(attempt, now=NOW)
    return attempt


def webhook_body(attempt: Attempt, event: str) -> dict[str, Any]:
    """What the service sends (trustexam-api.md §4.5), with our attempt id echoed from `post`."""
    status = "active" if event == "start" else "closed"
    body: dict[str, Any] = {
        "event": event,
        "status": status,
        "attempt": {
            "id": 884211,
            "attempt": 1,
            "status": status,
            "started_at": "2026-03-02T08:00:14Z",
        },
        "assignment": {"id": 55120, "external_id": "lti:7f1c9a0e4b2d8c6a1e3f5b7d9c0a2e4f"},
        "session_data": {"external_id": attempt.id},
        "timestamp": "2026-03-02T08:00:14Z",
        "attempt_id": attempt.id,
    }
    if event == "finish":
        body["attempt"]["finished_at"] = "2026-03-02T09:12:40Z"
        body["report_url"] = "https://app.proctor.example.test/report/884211"
    return body


def deliver_webhook(
    client: FlaskClient,
    attempt: Attempt,
    event: str,
    *,
    header_secret: str | None = "same",
    query_secret: str | None = "same",
    query_ref: str | None = "same",
    body: dict[str, Any] | None = None,
    form: bool = False,
    raw: bytes | None = None,
    content_type: str | None = None,
) -> Any:
    """POST a webhook as the service would: secret in header and query, our attempt id in the
    query and the body ("same" = the real one; query_ref=None = a session made before the id
    rode in the query)."""
    secret = attempt.webhook_secret
    headers = {}
    if header_secret is not None:
        headers["X-Tool-Webhook-Secret"] = secret if header_secret == "same" else header_secret
    query = (
        {} if query_secret is None else {"sig": secret if query_secret == "same" else query_secret}
    )
    if query_ref is not None:
        query["attempt_id"] = attempt.id if query_ref == "same" else query_ref
    url = f"/webhooks/trustexam/{event}" + (f"?{urlencode(query)}" if query else "")
    payload = body if body is not None else webhook_body(attempt, event)
    if raw is not None:
        data, ctype = raw, content_type or "application/json"
    elif form:
        data, ctype = _form_encode(payload).encode(), "application/x-www-form-urlencoded"
    else:
        data, ctype = json.dumps(payload).encode(), "application/json"
    return client.post(url, data=data, headers=headers, content_type=ctype)


def _form_encode(payload: dict[str, Any], prefix: str = "") -> str:
    """PHP-style form encoding (a[b]=1), as a Laravel service would send it."""
    pairs: list[tuple[str, str]] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        else:
            pairs.append((key, str(value)))

    walk(payload, prefix)
    return urlencode(pairs)
