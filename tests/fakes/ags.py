"""AGS fakes that answer like Moodle 4.5 (mod/lti/token.php, gradebookservices) and Canvas
(login/oauth2/token, Lti::IMS line items and scores): their URL shapes, content types, checks
and error answers, as read from their source. Install one on the `http` responses mock.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import responses
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from requests import PreparedRequest

CT_SCORE = "application/vnd.ims.lis.v1.score+json"
CT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CT_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
ACTIVITY = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING = {"NotReady", "Failed", "Pending", "PendingManual", "FullyGraded"}

Answer = tuple[int, dict[str, str], str]


class _ReasonResponse(responses.CallbackResponse):
    """A callback response with its own status-line reason (Moodle puts refusals there)."""

    def get_response(self, request: PreparedRequest) -> Any:
        resp = super().get_response(request)
        reason = getattr(request, "fake_reason", None)
        if reason:
            resp.reason = reason
        return resp


@dataclass
class TokenRequest:
    """One token request as the fake saw it (after checking the assertion)."""

    form: dict[str, str]
    header: dict[str, Any]
    claims: dict[str, Any]


@dataclass
class FakeLms:
    """What Moodle and Canvas share: a token endpoint, line items, scores, planned failures."""

    client_id: str
    kid: str
    public_key: RSAPublicKey
    token_url: str
    lineitems_url: str  # as in the launch's AGS claim
    resource_links: set[str]
    students: set[str]
    permitted_scopes: frozenset[str]
    token_lifetime_s: int = 3600
    line_items: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    token_requests: list[TokenRequest] = field(default_factory=list)
    service_requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    _planned: deque[Answer | Exception] = field(default_factory=deque)
    _jtis: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 100
    token_delay_s: float = 0.0

    # --- set-up and inspection used by tests ---------------------------------------------------

    def install(self, http: responses.RequestsMock) -> FakeLms:
        """Serve the token endpoint and the AGS service URLs through the responses mock."""
        http.add(_ReasonResponse("POST", self.token_url, callback=self._token_endpoint))
        service = re.compile(re.escape(self.service_base) + r"(/.*)?(\?.*)?$")
        for method in ("GET", "POST"):
            http.add(_ReasonResponse(method, service, callback=self._service))
        return self

    def fail_next(
        self,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: str = "",
        times: int = 1,
    ) -> None:
        """The next `times` service calls (not token requests) get this answer."""
        for _ in range(times):
            self._planned.append((status, dict(headers or {}), body))

    def recover(self) -> None:
        """The outage is over: planned failures not yet served are dropped."""
        with self._lock:
            self._planned.clear()

    def break_next(self, failure: Exception) -> None:
        """The next service call fails on the wire (timeout, refused connection...)."""
        self._planned.append(failure)

    def expire_tokens(self) -> None:
        """Every issued token stops working (as after its lifetime)."""
        self.tokens.clear()

    def delete_line_item(self, item_id: str) -> None:
        """An instructor deletes the column in the gradebook."""
        del self.line_items[item_id]

    def latest_score(self, item_id: str, user_id: str) -> dict[str, Any] | None:
        """The score the gradebook shows for user on item."""
        history = self.scores.get((item_id, user_id))
        return history[-1] if history else None

    def items_tagged(self, tag: str) -> list[dict[str, Any]]:
        """The line items carrying tag."""
        return [item for item in self.line_items.values() if item.get("tag") == tag]

    # --- LMS-specific parts (subclasses) -------------------------------------------------------

    service_base: str = ""

    def item_key(self, path_rest: str) -> tuple[str, str] | None:
        """Map the path after service_base to (kind, item id URL); kind is lineitem or scores."""
        raise NotImplementedError

    def item_url(self, number: int) -> str:
        """The id (URL) of line item number."""
        raise NotImplementedError

    def error(self, status: int, message: str, request: PreparedRequest) -> Answer:
        """An error answer in this LMS's shape."""
        raise NotImplementedError

    def check_service_request(self, request: PreparedRequest) -> Answer | None:
        """LMS-specific checks before routing (None: fine)."""
        return None

    def accept_score(self, item_id: str, body: dict[str, Any], request: PreparedRequest) -> Answer:
        """Validate and store one score the way this LMS does."""
        raise NotImplementedError

    def grant_scopes(self, requested: set[str]) -> frozenset[str] | None:
        """Scopes granted for a token request, or None to refuse with invalid_scope."""
        raise NotImplementedError

    # --- token endpoint ------------------------------------------------------------------------

    def _token_endpoint(self, request: PreparedRequest) -> Answer:
        if self.token_delay_s:
            threading.Event().wait(self.token_delay_s)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0]
        if content_type != "application/x-www-form-urlencoded":
            return _json(400, {"error": "invalid_request"})
        form = {k: v[0] for k, v in parse_qs(_text(request)).items()}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return _json(400, {"error": "unsupported_grant_type"})
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            return _json(400, {"error": "invalid_client", "error_description": str(exc)})
        if header.get("kid") != self.kid or claims["sub"] != self.client_id:
            return _json(400, {"error": "invalid_client"})
        with self._lock:
            if claims["jti"] in self._jtis:
                return _json(400, {"error": "invalid_request", "error_description": "jti reused"})
            self._jtis.add(claims["jti"])
            granted = self.grant_scopes(set(form.get("scope", "").split()))
            if not granted:
                return _json(400, {"error": "invalid_scope"})
            self.token_requests.append(TokenRequest(form, header, claims))
            token = f"{type(self).__name__.lower()}-token-{len(self.token_requests)}"
            self.tokens[token] = granted
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_s,
                "scope": " ".join(sorted(granted)),
            },
        )

    # --- AGS service ---------------------------------------------------------------------------

    def _service(self, request: PreparedRequest) -> Answer:
        url = str(request.url)
        with self._lock:
            self.service_requests.append((str(request.method), url))
            planned = self._planned.popleft() if self._planned else None
        if isinstance(planned, Exception):
            raise planned
        if planned is not None:
            return planned
        auth = request.headers.get("Authorization", "")
        scopes = (
            self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        )
        if scopes is None:
            return self.error(401, "Access token invalid or expired", request)
        refused = self.check_service_request(request)
        if refused:
            return refused
        parts = urlsplit(url)
        rest = parts.path[len(urlsplit(self.service_base).path) :]
        if rest in ("", "/"):
            return self._lineitems(request, scopes)
        routed = self.item_key(rest)
        if routed is None or routed[1] not in self.line_items:
            return self.error(404, "Not Found: Grade item doesn't exist.", request)
        kind, item_id = routed
        if kind == "scores" and request.method == "POST":
            if SCOPE_SCORE not in scopes:
                return self.error(401, "Insufficient permissions", request)
            return self._score(item_id, request)
        return _json(200, self.line_items[item_id], CT_LINEITEM)

    def _lineitems(self, request: PreparedRequest, scopes: frozenset[str]) -> Answer:
        if request.method == "GET":
            if not scopes & {SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY}:
                return self.error(401, "Insufficient permissions", request)
            query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
            found = [
                item
                for item in self.line_items.values()
                if query.get("tag") in (None, item.get("tag"))
                and query.get("resource_link_id") in (None, item.get("resourceLinkId"))
            ]
            return _json(200, found, CT_CONTAINER)
        if SCOPE_LINEITEM not in scopes:
            return self.error(401, "Insufficient permissions", request)
        if _content_type(request) != CT_LINEITEM:
            return self.error(400, "No context or unsupported content type", request)
        body = _body(request)
        if (
            not isinstance(body, dict)
            or "label" not in body
            or not isinstance(body.get("scoreMaximum"), int | float)
        ):
            return self.error(400, "No label or Score Maximum", request)
        link = body.get("resourceLinkId")
        if link is not None and link not in self.resource_links:
            return self.error(403, "Invalid resource link", request)
        return _json(201, self.add_line_item(**body), CT_LINEITEM)

    def add_line_item(self, **fields: Any) -> dict[str, Any]:
        """Store a line item (a tool's POST, or one the LMS made for an assignment)."""
        with self._lock:
            self._next_id += 1
            item = {"id": self.item_url(self._next_id), **fields}
            self.line_items[item["id"]] = item
        return item

    def _score(self, item_id: str, request: PreparedRequest) -> Answer:
        if _content_type(request) != CT_SCORE:
            return self.error(400, "unsupported content type", request)
        body = _body(request)
        if not isinstance(body, dict):
            return self.error(400, "Incorrect score received", request)
        with self._lock:
            return self.accept_score(item_id, body, request)

    def _store_score(self, item_id: str, body: dict[str, Any]) -> None:
        self.scores.setdefault((item_id, body["userId"]), []).append(body)


