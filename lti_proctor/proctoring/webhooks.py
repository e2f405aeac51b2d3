"""Reading the service's start/finish webhooks: check our per-attempt secret, then parse the body.

Pure functions on plain values; the web view reads the request and passes headers, query and the
raw body in. The service does not sign webhooks (trustexam-api.md U5), so the secret we put in
`webhook.headers` and `webhook.query` at session creation is what makes a delivery authentic; our
attempt id rides in `webhook.query` too, so the receiver finds the attempt and checks the secret
before it reads the body. Values read from a body are bounded (length, no NUL) before anyone
stores them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from lti_proctor.proctoring.errors import WebhookAuthError, WebhookBodyError
from lti_proctor.proctoring.types import EventKind, ProviderEvent

__all__ = [
    "ATTEMPT_FIELD",
    "SECRET_HEADER",
    "SECRET_QUERY",
    "WebhookAuthError",
    "WebhookBodyError",
    "decode_body",
    "event_key",
    "find_attempt_ref",
    "parse_event",
    "read_body",
    "read_event",
    "verify_webhook",
]

SECRET_HEADER = "X-Tool-Webhook-Secret"  # sent in webhook.headers
SECRET_QUERY = "sig"  # sent in webhook.query
ATTEMPT_FIELD = "attempt_id"  # sent in webhook.post: our attempt id, echoed in the body
EVENT_KINDS: tuple[EventKind, ...] = ("start", "finish")
MAX_ID_CHARS = 191  # the longest id we store (the attempt table's service ids)
MAX_URL_CHARS = 2048
_DIGITS = re.compile(r"^\d+$")
_BRACKET = re.compile(r"\[([^\]]*)\]")


def verify_webhook(
    headers: Mapping[str, str], query: Mapping[str, str], *, expected: str | None
) -> None:
    """Raise WebhookAuthError unless the delivery carries our secret (never says which part failed).

    Every copy of the secret that arrived (header, query) must match, and at least one must have
    arrived: the contract does not say whether the service echoes both (U5), and each copy alone
    is the full secret.
    """
    presented = [v for v in (_header(headers, SECRET_HEADER), query.get(SECRET_QUERY)) if v]
    want = (expected or "").encode()
    results = [hmac.compare_digest(str(v).encode(), want) for v in presented]
    if not want or not results or not all(results):
        raise WebhookAuthError()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def decode_body(raw_body: bytes, content_type: str | None) -> dict[str, Any]:
    """The webhook body as a dict, from JSON or a form; anything unreadable gives {}."""
    kind = (content_type or "").split(";")[0].strip().lower()
    text = raw_body.decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    if kind.endswith("json") or (not kind.endswith("urlencoded") and text[:1] in "{["):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return data
        if kind.endswith("json"):
            return {}
    return _form_to_dict(parse_qsl(text, keep_blank_values=True))


def read_body(raw_body: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a dict (decode_body), but WebhookBodyError when it says JSON and is no object."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind.endswith("json"):
        try:
            data = json.loads(raw_body.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise WebhookBodyError() from exc
        if not isinstance(data, dict):
            raise WebhookBodyError()
        return data
    return decode_body(raw_body, content_type)


def _form_to_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn form pairs into nested dicts, reading PHP-style keys: a[b]=1 -> {"a": {"b": "1"}}."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        path = [head, *_BRACKET.findall("[" + rest)] if rest else [head]
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return out


def find_attempt_ref(body: Mapping[str, Any]) -> str | None:
    """Our attempt id: post echo, then session_data.external_id, external_id, any *attempt* key.

    Our ids are opaque, non-numeric strings; a purely numeric value is the service's own id.
    """
    session_data = body.get("session_data")
    candidates = [
        body.get(ATTEMPT_FIELD),
        session_data.get("external_id") if isinstance(session_data, Mapping) else None,
        body.get("external_id"),
    ]
    for value in candidates:
        ref = _our_ref(value)
        if ref:
            return ref
    return _search_attempt_keys(body, depth=0)


def _our_ref(value: object) -> str | None:
    if isinstance(value, str) and value.strip() and not _DIGITS.match(value.strip()):
        return _bounded(value.strip(), MAX_ID_CHARS)
    return None


def _bounded(text: str, limit: int) -> str | None:
    """text when it fits a column and holds no NUL (PostgreSQL refuses those), else None."""
    return text if len(text) <= limit and "\x00" not in text else None


def _search_attempt_keys(body: Mapping[str, Any], *, depth: int) -> str | None:
    nested: list[Mapping[str, Any]] = []
    for key, value in body.items():
        if "attempt" in str(key).lower() and _our_ref(value):
            return _our_ref(value)
        if isinstance(value, Mapping):
            nested.append(value)
    if depth >= 3:
        return None
    for child in nested:
        found = _search_attempt_keys(child, depth=depth + 1)
        if found:
            return found
    return None


def find_service_attempt_id(body: Mapping[str, Any]) -> str | None:
    """The service's attempt id: attempt.id, else attempt_id when numeric, else id.

    An id longer than the service's own limit (191) is not one: it reads as absent.
    """
    attempt = body.get("attempt")
    if isinstance(attempt, Mapping) and _scalar(attempt.get("id")):
        found = _scalar(attempt.get("id"))
    else:
        echoed = _scalar(body.get(ATTEMPT_FIELD))
        found = echoed if echoed and _DIGITS.match(echoed) else _scalar(body.get("id"))
    return found if found is None or len(found) <= MAX_ID_CHARS else None


def _scalar(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return _bounded(text, MAX_ID_CHARS) if text else None


def parse_event(event: str, raw_body: bytes, content_type: str | None) -> ProviderEvent:
    """Parse a verified start/finish delivery; unknown shapes give None fields, never an error."""
    return read_event(event, decode_body(raw_body, content_type))


def read_event(event: str, body: Mapping[str, Any]) -> ProviderEvent:
    """The event of an already decoded body (read_body); unknown shapes give None fields."""
    kind = event.strip().lower()
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown webhook event {event!r}")
    attempt = body.get("attempt")
    attempt = attempt if isinstance(attempt, Mapping) else {}
    status = _scalar(attempt.get("status")) or _scalar(body.get("status"))
    return ProviderEvent(
        kind="start" if kind == "start" else "finish",
        attempt_ref=find_attempt_ref(body),
        service_attempt_id=find_service_attempt_id(body),
        status=status.lower() if status else None,
        started_at=parse_time(attempt.get("started_at")),
        finished_at=parse_time(attempt.get("finished_at")),
        occurred_at=parse_time(body.get("timestamp")),
        report_url=_url(body.get("report_url")) or _url(attempt.get("report_url")),
        raw=body,
        event_id=_scalar(body.get("event_id")),
    )


def event_key(event: ProviderEvent, raw_body: bytes) -> str:
    """What identifies this event among re-deliveries: the service's event id, else its timestamp,
    else the body's hash (the contract names no event id, U17; a timestamp is our assumption)."""
    if event.event_id:
        return "id:" + event.event_id
    if event.occurred_at is not None:
        return "at:" + event.occurred_at.astimezone(UTC).isoformat()
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def parse_time(value: object) -> datetime | None:
    """An aware time from ISO 8601 (UTC if no offset) or unix seconds; anything else is None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _DIGITS.match(text):
        return parse_time(int(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return _bounded(value, MAX_URL_CHARS)
    return None
