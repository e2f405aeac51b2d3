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


def test_low_risk_report_is_fully_graded_with_integrity_score() -> None:
    status = status_for("reported", report(23, Violation("face_missing", 2)))

    assert (status.activity_progress, status.grading_progress) == ("Completed", "FullyGraded")
    assert (status.score_given, status.score_maximum) == (77.0, 100.0)
    assert status.grading_progress not in NEEDS_A_PERSON
    assert (
        status.comment == "Proctoring report: risk score 23 of 100, 2 violations; no review needed."
    )


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
    assert "risk score 80 of 100" in (status.comment or "")
    assert "4 violations" in (status.comment or "")
    assert "instructor will review" in (status.comment or "")


def test_report_without_a_risk_score_goes_to_manual_review() -> None:
    status = status_for("reported", report(None))

    assert status.grading_progress == "PendingManual"
    assert status.score_given is None
    assert "no risk score" in (status.comment or "")


def test_profile_sets_threshold_and_score_maximum() -> None:
    strict = profile(review_threshold=20, score_maximum=10)

    assert status_for("reported", report(25), profile=strict).grading_progress == "PendingManual"
    graded = status_for("reported", report(15), profile=strict)
    assert (graded.score_given, graded.score_maximum) == (8.5, 10.0)


def test_violation_count_passed_in_overrides_the_report() -> None:
    status = status_for("reported", report(10, Violation("tab_switch", 5)), violation_count=1)

    assert "1 violation;" in (status.comment or "")


@pytest.mark.parametrize("state", ["created", "started", "finished", "failed", "reported"])
@pytest.mark.parametrize("risk", [10.0, 90.0, None])
def test_comment_never_contains_a_url(state: str, risk: float | None) -> None:
    status = status_for(state, report(risk, Violation("phone")))

    comment = status.comment or ""
    assert "http" not in comment and "://" not in comment and REPORT_URL not in comment


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