class MoodleFake(FakeLms):
    """Moodle 4.5: services.php URLs with ?type_id=, token.php, refusals in the status line."""

    def __init__(self, *, public_key: RSAPublicKey, kid: str, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "client_id": "qJFGPTxkK5WNQyx",
            "token_url": "https://moodle.example.edu/mod/lti/token.php",
            "lineitems_url": "https://moodle.example.edu/mod/lti/services.php/2/lineitems?type_id=1",
            "resource_links": {"1"},
            "students": {"3"},
            "permitted_scopes": frozenset(
                {SCOPE_LINEITEM, SCOPE_LINEITEM_READONLY, SCOPE_RESULT_READONLY, SCOPE_SCORE}
            ),
        }
        settings.update(overrides)
        super().__init__(public_key=public_key, kid=kid, **settings)
        self.service_base = "https://moodle.example.edu/mod/lti/services.php/2/lineitems"
        self._next_id = 6
        # The assignment's own grade item (the launch's `lineitem` claim): no tag.
        self.add_line_item(
            label="Final exam (proctored)",
            scoreMaximum=100.0,
            resourceId="",
            tag="",
            resourceLinkId="1",
            ltiLinkId="1",
        )

    def item_url(self, number: int) -> str:
        return f"{self.service_base}/{number}/lineitem?type_id=1"

    def item_key(self, path_rest: str) -> tuple[str, str] | None:
        match = re.fullmatch(r"/(\d+)/lineitem(/scores)?", path_rest)
        if not match:
            return None
        return ("scores" if match.group(2) else "lineitem", self.item_url(int(match.group(1))))

    def check_service_request(self, request: PreparedRequest) -> Answer | None:
        query = parse_qs(urlsplit(str(request.url)).query)
        if query.get("type_id") != ["1"]:  # without type_id Moodle takes the LTI 2 path
            return self.error(401, "", request)
        container = urlsplit(str(request.url)).path == urlsplit(self.service_base).path
        if container and request.method == "GET":
            # lineitems.php: a GET must accept the container type or send no Accept at all.
            if request.headers.get("Accept") not in (None, "", CT_CONTAINER):
                return self.error(400, "No context or unsupported content type", request)
        return None

    def error(self, status: int, message: str, request: PreparedRequest) -> Answer:
        # response::send(): with no body, a JSON description of the request and the reason.
        request.fake_reason = message  # type: ignore[attr-defined]
        body = {
            "status": status,
            "reason": message,
            "request": {"method": request.method, "url": urlsplit(str(request.url)).path},
        }
        return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body)

    def refuse_in_status_line(self, status: int, reason: str, request: PreparedRequest) -> Answer:
        """scores.php: the exception's message goes to the status line, the body stays "[]"."""
        request.fake_reason = reason  # type: ignore[attr-defined]
        return status, {}, "[]"

    def grant_scopes(self, requested: set[str]) -> frozenset[str] | None:
        return frozenset(requested & self.permitted_scopes) or None

    def accept_score(self, item_id: str, body: dict[str, Any], request: PreparedRequest) -> Answer:
        stamp = _timestamp(body.get("timestamp"))
        if (
            not all(
                k in body for k in ("userId", "timestamp", "gradingProgress", "activityProgress")
            )
            or stamp is None
            or any(
                k in body and not isinstance(body[k], int | float)
                for k in ("scoreGiven", "scoreMaximum")
            )
            or body["userId"] not in self.students
        ):
            return self.refuse_in_status_line(400, "Incorrect score received", request)
        latest = self.latest_score(item_id, body["userId"])
        # grade_grades.timemodified is in whole seconds, and an equal time is refused too.
        if latest and int(_timestamp(latest["timestamp"]).timestamp()) >= int(stamp.timestamp()):
            number = re.search(r"/(\d+)/lineitem", item_id).group(1)  # type: ignore[union-attr]
            return self.refuse_in_status_line(
                409,
                f"Refusing score with an earlier timestamp for item {number} and user "
                f"{body['userId']}",
                request,
            )
        stored = dict(body)
        if stored.get("gradingProgress") != "FullyGraded":
            stored["scoreGiven"] = None  # Moodle keeps no grade until FullyGraded
        self._store_score(item_id, stored)
        return 200, {"Content-Type": f"{CT_SCORE}; charset=utf-8"}, ""


