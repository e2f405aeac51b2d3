"""Start and finish webhooks racing for the same attempt, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import select

from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.proctoring.profiles import get_profiles
from tests.factories import make_platform
from tests.factories_attempts import deliver_webhook, make_attempt

ROUNDS = 15


def _attempts(app, count):
    with app.app_context():
        platform = make_platform()
        profile = get_profiles(app)["standard"]
        made = [make_attempt(platform, profile, user_sub=f"learner-{n}") for n in range(count)]
        db.session.commit()
        for attempt in made:
            db.session.refresh(attempt)
            db.session.expunge(attempt)
        return made


def _race(app, attempt, events):
    """Deliver the events at the same moment from one thread each; the response codes."""
    barrier = threading.Barrier(len(events))
    codes: list[int] = []

    def deliver(event):
        client = app.test_client()
        barrier.wait()
        codes.append(deliver_webhook(client, attempt, event).status_code)

    threads = [threading.Thread(target=deliver, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return codes


def _outcome(app, attempt_id):
    with app.app_context():
        state = db.session.get(Attempt, attempt_id).state
        jobs = db.session.execute(select(OutboxJob.kind, OutboxJob.payload)).all()
        mine = Counter(
            (kind, payload.get("state"))
            for kind, payload in jobs
            if payload["attempt_id"] == attempt_id
        )
        return state, mine


def test_start_and_finish_racing_always_end_finished(app):
    attempts = _attempts(app, ROUNDS)
    for attempt in attempts:
        assert sorted(_race(app, attempt, ["start", "finish"])) == [200, 200]
    for attempt in attempts:
        state, jobs = _outcome(app, attempt.id)
        assert state == "finished"
        # The finish's side effects exactly once, whoever won; a start status at most once.
        assert jobs[("ags.publish_status", "finished")] == 1
        assert jobs[("report.fetch", None)] == 1
        assert jobs[("ags.publish_status", "started")] <= 1


def test_the_same_finish_delivered_twice_at_once_queues_its_jobs_once(app):
    attempts = _attempts(app, 5)
    for attempt in attempts:
        assert _race(app, attempt, ["finish", "finish", "start"]).count(200) == 3
    for attempt in attempts:
        state, jobs = _outcome(app, attempt.id)
        assert state == "finished"
        assert jobs[("report.fetch", None)] == 1
        assert jobs[("ags.publish_status", "finished")] == 1
