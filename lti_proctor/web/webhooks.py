"""The proctoring service's start/finish webhooks: authenticate, store, move the attempt, commit.

Answers are short text or JSON, never HTML, and no outbound call happens here: what the events
cause (gradebook, report) goes to the outbox in the same transaction.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from lti_proctor.attempts import operations as attempts
from lti_proctor.attempts.models import Attempt
from lti_proctor.attempts.states import AttemptStateError
from lti_proctor.extensions import db
from lti_proctor.proctoring.webhooks import (
    ATTEMPT_FIELD,
    SECRET_HEADER,
    SECRET_QUERY,
    WebhookAuthError,
    decode_body,
    find_attempt_ref,
    parse_event,
    verify_webhook,
)
from lti_proctor.reasons import Reason
from lti_proctor.timeutil import utcnow
from lti_proctor.web.errors import error_response

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)


def _text(status: int, reason: Reason) -> ResponseReturnValue:
    return error_response(reason, status, shape="text")


def _is_bad_json(raw: bytes, content_type: str | None) -> bool:
    """True when the body claims to be JSON but is not a JSON object."""
    if not (content_type or "").split(";")[0].strip().lower().endswith("json"):
        return False
    try:
        return not isinstance(json.loads(raw.decode("utf-8")), dict)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return True


@bp.post("/webhooks/trustexam/<any(start, finish):event>")
def trustexam_event(event: str) -> ResponseReturnValue:
    """Accept a start/finish event from the proctoring service."""
    raw, content_type = request.get_data(cache=True), request.content_type
    if not (request.headers.get(SECRET_HEADER) or request.args.get(SECRET_QUERY)):
        return _text(401, Reason.WEBHOOK_UNAUTHORIZED)
    if _is_bad_json(raw, content_type):
        return _text(400, Reason.WEBHOOK_BAD_BODY)
    ref = find_attempt_ref(decode_body(raw, content_type)) or request.args.get(ATTEMPT_FIELD)
    attempt = attempts.get_attempt(ref or "")
    if attempt is None:
        return _text(404, Reason.WEBHOOK_ATTEMPT_UNKNOWN)
    try:
        verify_webhook(dict(request.headers), request.args, expected=attempt.webhook_secret)
    except WebhookAuthError:
        return _text(401, Reason.WEBHOOK_UNAUTHORIZED)
    return _apply(attempt, event, raw, content_type)


def _apply(
    attempt: Attempt, event: str, raw: bytes, content_type: str | None
) -> ResponseReturnValue:
    now = utcnow()
    status: ResponseReturnValue = ({"ok": True}, 200)
    if attempts.record_webhook_event(
        attempt, kind=event, raw_body=raw, content_type=content_type, now=now
    ):
        try:
            attempts.apply_provider_event(attempt, parse_event(event, raw, content_type), now=now)
        except AttemptStateError as exc:
            log.warning("webhook %s for attempt %s: %s", event, attempt.id, exc)
            status = _text(409, Reason.ATTEMPT_STATE_CONFLICT)
    db.session.commit()
    return status
