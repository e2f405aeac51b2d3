"""In-process state of the sandbox proctoring service: sessions, attempts, actions and reports.

Plain Python, no Flask: the routes in sandbox/proctoring.py read the request and call these.
One process, one lock; this stands in for TrustExam in development and tests only.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lti_proctor.proctoring.profiles import REQUIRED_SETTINGS

SEVERITY = {"object_detected": "high", "head_many": "high", "noise_detect": "low"}
SETTINGS_FIELD = "assignment.settings.proctoring_settings"
Json = dict[str, Any]
WebhookCall = tuple[str, Json, dict[str, str]]


def mapping(value: object) -> Json:
    """The value when it is a dict, else an empty dict (bodies are read defensively)."""
    return value if isinstance(value, dict) else {}


@dataclass
class SandboxSession:
    """One external session: what the tool sent, and the attempt the SDK drove."""

    token: str
    id: int
    assignment_id: int
    student_id: int
    attempt_number: int
    payload: Json
    status: str = "pending"  # pending -> active -> closed
    attempt_id: int | None = None  # the service's attempt id, assigned at start
    started_at: datetime | None = None
    finished_at: datetime | None = None
    finished_clock: float | None = None
    actions: list[Json] = field(default_factory=list)
    deliveries: list[Json] = field(default_factory=list)  # webhook calls made, for inspection

    @property
    def assignment(self) -> Json:
        """The assignment block the tool sent last."""
        return mapping(self.payload.get("assignment"))

    @property
    def settings(self) -> Json:
        """The assignment settings block the tool sent last."""
        return mapping(self.assignment.get("settings"))

    @property
    def webhook(self) -> Json:
        """The webhook block the tool sent last."""
        return mapping(self.settings.get("webhook"))


@dataclass
class SandboxState:
    """Everything the sandbox knows; guarded by one lock."""

    api_key: str
    report_api_key: str
    report_delay_s: float
    max_attempts: int
    webhook_timeout_s: float
    clock: Callable[[], float]
    allowed_origins: frozenset[str] | None
    # How long a session upsert takes to answer: plays a slow service (tests of the launch's
    # starting page set it on a running sandbox; 0 answers at once).
    upsert_delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_token: dict[str, SandboxSession] = field(default_factory=dict)
    by_key: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_attempt: dict[int, SandboxSession] = field(default_factory=dict)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        """A fresh numeric id for sessions, attempts, assignments or students."""
        self.counters[kind] = self.counters.get(kind, 1000 if kind == "attempt" else 0) + 1
        return self.counters[kind]

    def id_for(self, kind: str, external_id: str) -> int:
        """The stable numeric id the service gives an external id."""
        known = self.ids.setdefault(kind, {})
        if external_id not in known:
            known[external_id] = self.next_id(kind)
        return known[external_id]

    def attempts_used(self, assignment_id: int, student_id: int) -> int:
        """How many attempts a student has started on an assignment."""
        return sum(
            1
            for s in self.by_token.values()
            if (s.assignment_id, s.student_id) == (assignment_id, student_id) and s.attempt_id
        )


def utc_now() -> datetime:
    """Now, in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(value: datetime | None) -> str | None:
    """A time as the service writes it (ISO 8601, Z)."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def validate_upsert(body: object) -> dict[str, list[str]]:
    """Laravel-style field errors for an upsert body; empty when it is acceptable."""
    if not isinstance(body, dict):
        return {"assignment": ["The assignment field is required."]}
    errors: dict[str, list[str]] = {}
    assignment, student = mapping(body.get("assignment")), mapping(body.get("student"))
    for prefix, block, names in (
        ("assignment", assignment, ("external_id", "name")),
        ("student", student, ("external_id", "name")),
    ):
        for name in names:
            if block.get(name) in (None, "") or isinstance(block.get(name), dict | list):
                errors[f"{prefix}.{name}"] = [f"The {prefix}.{name} field is required."]
    settings = mapping(assignment.get("settings"))
    proctoring = settings.get("proctoring_settings")
    if not isinstance(proctoring, dict):
        errors[SETTINGS_FIELD] = ["The proctoring settings are required."]
    elif missing := sorted(REQUIRED_SETTINGS - set(proctoring)):
        errors[SETTINGS_FIELD] = [
            "The proctoring settings must be a full object; missing: " + ", ".join(missing)
        ]
    webhook = settings.get("webhook", {})
    for name in ("start_url", "finish_url"):
        url = webhook.get(name) if isinstance(webhook, dict) else "?"
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https"))):
            errors[f"assignment.settings.webhook.{name}"] = ["The URL format is invalid."]
    return errors


def upsert_record(state: SandboxState, body: Json) -> SandboxSession:
    """Create the session, or refresh the open one for the same three external ids."""
    assignment_ext = str(body["assignment"]["external_id"])
    student_ext = str(body["student"]["external_id"])
    session_data = mapping(body.get("session_data"))
    key = (assignment_ext, student_ext, str(session_data.get("external_id") or ""))
    current = state.by_token.get(state.by_key.get(key, ""))
    if current is not None and current.status != "closed":
        current.payload = body  # same session until it is finished: same token
        return current
    assignment_id = state.id_for("assignment", assignment_ext)
    student_id = state.id_for("student", student_ext)
    session = SandboxSession(
        token=secrets.token_urlsafe(32),
        id=state.next_id("session"),
        assignment_id=assignment_id,
        student_id=student_id,
        attempt_number=state.attempts_used(assignment_id, student_id) + 1,
        payload=body,
    )
    state.by_token[session.token] = session
    state.by_key[key] = session.token
    return session


def build_report(session: SandboxSession) -> Json:
    """An AI report (§4.6 shape) derived from the actions the SDK recorded."""
    warnings = [a for a in session.actions if a["is_warning"]]
    credibility = max(0, 100 - 12 * len(warnings))
    risk = 100 - credibility
    counts: dict[str, int] = {}
    for action in warnings:
        counts[action["action_type"]] = counts.get(action["action_type"], 0) + 1
    return {
        "attempt_id": session.attempt_id,
        "overall_risk_score": risk,
        "risk_level": "low" if risk < 34 else "medium" if risk < 67 else "high",
        "credibility": credibility,
        "summary": f"{len(warnings)} violation(s) recorded by the sandbox proctoring service.",
        "violations": [
            {"type": kind, "count": n, "severity": SEVERITY.get(kind, "medium")}
            for kind, n in counts.items()
        ],
        "timeline": [
            {
                "at": a["created_at"],
                "offset_sec": a["offset_sec"],
                "action_type": a["action_type"],
                "is_warning": a["is_warning"],
                "description": a["description"],
            }
            for a in session.actions
        ],
        "recommendations": ["Review the flagged moments in the timeline."] if warnings else [],
    }


def sdk_view(state: SandboxState, session: SandboxSession) -> Json:
    """What the SDK is told about its session."""
    settings = mapping(session.settings.get("proctoring_settings"))
    used = state.attempts_used(session.assignment_id, session.student_id)
    return {
        "status": session.status,
        "finished": session.status == "closed",
        "can_start_new_attempt": session.status != "active" and used < state.max_attempts,
        "attempt": attempt_json(session),
        "application": session.assignment.get("application", "browser"),
        "settings": {"content_protect": int(bool(settings.get("content_protect")))},
    }


def record_action(
    session: SandboxSession, kind: str, description: str | None, *, warning: bool
) -> Json:
    """Append one action (a violation when warning) to the attempt's timeline."""
    now = utc_now()
    started = session.started_at or now
    action = {
        "id": len(session.actions) + 1,
        "assignment_attempt_id": session.attempt_id,
        "action_type": kind,
        "description": description,
        "is_warning": 1 if warning else 0,
        "created_at": iso(now),
        "offset_sec": int((now - started).total_seconds()),
    }
    session.actions.append(action)
    return action


