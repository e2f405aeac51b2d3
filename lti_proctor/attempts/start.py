"""Starting (or resuming) a learner's attempt: the one operation a student launch runs.

Three short transactions, each committed through the caller's `commit` callback: the attempt row
(begin_start), the service's session upsert with no transaction open, then its token
(complete_start), or, when the service failed, the removal of the new row (abandon_start).
No Flask here: the proctoring client and the clock are passed in (tests pass fakes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lti_proctor.attempts import operations
from lti_proctor.attempts.models import Attempt
from lti_proctor.identity import Exam, Learner
from lti_proctor.proctoring.errors import ProviderError
from lti_proctor.proctoring.types import Profile, SessionRequest, SessionResult


class SessionClient(Protocol):
    """The part of the proctoring client a start needs."""

    def upsert_session(self, request: SessionRequest) -> SessionResult:
        """Create or refresh the attempt's proctoring session."""


@dataclass(frozen=True)
class ExamContent:
    """What the launch says the exam is: the framed quiz, its password, how many attempts."""

    exam_url: str | None = None
    access_code: str | None = None
    max_attempts: int = operations.DEFAULT_MAX_ATTEMPTS
    language: str | None = None  # the launch's, for the gradebook comment


@dataclass(frozen=True)
class StartResult:
    """A started or resumed attempt with its fresh token; attempt is None when none is left."""

    outcome: operations.StartOutcome
    attempt: Attempt | None


def start_attempt(
    *,
    exam: Exam,
    learner: Learner,
    profile: Profile,
    content: ExamContent,
    links: operations.SessionLinks,
    client: SessionClient,
    commit: Callable[[], None],
    clock: Callable[[], datetime],
) -> StartResult:
    """Start or resume the learner's attempt at the exam and return it with its session token.

    Commits three times, because no transaction (SQLite's write lock, a PostgreSQL connection
    and its row locks) may stay open while the service answers. Raises the ProviderError after
    committing abandon_start, so a failed start leaves no half-made attempt.
    """
    pending = operations.begin_start(
        exam=exam,
        learner=learner,
        profile=profile,
        links=links,
        now=clock(),
        max_attempts=content.max_attempts,
        exam_url=content.exam_url,
        access_code=content.access_code,
        language=content.language,
    )
    commit()  # 1: the attempt row is ours before the service hears of it
    if pending.session is None:
        return StartResult(pending.outcome, None)
    try:
        result = client.upsert_session(pending.session)  # 2: nothing open meanwhile
        attempt = operations.complete_start(pending, result, now=clock())
    except ProviderError:
        operations.abandon_start(pending)  # a new attempt goes; a resumed one stays as it was
        commit()
        raise
    commit()  # 3: the token
    return StartResult(pending.outcome, attempt)