class CanvasFake(FakeLms):
    """Canvas: /api/lti/courses/<id>/line_items, login/oauth2/token, {"errors": ...} answers."""

    def __init__(self, *, public_key: RSAPublicKey, kid: str, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "client_id": "10000000000001",
            "token_url": "https://school.instructure.com/login/oauth2/token",
            "lineitems_url": "https://school.instructure.com/api/lti/courses/1/line_items",
            "resource_links": {"98b3107f-76cb-52cd-88b5-053a068d5c83"},
            "students": {"21d25588-d4a9-51d7-a462-eb54278140c8"},
            "permitted_scopes": frozenset({SCOPE_SCORE, SCOPE_LINEITEM}),
        }
        settings.update(overrides)
        super().__init__(public_key=public_key, kid=kid, **settings)
        self.service_base = self.lineitems_url
        self._next_id = 0
        self.add_line_item(
            scoreMaximum=100.0,
            label="Final exam (proctored)",
            resourceId=None,
            tag=None,
            resourceLinkId="98b3107f-76cb-52cd-88b5-053a068d5c83",
        )

    def item_url(self, number: int) -> str:
        return f"{self.service_base}/{number}"

    def item_key(self, path_rest: str) -> tuple[str, str] | None:
        match = re.fullmatch(r"/(\d+)(/scores)?", path_rest)
        if not match:
            return None
        return ("scores" if match.group(2) else "lineitem", self.item_url(int(match.group(1))))

    def error(self, status: int, message: str, request: PreparedRequest) -> Answer:
        if status == 404:  # ActiveRecord::RecordNotFound through the API error handler
            return _json(404, {"errors": [{"message": "The specified resource does not exist."}]})
        kind = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            412: "precondition_failed",
            422: "unprocessable_entity",
        }.get(status, "error")
        return _json(status, {"errors": {"type": kind, "message": message}})

    def grant_scopes(self, requested: set[str]) -> frozenset[str] | None:
        # Canvas refuses the request when a scope is not on the developer key.
        return frozenset(requested) if requested and requested <= self.permitted_scopes else None

    def accept_score(self, item_id: str, body: dict[str, Any], request: PreparedRequest) -> Answer:
        if body.get("userId") not in self.students:
            return self.error(422, "User not found in course or is not a student", request)
        missing = [
            k
            for k in ("userId", "activityProgress", "gradingProgress", "timestamp")
            if k not in body
        ]
        if missing:
            return self.error(400, f"param is missing or the value is empty: {missing[0]}", request)
        stamp = _timestamp(body["timestamp"])
        latest = self.latest_score(item_id, body["userId"])
        if stamp is None:
            return self.error(
                400, f"Provided timestamp of {body['timestamp']} not a valid timestamp", request
            )
        if latest and _timestamp(latest["timestamp"]) > stamp:
            return self.error(
                400,
                f"Provided timestamp of {body['timestamp']} before last updated timestamp of "
                f"{latest['timestamp']}",
                request,
            )
        if "scoreGiven" in body and "scoreMaximum" not in body:
            return self.error(422, "ScoreMaximum not supplied when ScoreGiven present.", request)
        if body["activityProgress"] not in ACTIVITY or body["gradingProgress"] not in GRADING:
            return self.error(422, "Validation failed: progress value", request)
        self._store_score(item_id, dict(body))
        result = f"{item_id}/results/{len(self.scores[(item_id, body['userId'])])}"
        return _json(200, {"resultUrl": result}, CT_SCORE)


