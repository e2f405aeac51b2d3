from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lti_proctor.lti.ags import Score
from lti_proctor.proctoring.types import AttemptReport, Profile, Violation
from lti_proctor.results.scores import score_for

AT = datetime(2030, 5, 1, 12, 30, tzinfo=UTC)
SUB = "21d25588-d4a9-51d7-a462-eb54278140c8"
REPORT_URL = "https://reports.trustexam.example/r/abc123?token=secret"
# The statuses that wait for a person (the removed GradebookStatus.needs_review).
NEEDS_A_PERSON = ("PendingManual", "Failed")


def profile(review_threshold: int = 50, score_maximum: int = 100) -> Profile:
    return Profile(
        name="standard",
        proctoring_settings={},
        review_threshold=review_threshold,
        score_maximum=score_maximum,
    )


def report(risk: float | None, *violations: Violation) -> AttemptReport:
    return AttemptReport(
        risk_score=risk,
        risk_source="none" if risk is None else "overall_risk_score",
        risk_level=None,
        summary=f"Full report at {REPORT_URL}",
        violations=violations,
        timeline=(),
        recommendations=(f"See {REPORT_URL}",),
        raw={"report_url": REPORT_URL},
    )


def status_for(state: str, rep: AttemptReport | None = None, **kw: object) -> Score:
    prof = kw.pop("profile", profile())
    return score_for(
        state,
        report=rep,
        profile=prof,
        user_sub=SUB,
        timestamp=AT,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("state", "activity", "grading"),
    [
        ("created", "Initialized", "NotReady"),
        ("started", "Started", "Pending"),
        ("finished", "Completed", "Pending"),
        ("failed", "Completed", "Failed"),
    ],
)
def test_states_before_the_report_map_to_progress_without_a_score(
    state: str, activity: str, grading: str
) -> None:
    status = status_for(state)

    assert (status.activity_progress, status.grading_progress) == (activity, grading)
    assert status.score_given is None and status.score_maximum is None
    assert status.user_id == SUB and status.timestamp == AT
    assert status.comment


def test_low_risk_report_is_fully_graded_without_a_number() -> None:
    status = status_for("reported", report(23, Violation("face_missing", 2)))

    assert (status.activity_progress, status.grading_progress) == ("Completed", "FullyGraded")
    assert status.score_given is None and status.score_maximum is None
    assert status.grading_progress not in NEEDS_A_PERSON
    assert status.comment == "Proctoring complete"


@pytest.mark.parametrize(
    ("risk", "grading"), [(49.99, "FullyGraded"), (50, "PendingManual"), (51, "PendingManual")]
)
def test_review_threshold_boundary(risk: float, grading: str) -> None:
    status = status_for("reported", report(risk))

    assert status.grading_progress == grading


def test_report_at_or_above_threshold_waits_for_a_person_and_sends_no_score() -> None:
    status = status_for("reported", report(80, Violation("second_person"), Violation("phone", 3)))

    assert (status.activity_progress, status.grading_progress) == ("Completed", "PendingManual")
    assert status.score_given is None and status.score_maximum is None
    assert status.grading_progress in NEEDS_A_PERSON
    assert status.comment == "Proctoring under review"


def test_a_reviewed_flagged_attempt_is_fully_graded() -> None:
    status = status_for("reported", report(80, Violation("phone")), reviewed=True)

    assert (status.activity_progress, status.grading_progress) == ("Completed", "FullyGraded")
    assert status.score_given is None
    assert status.comment == "Proctoring reviewed"


def test_report_without_a_risk_score_goes_to_manual_review() -> None:
    status = status_for("reported", report(None))

    assert status.grading_progress == "PendingManual"
    assert status.score_given is None
    assert status.comment == "Proctoring under review"


def test_exam_threshold_overrides_the_profiles() -> None:
    assert status_for("reported", report(25), review_threshold=20).grading_progress == (
        "PendingManual"
    )
    assert status_for("reported", report(60), review_threshold=70).grading_progress == (
        "FullyGraded"
    )


def test_integrity_number_is_posted_only_where_the_profile_asks() -> None:
    opted_in = Profile(
        name="graded",
        proctoring_settings={},
        review_threshold=20,
        score_maximum=10,
        gradebook_score="integrity",
    )

    assert status_for("reported", report(25), profile=opted_in).score_given is None  # pending
    graded = status_for("reported", report(15), profile=opted_in)
    assert (graded.score_given, graded.score_maximum) == (8.5, 10.0)
    assert graded.comment == "Proctoring complete"


@pytest.mark.parametrize(("language", "words"), [("ru", "Прокторинг"), ("kk-KZ", "Прокторинг")])
def test_comment_speaks_the_attempts_language(language: str, words: str) -> None:
    status = status_for("reported", report(80), language=language)

    assert words in (status.comment or "") and "review" not in (status.comment or "")


@pytest.mark.parametrize("state", ["created", "started", "finished", "failed", "reported"])
@pytest.mark.parametrize("risk", [10.0, 90.0, None])
@pytest.mark.parametrize("reviewed", [False, True])
@pytest.mark.parametrize("language", [None, "ru", "kk"])
def test_comment_never_contains_a_url_or_a_number(
    state: str, risk: float | None, reviewed: bool, language: str | None
) -> None:
    status = status_for(
        state, report(risk, Violation("phone", 4)), reviewed=reviewed, language=language
    )

    comment = status.comment or ""
    assert comment
    assert "http" not in comment and "://" not in comment and REPORT_URL not in comment
    assert not any(ch.isdigit() for ch in comment)


def test_timestamp_is_the_callers_state_change_time() -> None:
    earlier = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
    status = score_for("finished", report=None, profile=profile(), user_sub=SUB, timestamp=earlier)

    assert status.timestamp == earlier


@pytest.mark.parametrize(
    ("state", "rep", "at"),
    [
        ("reported", None, AT),
        ("teleported", None, AT),
        ("started", None, datetime(2030, 5, 1, 12, 30)),
    ],
)
def test_impossible_inputs_are_refused(state: str, rep: AttemptReport | None, at: datetime) -> None:
    with pytest.raises(ValueError):
        score_for(state, report=rep, profile=profile(), user_sub=SUB, timestamp=at)
