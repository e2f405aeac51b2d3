"""Fixtures for outbox tests: an app context, a settable clock and test handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from lti_proctor.extensions import db
from lti_proctor.jobs.models import OutboxJob
from lti_proctor.jobs.worker import Handler, job_handlers
from tests.results.world import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def register(app: Flask) -> Callable[[str, Handler], None]:
    """register(kind, fn): a handler for this test's app only."""

    def add(kind: str, fn: Handler) -> None:
        job_handlers(app)[kind] = fn

    return add


@pytest.fixture
def calls(register: Callable[[str, Handler], None]) -> list[dict[str, Any]]:
    """Registers `test.ok`, which records each payload it runs with."""
    seen: list[dict[str, Any]] = []
    register("test.ok", seen.append)
    return seen


def reload(job_id: int) -> OutboxJob:
    """The job as the database has it now (not the session's cached copy)."""
    db.session.expire_all()
    job = db.session.get(OutboxJob, job_id)
    assert job is not None
    return job