class OpenEdxFake(FakeLms):
    """Open edX's lti_consumer: /api/lti_consumer/v1/lti/<config>/lti-ags, DRF error bodies.

    It keeps one score per user and line item and validates the timestamp in its serializer:
    the same timestamp again, or an older one, is a 400 with the message in a field list.
    """

    def __init__(self, *, public_key: RSAPublicKey, kid: str, **overrides: Any) -> None:
        base = "https://courses.example.edu/api/lti_consumer/v1"
        settings: dict[str, Any] = {
            "client_id": "6d1c5b0e-8f0e-4d7a-9b9e-1f2a3b4c5d6e",
            "token_url": f"{base}/token/7",
            "lineitems_url": f"{base}/lti/7/lti-ags",
            "resource_links": {"block-v1:Org+Course+Run+type@lti_consumer+block@exam"},
            "students": {"2b4c6d8e-0f1a-4b3c-8d5e-7f9a1b2c3d4e"},
            "permitted_scopes": frozenset({SCOPE_SCORE, SCOPE_LINEITEM}),
        }
        settings.update(overrides)
        super().__init__(public_key=public_key, kid=kid, **settings)
        self.service_base = self.lineitems_url

    def item_url(self, number: int) -> str:
        return f"{self.service_base}/{number}"

    def item_key(self, path_rest: str) -> tuple[str, str] | None:
        match = re.fullmatch(r"/(\d+)(/scores)?/?", path_rest)
        if not match:
            return None
        return ("scores" if match.group(2) else "lineitem", self.item_url(int(match.group(1))))

    def error(self, status: int, message: str, request: PreparedRequest) -> Answer:
        return _json(status, {"detail": message})

    def grant_scopes(self, requested: set[str]) -> frozenset[str] | None:
        return frozenset(requested & self.permitted_scopes) or None

    def accept_score(self, item_id: str, body: dict[str, Any], request: PreparedRequest) -> Answer:
        stamp = _timestamp(body.get("timestamp"))
        if stamp is None:
            return _json(400, {"timestamp": ["Datetime has wrong format."]})
        latest = self.latest_score(item_id, str(body.get("userId")))
        held = _timestamp(latest["timestamp"]) if latest else None
        if held is not None and held == stamp:
            return _json(400, {"timestamp": ["Score already exists for the provided timestamp"]})
        if held is not None and held > stamp:
            message = "Score timestamp can only be updated to a later point in time"
            return _json(400, {"timestamp": [message]})
        self._store_score(item_id, dict(body))
        return _json(201, dict(body), CT_SCORE)


def _json(status: int, body: Any, content_type: str = "application/json") -> Answer:
    return status, {"Content-Type": f"{content_type}; charset=utf-8"}, json.dumps(body)


def _text(request: PreparedRequest) -> str:
    body = request.body or ""
    return body.decode() if isinstance(body, bytes) else str(body)


def _body(request: PreparedRequest) -> Any:
    try:
        return json.loads(_text(request))
    except ValueError:
        return None


def _content_type(request: PreparedRequest) -> str:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip()


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None
