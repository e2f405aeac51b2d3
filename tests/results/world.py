"""ResultsWorld: a Moodle- or Canvas-shaped LMS (signed launches + AGS fake) and the proctoring
service (session upserts, webhooks, AI reports), wired to one test app, for the results path:
launch -> start/finish webhooks -> outbox jobs -> gradebook and instructor view.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.identity import Exam, Learner
from lti_proctor.jobs.models import JobStatus, OutboxJob
from lti_proctor.lti.keys import get_signing_key
from lti_proctor.timeutil import utcnow
from tests.factories_attempts import (
    EXAM_URL,
    PROCTOR_CONFIG,
    deliver_webhook,
    fake_service,
    webhook_body,
)
from tests.fakes.ags import CanvasFake, FakeLms, MoodleFake
from tests.fakes.reports import REPORT_BASE, FakeReports
from tests.launches import LaunchBuilder, load_fixture

RESULTS_CONFIG: dict[str, Any] = {
    **PROCTOR_CONFIG,
    "TRUSTEXAM_REPORT_BASE": REPORT_BASE,
    "OUTBOX_BASE_DELAY_S": 30,
    "OUTBOX_MAX_ATTEMPTS": 8,
}
CANVAS_TOKEN_URL = "https://school.instructure.com/login/oauth2/token"
TAG = "proctoring"
ROLES = "https://purl.imsglobal.org/spec/lti/claim/roles"


class Clock:
    """The worker's clock, moved by hand; starts a minute ahead so jobs queued now are due."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(minutes=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ResultsWorld:
    """One LMS (family moodle or canvas) with the tool registered, plus the proctoring service."""

    def __init__(
        self, app: Flask, client: FlaskClient, http: responses.RequestsMock, family: str = "moodle"
    ) -> None:
        self.app, self.client, self.http, self.family = app, client, http, family
        self.launcher = LaunchBuilder(app, client, http, family=family, register=False)
        if family == "canvas":
            self.launcher.register(auth_token_url=CANVAS_TOKEN_URL)
        else:
            self.launcher.register()
        with app.app_context():
            kid, key = get_signing_key()
        fake: type[FakeLms] = CanvasFake if family == "canvas" else MoodleFake
        self.lms = fake(public_key=key.public_key(), kid=kid).install(http)
        self.service = fake_service(http)
        self.reports = FakeReports(api_key=PROCTOR_CONFIG["TRUSTEXAM_API_KEY"]).install(http)
        self._next_service_id = 884211

    # -- the LMS side ----------------------------------------------------------------------------

    @property
    def default_sub(self) -> str:
        return str(self.launcher.fixture["claims"]["sub"])

    def claims(self, *, role: str = "student", **overrides: Any) -> dict[str, Any]:
        """Claim overrides for a launch of the exam link (custom params with the quiz URL)."""
        claims: dict[str, Any] = {"custom": {"exam_url": EXAM_URL, "max_attempts": "3"}}
        if role == "instructor":
            fixture = load_fixture(self.family, "instructor")["claims"]
            for name in ("sub", "name", "given_name", "family_name", "email"):
                if fixture.get(name) is not None:
                    claims[name] = fixture[name]
            claims["roles"] = fixture[ROLES]
        claims.update(overrides)
        return claims

    def launch(self, *, role: str = "student", **overrides: Any) -> Any:
        """A signed launch of the exam link through the tool's test client."""
        return self.launcher.launch(overrides=self.claims(role=role, **overrides))

    def student_attempt(self, sub: str | None = None, **overrides: Any) -> Attempt:
        """A student launches the exam: returns the attempt it opened (detached)."""
        sub = sub or self.default_sub
        self.lms.students.add(sub)
        resp = self.launch(sub=sub, **overrides)
        assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
        return self.latest_attempt(sub)

    def latest_attempt(self, sub: str | None = None) -> Attempt:
        with self.app.app_context():
            attempt = db.session.scalars(
                select(Attempt)
                .join(Learner, Learner.id == Attempt.learner_id)
                .where(Learner.sub == (sub or self.default_sub))
                .order_by(Attempt.created_at.desc(), Attempt.number.desc())
            ).first()
            assert attempt is not None
            db.session.expunge(attempt)
            return attempt

    def exam(self) -> Exam:
        with self.app.app_context():
            exam = db.session.scalars(select(Exam)).one()
            db.session.expunge(exam)
            return exam

    def proctoring_items(self) -> list[dict[str, Any]]:
        return self.lms.items_tagged(TAG)

    def gradebook(self, sub: str | None = None) -> dict[str, Any] | None:
        """The proctoring column's latest score for a student."""
        items = self.proctoring_items()
        assert len(items) == 1, items
        return self.lms.latest_score(items[0]["id"], sub or self.default_sub)

    def history(self, sub: str | None = None) -> list[tuple[str, str]]:
        """(activityProgress, gradingProgress) of every score the LMS accepted, oldest first."""
        items = self.proctoring_items()
        scores = self.lms.scores.get((items[0]["id"], sub or self.default_sub), [])
        return [(s["activityProgress"], s["gradingProgress"]) for s in scores]

    def lineitem_posts(self) -> int:
        """How many line items the tool created (POSTs to the container)."""
        container = self.lms.service_base
        return sum(
            1
            for method, url in self.lms.service_requests
            if method == "POST" and url.split("?")[0].rstrip("/") == container
        )

    # -- the proctoring service side ---------------------------------------------------------

    def webhook(self, attempt: Attempt, event: str, /, **changes: Any) -> Any:
        """The service's start/finish webhook for the attempt, with its own attempt id."""
        body = webhook_body(attempt, event)
        body["attempt"]["id"] = self.service_id(attempt)
        body = _merge(body, changes)
        resp = deliver_webhook(self.client, attempt, event, body=body)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp

    def service_id(self, attempt: Attempt) -> int:
        """The service's attempt id of one of our attempts (stable per attempt)."""
        ids = self.__dict__.setdefault("_ids", {})
        if attempt.id not in ids:
            ids[attempt.id] = self._next_service_id
            self._next_service_id += 1
        return int(ids[attempt.id])

    def publish_report(self, attempt: Attempt, **fields: Any) -> dict[str, Any]:
        return self.reports.publish(self.service_id(attempt), **fields)

    # -- the outbox ------------------------------------------------------------------------------

    def jobs(self, status: JobStatus | None = None) -> list[OutboxJob]:
        with self.app.app_context():
            query = select(OutboxJob).order_by(OutboxJob.id)
            if status is not None:
                query = query.where(OutboxJob.status == status.value)
            jobs = list(db.session.scalars(query))
            for job in jobs:
                db.session.expunge(job)
            return jobs

    def delay_job(self, kind: str, state: str | None, until: datetime) -> None:
        """Hold back the waiting job(s) of kind (and payload state) until `until`."""
        with self.app.app_context():
            for job in db.session.scalars(
                select(OutboxJob).where(
                    OutboxJob.kind == kind, OutboxJob.status == JobStatus.TODO.value
                )
            ):
                if state is None or job.payload.get("state") == state:
                    db.session.execute(
                        update(OutboxJob).where(OutboxJob.id == job.id).values(scheduled_at=until)
                    )
            db.session.commit()


def _merge(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(body)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
