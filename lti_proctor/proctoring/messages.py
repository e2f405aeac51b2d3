"""The proctoring service's message shapes: the session body we send and the answers we parse.

The contract's assumptions about bodies (trustexam-api.md §4.3 request, §4.4 response, §4.6 AI
report) live here, in one place; client.py owns the transport (URLs, auth, retries).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from lti_proctor.proctoring.errors import ProviderRejectedError
from lti_proctor.proctoring.types import (
    AttemptReport,
    SessionRequest,
    SessionResult,
    TimelineEntry,
    Violation,
)
from lti_proctor.proctoring.webhooks import ATTEMPT_FIELD, SECRET_HEADER, SECRET_QUERY, parse_time


def build_session_body(req: SessionRequest) -> dict[str, Any]:
    """The upsert JSON body of trustexam-api.md §4.3 for one attempt."""
    settings: dict[str, Any] = {
        "proctoring_settings": dict(req.profile.proctoring_settings),
        "webhook": {
            "start_url": req.webhook_start_url,
            "finish_url": req.webhook_finish_url,
            "post": {ATTEMPT_FIELD: req.attempt_id},
            # Our attempt id in the URL too: the receiver finds the attempt and checks the
            # secret before it reads the body.
            "query": {SECRET_QUERY: req.webhook_secret, ATTEMPT_FIELD: req.attempt_id},
            "headers": {SECRET_HEADER: req.webhook_secret},
        },
    }
    if req.exit_url:
        settings["exit_url"] = req.exit_url
    assignment: dict[str, Any] = {
        "external_id": req.assignment_external_id,
        "name": req.assignment_name,
        "type": "external",
        "application": req.profile.application,
        "is_proctoring": True,
    }
    if req.external_url:
        assignment["external_url"] = req.external_url
    assignment["settings"] = settings
    student: dict[str, Any] = {"external_id": req.student_external_id, "name": req.student_name}
    optional = {
        "firstname": req.student_firstname,
        "lastname": req.student_lastname,
        "email": req.student_email,
    }
    student.update({k: v for k, v in optional.items() if v})
    body: dict[str, Any] = {
        "assignment": assignment,
        "student": student,
        "application": req.profile.application,  # U1: also top level, as the seed has it
        "session_data": {"external_id": req.attempt_id},
    }
    if req.group_external_id:
        body["group"] = {
            "external_id": req.group_external_id,
            "name": req.group_name or req.group_external_id,
        }
    return body


# Limits on what the upsert answer may put in our columns (attempt.token is sealed text; the
# others match their columns): an answer over them is refused before anything is stored.
TOKEN_MAX = 8192
URL_MAX = 2048
SESSION_ID_MAX = 191


def parse_session_result(body: Mapping[str, Any]) -> SessionResult:
    """Read the upsert answer (§4.4): token required; report_url top level or in the session.

    Raises ProviderRejectedError when a value has the wrong type or is over its limit.
    """
    session = body.get("external_session")
    session = session if isinstance(session, Mapping) else {}
    token = session.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ProviderRejectedError("the answer has no external_session.token", status=200)
    session_id = session.get("id")
    if isinstance(session_id, bool) or not isinstance(session_id, str | int | None):
        raise ProviderRejectedError("external_session.id is not a string or number", status=200)
    result = SessionResult(
        token=token,
        report_url=_str(body.get("report_url")) or _str(session.get("report_url")),
        session_url=_str(body.get("session_url")),
        session_id=None if session_id is None or session_id == "" else str(session_id),
        raw=dict(body),
    )
    for name, value, limit in (
        ("external_session.token", result.token, TOKEN_MAX),
        ("report_url", result.report_url, URL_MAX),
        ("session_url", result.session_url, URL_MAX),
        ("external_session.id", result.session_id, SESSION_ID_MAX),
    ):
        if value is not None and len(value) > limit:
            raise ProviderRejectedError(f"{name} is longer than {limit} characters", status=200)
    return result


def parse_report(body: Mapping[str, Any]) -> AttemptReport:
    """Read an AI report defensively (§4.6); risk = overall_risk_score, else 100 - credibility."""
    entity = body.get("entity")
    if isinstance(entity, Mapping) and "overall_risk_score" not in body:
        body = entity  # the platform's {status, entity} envelope, should the report use it
    risk, source = _risk(body)
    timeline = _timeline(body.get("timeline"))
    violations = _violations(body.get("violations"))
    if body.get("violations") is None and timeline:
        violations = _violations_from(timeline)
    return AttemptReport(
        risk_score=risk,
        risk_source=source,
        risk_level=_str(body.get("risk_level")),
        summary=_str(body.get("summary")),
        violations=violations,
        timeline=timeline,
        recommendations=_strings(body.get("recommendations")),
        raw=dict(body),
    )


def _risk(
    body: Mapping[str, Any],
) -> tuple[float | None, Literal["overall_risk_score", "credibility", "none"]]:
    overall = _number(body.get("overall_risk_score"))
    if overall is not None:
        return _clamp(overall), "overall_risk_score"
    credibility = _number(body.get("credibility"))
    if credibility is not None:
        return 100 - _clamp(credibility), "credibility"
    return None, "none"


def _violations(value: object) -> tuple[Violation, ...]:
    found = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind = _str(item.get("type")) or _str(item.get("action_type")) or _str(item.get("name"))
        if kind:
            count = _number(item.get("count"))
            found.append(
                Violation(kind, max(1, int(count)) if count else 1, _str(item.get("severity")))
            )
    return tuple(found)


def _violations_from(timeline: tuple[TimelineEntry, ...]) -> tuple[Violation, ...]:
    counts: dict[str, int] = {}
    for entry in timeline:
        if entry.is_warning:
            counts[entry.action_type] = counts.get(entry.action_type, 0) + 1
    return tuple(Violation(kind, n) for kind, n in counts.items())


def _timeline(value: object) -> tuple[TimelineEntry, ...]:
    entries = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind = _str(item.get("action_type")) or _str(item.get("type"))
        if not kind:
            continue
        entries.append(
            TimelineEntry(
                at=_str(item.get("at")) or _str(item.get("created_at")),
                action_type=kind,
                is_warning=item.get("is_warning") in (1, True, "1", "true"),
                description=_str(item.get("description")),
                offset_sec=_number(item.get("offset_sec")),
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return tuple(sorted(entries, key=lambda e: (parse_time(e.at) or far, e.offset_sec or 0)))


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v.strip())
    return ()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))
