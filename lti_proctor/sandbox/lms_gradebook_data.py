"""The sandbox LMS gradebook's state and rules: line items and scores, checked the way Moodle 4.5
(gradebookservices) and Canvas (Lti::IMS line items and scores) check them.

Plain Python, no Flask: sandbox/lms_gradebook.py reads the request, calls these and shapes each
Refusal as its LMS family answers. One process, one lock; a development stand-in only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lti_proctor.sandbox.lms_oauth import Json, Refusal, ServiceAuth

if TYPE_CHECKING:
    from lti_proctor.sandbox.lms_platform import SandboxLms

__all__ = ["Gradebook", "LineItem", "Refusal", "StoredScore"]

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
CT_SCORE = "application/vnd.ims.lis.v1.score+json"
CT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CT_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
ACTIVITY = ("Initialized", "Started", "InProgress", "Submitted", "Completed")
GRADING = ("NotReady", "Failed", "Pending", "PendingManual", "FullyGraded")


@dataclass
class LineItem:
    """One gradebook column: the activity's own (made by the LMS) or one a tool created."""

    number: int
    label: str
    score_maximum: float
    resource_link_id: str | None = None
    resource_id: str | None = None
    tag: str | None = None
    start_date_time: str | None = None
    end_date_time: str | None = None
    made_by_tool: bool = True


@dataclass
class StoredScore:
    """The latest score of one user on one line item, as the gradebook keeps it."""

    body: Json
    timestamp: datetime
    received_at: datetime

    def get(self, name: str) -> Any:
        """A field of the stored score+json body."""
        return self.body.get(name)


@dataclass
class Gradebook:
    """Line items and scores of one sandbox LMS course, and the tool's service access to them."""

    lms: SandboxLms
    auth: ServiceAuth
    clock: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    items: dict[int, LineItem] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    scores: dict[tuple[int, str], StoredScore] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """moodle or canvas."""
        return self.lms.family

    def sync_links(self) -> None:
        """Give every course link its own line item (the LMS makes one per graded activity)."""
        with self.lock:
            for link in self.lms.links.values():
                if not link.graded:
                    continue
                number = int(link.lineitem_id)
                if number in self.items or number in self.deleted:
                    continue
                moodle = self.family == "moodle"
                self.items[number] = LineItem(
                    number=number,
                    label=link.title,
                    score_maximum=link.points,
                    resource_link_id=link.id,
                    resource_id="" if moodle else None,
                    tag="" if moodle else None,
                    made_by_tool=False,
                )

    def students(self) -> dict[str, str]:
        """sub -> name of the gradable (learner) users of the course."""
        return {u.sub: u.name for u in self.lms.users.values() if not u.is_instructor}

    # -- line items ----------------------------------------------------------------------------

    def find_items(self, query: Mapping[str, str]) -> list[LineItem]:
        """The course's line items matching the resource_link_id / resource_id / tag filters."""
        self.sync_links()
        wanted = {
            "resource_link_id": "resource_link_id",
            "resource_id": "resource_id",
            "tag": "tag",
            "lti_link_id": "resource_link_id",
        }
        with self.lock:
            found = sorted(self.items.values(), key=lambda item: item.number)
        for param, attr in wanted.items():
            if param in query:
                found = [item for item in found if (getattr(item, attr) or "") == query[param]]
        return found

    def get_item(self, number: int) -> LineItem:
        """The line item numbered number; 404 when it never existed or was deleted."""
        self.sync_links()
        with self.lock:
            item = self.items.get(number)
        if item is None:
            raise Refusal(404, "Not Found: Grade item doesn't exist.")
        return item

    def create_item(self, body: object, content_type: str) -> LineItem:
        """Add a line item a tool POSTed, after the LMS's checks."""
        fields = self._item_fields(body, content_type)
        link_id = fields.get("resource_link_id")
        if link_id is not None and link_id not in {link.id for link in self.lms.links.values()}:
            raise Refusal(403, "Invalid resource link")
        self.sync_links()
        with self.lock:
            links = (int(link.lineitem_id) for link in self.lms.links.values())
            number = max([*self.items, *self.deleted, *links], default=0) + 1
            item = LineItem(number=number, **fields)
            self.items[number] = item
        return item

    def add_link_item(
        self, link_id: str, *, label: str, score_maximum: float, resource_id: str, tag: str
    ) -> LineItem:
        """The column of an activity added by deep linking with a lineItem; its number is free."""
        self.sync_links()
        with self.lock:
            links = (int(link.lineitem_id) for link in self.lms.links.values())
            number = max([*self.items, *self.deleted, *links], default=0) + 1
            item = LineItem(
                number=number,
                label=label,
                score_maximum=score_maximum,
                resource_link_id=link_id,
                resource_id=resource_id,
                tag=tag,
                made_by_tool=False,
            )
            self.items[number] = item
        return item

    def update_item(self, number: int, body: object, content_type: str) -> LineItem:
        """Replace a line item's label, maximum, tag, resource id and dates (PUT)."""
        item = self.get_item(number)
        fields = self._item_fields(body, content_type)
        fields.pop("resource_link_id", None)  # the link a line item belongs to never changes
        with self.lock:
            for name, value in fields.items():
                setattr(item, name, value)
        return item

    def delete_item(self, number: int) -> None:
        """Remove a tool's line item and its scores; the activity's own column stays."""
        item = self.get_item(number)
        if not item.made_by_tool:
            raise Refusal(403, "The activity's own line item cannot be deleted")
        with self.lock:
            self.items.pop(number, None)
            self.deleted.add(number)
            for key in [key for key in self.scores if key[0] == number]:
                del self.scores[key]

    def _item_fields(self, body: object, content_type: str) -> Json:
        if content_type != CT_LINEITEM:
            raise Refusal(400, "No context or unsupported content type")
        if not isinstance(body, dict):
            raise Refusal(400, "The body is not a line item JSON object")
        label, maximum = body.get("label"), body.get("scoreMaximum")
        if not isinstance(label, str) or not label.strip():
            raise Refusal(400, "No label or Score Maximum")
        if isinstance(maximum, bool) or not isinstance(maximum, int | float) or maximum <= 0:
            raise Refusal(400, "No label or Score Maximum")
        fields: Json = {"label": label, "score_maximum": float(maximum)}
        for name, attr in (
            ("resourceLinkId", "resource_link_id"),
            ("resourceId", "resource_id"),
            ("tag", "tag"),
            ("startDateTime", "start_date_time"),
            ("endDateTime", "end_date_time"),
        ):
            value = body.get(name)
            if value is not None:
                fields[attr] = str(value)
        return fields

    # -- scores --------------------------------------------------------------------------------

    def post_score(self, number: int, body: object, content_type: str) -> StoredScore:
        """Validate and store one score, refusing one older than what the gradebook holds."""
        item = self.get_item(number)
        if content_type != CT_SCORE:
            raise Refusal(400, "unsupported content type")
        if not isinstance(body, dict):
            raise Refusal(400, "Incorrect score received", in_status_line=True)
        check = _check_canvas_score if self.family == "canvas" else _check_moodle_score
        stamp = check(body, students=self.students())
        with self.lock:
            latest = self.scores.get((item.number, body["userId"]))
            if latest is not None:
                self._refuse_if_outdated(item, body, stamp, latest)
            stored = dict(body)
            if self.family == "moodle" and stored.get("gradingProgress") != "FullyGraded":
                stored["scoreGiven"] = None  # Moodle keeps no grade until FullyGraded
            score = StoredScore(stored, stamp, datetime.fromtimestamp(self.clock()).astimezone())
            self.scores[(item.number, body["userId"])] = score
        return score

    def _refuse_if_outdated(
        self, item: LineItem, body: Json, stamp: datetime, latest: StoredScore
    ) -> None:
        if self.family == "canvas":
            if latest.timestamp > stamp:
                raise Refusal(
                    400,
                    f"Provided timestamp of {body['timestamp']} before last updated timestamp "
                    f"of {latest.get('timestamp')}",
                )
            return
        # grade_grades.timemodified holds whole seconds, and an equal time is refused too.
        if int(latest.timestamp.timestamp()) >= int(stamp.timestamp()):
            raise Refusal(
                409,
                f"Refusing score with an earlier timestamp for item {item.number} and user "
                f"{body['userId']}",
                in_status_line=True,
            )

    def latest_score(self, number: int, user_id: str) -> StoredScore | None:
        """The score the gradebook shows for user_id on line item number."""
        with self.lock:
            return self.scores.get((number, user_id))


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 date-time with a zone, or None."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None