def attempt_json(session: SandboxSession) -> Json | None:
    """The attempt as webhooks carry it (StudentAttempt fields), or None before the start."""
    if session.attempt_id is None:
        return None
    attempt: Json = {
        "id": session.attempt_id,
        "attempt": session.attempt_number,
        "status": session.status,
        "started_at": iso(session.started_at),
    }
    if session.status == "closed":
        report = build_report(session)
        attempt["finished_at"] = iso(session.finished_at)
        attempt["credibility"] = report["credibility"]
        if session.started_at and session.finished_at:
            spent = session.finished_at - session.started_at
            attempt["spending_time"] = int(spent.total_seconds())
    return attempt


def webhook_call(session: SandboxSession, event: str, *, base_url: str) -> WebhookCall | None:
    """URL, JSON body and headers of a start/finish webhook (§4.5); None without a URL.

    As the contract assumes: `post` merged into the body, `query` appended to the URL, `headers`
    added to the request.
    """
    hook = session.webhook
    url = hook.get(f"{event}_url")
    if not isinstance(url, str) or not url:
        return None
    session_data = mapping(session.payload.get("session_data"))
    body: Json = {
        "event": event,
        "status": "active" if event == "start" else "closed",
        "attempt": attempt_json(session),
        "assignment": {
            "id": session.assignment_id,
            "external_id": session.assignment["external_id"],
        },
        "student": {
            "id": session.student_id,
            "external_id": mapping(session.payload.get("student")).get("external_id"),
        },
        "session_data": {"external_id": session_data.get("external_id")},
        "metadata": {"application": session.assignment.get("application", "browser")},
        "report_url": report_url(session, base_url),
        "timestamp": iso(utc_now()),
    }
    if event == "start":
        body.pop("report_url")
    body.update(mapping(hook.get("post")))
    headers = {"Content-Type": "application/json", "User-Agent": "sandbox-proctoring/1"}
    headers.update({str(k): str(v) for k, v in mapping(hook.get("headers")).items()})
    return with_query(url, mapping(hook.get("query"))), body, headers


