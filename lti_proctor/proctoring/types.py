"""Plain values we send to the proctoring service and get back from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Application = Literal["browser", "tray", "desktop"]
StartProof = Literal["webhook", "sdk"]
EventKind = Literal["start", "finish"]
GradebookScore = Literal["none", "integrity"]


@dataclass(frozen=True)
class Profile:
    """A proctoring profile: the service settings plus the tool's own rules for an exam."""

    name: str
    proctoring_settings: Mapping[str, Any]
    application: Application = "browser"
    start_proof: StartProof = "webhook"  # what counts as started: the service's webhook or the SDK
    protector_text_color: str = "#1f2937"
    review_threshold: int = 50  # risk at or above this -> PendingManual (a person reviews)
    score_maximum: int = 100
    # What the gradebook gets besides the status: "none" (the default: students read the column,
    # and Canvas counts a number toward the course grade), or "integrity" (100 - risk).
    gradebook_score: GradebookScore = "none"
    description: str = ""  # one line, shown where an instructor picks the profile
    # How long an attempt may stay started / finished (report not in) before `attempts reconcile`
    # asks the service about it or flags it for a person.
    max_started_minutes: int = 360
    max_finished_minutes: int = 1560  # past the report poll's 24 h horizon


@dataclass(frozen=True)
class SessionRequest:
    """What we ask the service to upsert for one proctored attempt."""

    assignment_external_id: str
    assignment_name: str
    student_external_id: str
    student_name: str
    attempt_id: str
    profile: Profile
    webhook_start_url: str
    webhook_finish_url: str
    webhook_secret: str
    external_url: str | None = None
    exit_url: str | None = None
    student_firstname: str | None = None
    student_lastname: str | None = None
    student_email: str | None = None
    group_external_id: str | None = None
    group_name: str | None = None


@dataclass(frozen=True)
class SessionResult:
    """The service's answer to a session upsert (the raw body is kept)."""

    token: str
    report_url: str | None
    session_url: str | None
    session_id: str | None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    """One kind of violation and how often it happened."""

    type: str
    count: int = 1
    severity: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One event on the attempt timeline."""

    at: str | None
    action_type: str
    is_warning: bool = False
    description: str | None = None
    offset_sec: float | None = None


@dataclass(frozen=True)
class AttemptReport:
    """The AI attempt report, parsed defensively; risk_source says where risk_score came from."""

    risk_score: float | None
    risk_source: Literal["overall_risk_score", "credibility", "none"]
    risk_level: str | None
    summary: str | None
    violations: tuple[Violation, ...]
    timeline: tuple[TimelineEntry, ...]
    recommendations: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def violation_count(self) -> int:
        """Total number of violations across kinds."""
        return sum(v.count for v in self.violations)


@dataclass(frozen=True)
class ProviderEvent:
    """A start or finish webhook from the service, read defensively (the raw body is kept).

    attempt_ref is our attempt id as echoed back; service_attempt_id is the service's own attempt
    id (what the AI report asks for). Unknown statuses stay as sent; scores are not trusted here.
    """

    kind: EventKind
    attempt_ref: str | None
    service_attempt_id: str | None
    status: str | None
    started_at: datetime | None
    finished_at: datetime | None
    occurred_at: datetime | None
    report_url: str | None
    raw: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None  # the service's own id of this event, if it sends one