def _number_or_missing(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _check_moodle_score(body: Json, *, students: Mapping[str, str]) -> datetime:
    """scores.php: any problem is one 400 "Incorrect score received" in the status line."""
    stamp = parse_timestamp(body.get("timestamp"))
    ok = (
        all(k in body for k in ("userId", "timestamp", "gradingProgress", "activityProgress"))
        and stamp is not None
        and body["activityProgress"] in ACTIVITY
        and body["gradingProgress"] in GRADING
        and _number_or_missing(body.get("scoreGiven"))
        and _number_or_missing(body.get("scoreMaximum"))
        and ("scoreGiven" not in body or "scoreMaximum" in body)
        and body["userId"] in students
    )
    if not ok or stamp is None:
        raise Refusal(400, "Incorrect score received", in_status_line=True)
    return stamp


def _check_canvas_score(body: Json, *, students: Mapping[str, str]) -> datetime:
    """Lti::IMS::ScoresController: 400 for missing params and bad timestamps, else 422."""
    if body.get("userId") not in students:
        raise Refusal(422, "User not found in course or is not a student")
    for name in ("userId", "activityProgress", "gradingProgress", "timestamp"):
        if body.get(name) in (None, ""):
            raise Refusal(400, f"param is missing or the value is empty: {name}")
    stamp = parse_timestamp(body["timestamp"])
    if stamp is None:
        raise Refusal(400, f"Provided timestamp of {body['timestamp']} not a valid timestamp")
    if "scoreGiven" in body and "scoreMaximum" not in body:
        raise Refusal(422, "ScoreMaximum not supplied when ScoreGiven present.")
    numbers = (body.get("scoreGiven"), body.get("scoreMaximum"))
    if not all(_number_or_missing(value) for value in numbers):
        raise Refusal(422, "Validation failed: scoreGiven and scoreMaximum must be numbers")
    if body["activityProgress"] not in ACTIVITY:
        raise Refusal(422, f"Validation failed: activityProgress {body['activityProgress']!r}")
    if body["gradingProgress"] not in GRADING:
        raise Refusal(422, f"Validation failed: gradingProgress {body['gradingProgress']!r}")
    return stamp