def report_url(session: SandboxSession, base_url: str) -> str:
    """The human report page of a session (what the service calls report_url)."""
    return f"{base_url}/report/session/{session.id}"


def with_query(url: str, extra: Mapping[str, Any]) -> str:
    """The URL with extra query parameters appended to those it has."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    pairs += [(str(k), str(v)) for k, v in extra.items()]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


class SandboxConflictError(Exception):
    """The SDK asked for a step the attempt's state does not allow."""


def start_attempt(state: SandboxState, session: SandboxSession) -> bool:
    """Open the session's attempt; False when it was already open (a repeated start)."""
    if session.status == "closed":
        raise SandboxConflictError("This proctoring attempt is already finished.")
    if session.status == "active":
        return False
    session.status, session.started_at = "active", utc_now()
    session.attempt_id = state.next_id("attempt")
    state.by_attempt[session.attempt_id] = session
    record_action(session, "started", "Attempt started", warning=False)
    return True


def finish_attempt(state: SandboxState, session: SandboxSession) -> bool:
    """Close the session's attempt; False when it was already closed (a repeated finish)."""
    if session.status == "pending":
        raise SandboxConflictError("This proctoring attempt has not started.")
    if session.status == "closed":
        return False
    record_action(session, "finished", "Attempt finished", warning=False)
    session.status, session.finished_at = "closed", utc_now()
    session.finished_clock = state.clock()
    return True


def report_is_ready(state: SandboxState, session: SandboxSession | None) -> bool:
    """True once the attempt is finished and the configured report delay has passed."""
    if session is None or session.finished_clock is None:
        return False
    return state.clock() - session.finished_clock >= state.report_delay_s


def find_session(state: SandboxState, session_id: int) -> SandboxSession | None:
    """The session with this numeric id, if any."""
    return next((s for s in state.by_token.values() if s.id == session_id), None)
