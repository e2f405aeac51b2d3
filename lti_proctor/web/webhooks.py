"""The proctoring service's start/finish webhooks: authenticate, then parse, store, apply, commit.

The body is read only after the secret matched (our attempt id rides in the query), and parsed
once; its size is bounded app-wide (MAX_CONTENT_LENGTH, 413). Answers are short text or JSON,
never HTML, and no outbound call happens here: what the events cause (gradebook, report) goes to
the outbox in the same transaction as the move. The ack waits only for what makes the event
durable (attempts/events.py): one read of the secret, then one write (PostgreSQL).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from lti_proctor.attempts import events
from lti_proctor.attempts.states import AttemptStateError
from lti_proctor.extensions import db
from lti_proctor.proctoring.webhooks import (
    ATTEMPT_FIELD,
    SECRET_HEADER,
    SECRET_QUERY,
    WebhookAuthError,
    WebhookBodyError,
    find_attempt_ref,
    read_body,
    read_event,
    verify_webhook,
)
from lti_proctor.reasons import Reason
from lti_proctor.timeutil import utcnow
from lti_proctor.web.errors import error_response

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)
_REF = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # our attempt ids are uuid4 strings


def _text(status: int, reason: Reason) -> ResponseReturnValue:
    return error_response(reason, status, shape="text")


@bp.post("/webhooks/trustexam/<any(start, finish):event>")
def trustexam_event(event: str) -> ResponseReturnValue:
    """Accept a start/finish event from the proctoring service."""
    if not (request.headers.get(SECRET_HEADER) or request.args.get(SECRET_QUERY)):
        return _text(401, Reason.WEBHOOK_UNAUTHORIZED)
    try:
        attempt_id, body = _verified_attempt()
        if attempt_id is None:
            return _text(404, Reason.WEBHOOK_ATTEMPT_UNKNOWN)
        if body is None:
            body = read_body(_raw_body(), request.content_type)
    except WebhookAuthError:
        return _text(401, Reason.WEBHOOK_UNAUTHORIZED)
    except WebhookBodyError:
        return _text(400, Reason.WEBHOOK_BAD_BODY)
    return _apply(attempt_id, event, body)


def _raw_body() -> bytes:
    """The body, at most MAX_CONTENT_LENGTH bytes of it; 413 past that.

    Werkzeug refuses a declared Content-Length over the limit before reading, but a streamed
    (chunked) body is cut at the limit without an error, so a body that fills it is refused here.
    """
    raw = request.get_data()
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        raise RequestEntityTooLarge()
    return raw


def _verified_attempt() -> tuple[str | None, dict[str, Any] | None]:
    """The id of the attempt whose secret the delivery carries (None: no such attempt), and the
    body if it had to be read for it.

    Sessions created before our attempt id rode in the query name the attempt only in the body;
    for those the body (bounded by MAX_CONTENT_LENGTH) is read and parsed, once, before the check.
    """
    ref, body = request.args.get(ATTEMPT_FIELD), None
    if not ref:
        body = read_body(_raw_body(), request.content_type)
        ref = find_attempt_ref(body)
    secret = events.find_webhook_secret(ref) if ref and _REF.match(ref) else None
    if secret is None:
        return None, body
    verify_webhook(dict(request.headers), request.args, expected=secret)
    return ref, body


def _apply(attempt_id: str, event: str, body: dict[str, Any]) -> ResponseReturnValue:
    try:
        events.receive_provider_event(
            attempt_id,
            read_event(event, body),
            raw_body=_raw_body(),
            content_type=request.content_type,
            now=utcnow(),
        )
    except AttemptStateError as exc:
        log.warning("webhook %s for attempt %s: %s", event, attempt_id, exc)
        db.session.commit()  # the event stays on record
        return _text(409, Reason.ATTEMPT_STATE_CONFLICT)
    except IntegrityError:  # its only foreign key: the attempt went (a registration removed)
        db.session.rollback()  # since its secret was read; nothing of the delivery is kept
        return _text(404, Reason.WEBHOOK_ATTEMPT_UNKNOWN)
    db.session.commit()
    return {"ok": True}, 200
