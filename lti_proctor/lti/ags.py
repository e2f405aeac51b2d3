"""AGS client: the tool's line item and its scores in the LMS gradebook (LTI AGS 2.0).

Knows LTI only, nothing of proctoring. Service tokens come from `service_tokens` (cached in the
shared store); keys, store and HTTP session are passed in. Callers import everything from here:

AgsError(status, lms_answer, retry_after_s)          defined in lti/service_http.py
  AgsUnavailableError        timeouts, connection errors, 408, 429, 5xx -> retryable
  AgsRejectedError           a 4xx that retrying cannot fix (user not enrolled, key unknown...)
    LineItemGoneError        404 on a line item or its scores: re-create the line item

A score older than the one the LMS holds is not an error: post_score() returns SUPERSEDED.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

import lti_proctor.metrics as metrics
from lti_proctor.lti.service_http import (
    AgsError,
    AgsRejectedError,
    AgsUnavailableError,
    LineItemGoneError,
    json_list,
    json_object,
    lms_answer,
    next_page,
    raise_for_status,
    send,
)
from lti_proctor.lti.service_tokens import (
    PlatformCredentials,
    ServiceTokens,
    SigningKeyProvider,
    TokenStore,
    TolerantStore,
    wait_while_locked,
)

__all__ = [
    "ActivityProgress",
    "AgsClient",
    "AgsError",
    "AgsRejectedError",
    "AgsUnavailableError",
    "GradingProgress",
    "LineItemGoneError",
    "PlatformCredentials",
    "Score",
    "ScoreOutcome",
    "SigningKeyProvider",
    "TokenStore",
]

log = logging.getLogger(__name__)

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
DEFAULT_SCOPES = frozenset({SCOPE_LINEITEM, SCOPE_SCORE})

CT_SCORE = "application/vnd.ims.lis.v1.score+json"
CT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CT_LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"

PROCTORING_TAG = "proctoring"
MAX_LINEITEM_PAGES = 20


class ActivityProgress(StrEnum):
    """AGS activityProgress: where the user is in the activity."""

    INITIALIZED = "Initialized"
    STARTED = "Started"
    IN_PROGRESS = "InProgress"
    SUBMITTED = "Submitted"
    COMPLETED = "Completed"


class GradingProgress(StrEnum):
    """AGS gradingProgress: where grading of the activity stands."""

    NOT_READY = "NotReady"
    FAILED = "Failed"
    PENDING = "Pending"
    PENDING_MANUAL = "PendingManual"
    FULLY_GRADED = "FullyGraded"


class ScoreOutcome(StrEnum):
    """What became of a posted score."""

    ACCEPTED = "accepted"
    SUPERSEDED = "superseded"  # the LMS holds a score with a newer (or the same) timestamp
    ALREADY_APPLIED = "already_applied"  # the LMS holds this very score (a repeated post)


@dataclass(frozen=True)
class Score:
    """One AGS score for one user on one line item."""

    user_id: str
    activity_progress: ActivityProgress
    grading_progress: GradingProgress
    timestamp: datetime
    score_given: float | None = None
    score_maximum: float | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("Score.timestamp must carry a timezone")
        if (self.score_given is None) != (self.score_maximum is None):
            raise ValueError("scoreGiven and scoreMaximum go together")
        if self.score_maximum is not None and self.score_maximum <= 0:
            raise ValueError("scoreMaximum must be positive")
        if self.score_given is not None and self.score_given < 0:
            raise ValueError("scoreGiven must not be negative")

    def to_json(self) -> dict[str, Any]:
        """The score+json body."""
        body: dict[str, Any] = {
            "userId": self.user_id,
            "activityProgress": str(self.activity_progress),
            "gradingProgress": str(self.grading_progress),
            "timestamp": format_timestamp(self.timestamp),
        }
        if self.score_given is not None:
            body["scoreGiven"] = self.score_given
            body["scoreMaximum"] = self.score_maximum
        if self.comment:
            body["comment"] = self.comment
        return body


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as AGS asks ("2024-05-01T10:00:00.123+00:00")."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def scores_url(lineitem_url: str) -> str:
    """The scores endpoint of a line item: /scores goes before the query (Moodle's ?type_id=)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def with_query(url: str, params: Mapping[str, str]) -> str:
    """Add query parameters to url, keeping the ones it already has (Moodle's type_id)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))


def usable_scopes(granted: Iterable[str]) -> frozenset[str]:
    """The AGS scopes this client needs that the launch's AGS claim grants."""
    return DEFAULT_SCOPES & frozenset(granted)


# Moodle refuses an older (or same-second) score with 409; Canvas with 400 "Provided timestamp
# of ... before last updated timestamp of ..."; Open edX's lti_consumer with 400 {"timestamp":
# ["Score timestamp can only be updated to a later point in time"]}.
_OUTDATED = re.compile(
    r"timestamp.*\b(before|earlier|older)\b|\b(earlier|older)\b.*timestamp"
    r"|updated to a later point in time",
    re.I,
)
# Open edX answers a repeat of the score it holds with 400 "Score already exists for the
# provided timestamp": the post already took effect, so there is nothing left to do.
_ALREADY_APPLIED = re.compile(r"already exists for the provided timestamp", re.I)


def _refused_score_outcome(resp: requests.Response) -> ScoreOutcome | None:
    """What a refused score post means when the LMS refuses it for its timestamp; else None.

    Read the raw body, not only lms_answer(): Open edX puts its message in a DRF field list.
    """
    if resp.status_code == 409:
        return ScoreOutcome.SUPERSEDED
    if resp.status_code != 400:
        return None
    said = f"{lms_answer(resp)} {resp.text[:2000]}"
    if _ALREADY_APPLIED.search(said):
        return ScoreOutcome.ALREADY_APPLIED
    return ScoreOutcome.SUPERSEDED if _OUTDATED.search(said) else None


class AgsClient:
    """Line items and scores on one platform, with service tokens shared through the store."""

    def __init__(
        self,
        credentials: PlatformCredentials,
        *,
        store: TokenStore,
        signer: SigningKeyProvider,
        session: requests.Session | None = None,
        timeout: float = 10,
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        self._session = session or requests.Session()
        self._store, self._timeout = TolerantStore(store), timeout
        self.tokens = ServiceTokens(
            credentials,
            scopes,
            store=self._store,
            signer=signer,
            session=self._session,
            timeout=timeout,
        )

    def find_line_item(
        self, lineitems_url: str, *, resource_link_id: str, tag: str = PROCTORING_TAG
    ) -> str | None:
        """Return the id (URL) of the line item with this tag on this resource link, if any."""
        url: str | None = with_query(
            lineitems_url, {"resource_link_id": resource_link_id, "tag": tag}
        )
        for _ in range(MAX_LINEITEM_PAGES):
            if url is None:
                break
            resp = self._call("GET", url, accept=CT_LINEITEM_CONTAINER)
            raise_for_status(resp, what="line items")
            for item in json_list(resp, what="line items"):
                # Filter again: a platform may ignore the query parameters.
                if item.get("tag") == tag and str(item.get("resourceLinkId")) == resource_link_id:
                    if isinstance(item.get("id"), str):
                        return str(item["id"])
            url = next_page(resp)
        return None

    def create_line_item(
        self,
        lineitems_url: str,
        *,
        resource_link_id: str,
        label: str,
        score_maximum: float,
        tag: str = PROCTORING_TAG,
        resource_id: str | None = None,
    ) -> str:
        """Create a line item on the resource link and return its id (URL)."""
        body: dict[str, Any] = {
            "scoreMaximum": score_maximum,
            "label": label,
            "resourceLinkId": resource_link_id,
            "tag": tag,
        }
        if resource_id is not None:
            body["resourceId"] = resource_id
        resp = self._call(
            "POST", lineitems_url, accept=CT_LINEITEM, content_type=CT_LINEITEM, body=body
        )
        raise_for_status(resp, what="line item creation")
        item_id = json_object(resp, what="line item creation").get("id")
        if not isinstance(item_id, str) or not item_id:
            raise AgsRejectedError("The LMS created a line item but sent no id for it.")
        log.info("AGS line item created for resource link %s: %s", resource_link_id, item_id)
        return item_id

    def find_or_create_line_item(
        self,
        lineitems_url: str,
        *,
        resource_link_id: str,
        label: str,
        score_maximum: float,
        tag: str = PROCTORING_TAG,
        resource_id: str | None = None,
    ) -> str:
        """Return the line item for (resource link, tag), creating it once if it is missing."""
        found = self.find_line_item(lineitems_url, resource_link_id=resource_link_id, tag=tag)
        if found:
            return found
        # Many attempts of one exam start together: one worker creates, the others find it.
        lock = (
            "lti-ags-lineitem:"
            + hashlib.sha256(f"{lineitems_url}\n{resource_link_id}\n{tag}".encode()).hexdigest()
        )
        locked = self._store.add(lock, "1", ttl_s=3 * self._timeout + 5)
        if not locked:
            wait_while_locked(self._store, lock, wait_s=3 * self._timeout + 1)
        try:
            # Look again: another worker may have created it since our first look.
            found = self.find_line_item(lineitems_url, resource_link_id=resource_link_id, tag=tag)
            if found:
                return found
            return self.create_line_item(
                lineitems_url,
                resource_link_id=resource_link_id,
                label=label,
                score_maximum=score_maximum,
                tag=tag,
                resource_id=resource_id,
            )
        finally:
            if locked:
                self._store.delete(lock)

    def post_score(self, lineitem_url: str, score: Score) -> ScoreOutcome:
        """Post score to the line item; SUPERSEDED when the LMS already holds a newer one."""
        resp = self._call(
            "POST",
            scores_url(lineitem_url),
            accept="application/json",
            content_type=CT_SCORE,
            body=score.to_json(),
        )
        outcome = _refused_score_outcome(resp)
        if outcome is not None:
            log.info("AGS score of %s at %s %s", score.user_id, score.timestamp, outcome.value)
            return outcome
        raise_for_status(resp, what="score", gone_error=LineItemGoneError)
        return ScoreOutcome.ACCEPTED

    def _call(
        self,
        method: str,
        url: str,
        *,
        accept: str,
        content_type: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        """Send with the cached token; on 401 forget it and retry once with a fresh one."""
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        return self.tokens.send_authorized(
            lambda signed: self._send(method, url, signed, data),
            headers,
            what=f"AGS {method} {url}",
        )

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> requests.Response:
        """One AGS request, its answer counted by status (no answer: 'none')."""
        try:
            resp = send(
                self._session, method, url, headers=headers, data=data, timeout=self._timeout
            )
        except AgsUnavailableError:
            metrics.record_ags_answer(None)
            raise
        metrics.record_ags_answer(resp.status_code)
        return resp
