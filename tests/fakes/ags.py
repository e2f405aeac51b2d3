"""The AGS side of a Moodle 4.5 or a Canvas for tests: the sandbox LMS's own gradebook, served
through the `http` responses mock.

What Moodle and Canvas accept is said in one place, the sandbox (lti_proctor/sandbox/
lms_gradebook*.py and lms_oauth.py): its token rules, its line item and score rules, its URL
shapes, content types, status lines and error bodies. This module only carries requests there
(a sandbox LMS app answers each service request through its Flask test client) and adds what
tests need around it: planned failures, a record of every request, the history of accepted
scores, and plain views of the gradebook's line items and scores.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping, MutableSet
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import jwt
import responses
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from requests import PreparedRequest

from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_data import AGS, RESOURCE_LINK
from lti_proctor.sandbox.lms_gradebook import get_gradebook, item_json, item_url
from lti_proctor.sandbox.lms_gradebook_data import (
    CT_CONTAINER,
    CT_LINEITEM,
    CT_SCORE,
    SCOPE_LINEITEM,
    SCOPE_SCORE,
)
from lti_proctor.sandbox.lms_oauth import Refusal
from lti_proctor.sandbox.lms_platform import PendingLaunch, SandboxLms, get_sandbox_lms
from tests.constants import TOOL_URL

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
    """One granted token request as the LMS saw it (its form, and the assertion it verified)."""

    form: dict[str, str]
    header: dict[str, Any]
    claims: dict[str, Any]


class Enrolment(MutableSet[str]):
    """The subs of the course's students: add enrols one more, discard unenrols one."""

    def __init__(self, lms: SandboxLms) -> None:
        self._lms = lms

    def __contains__(self, sub: object) -> bool:
        return any(u.sub == sub and not u.is_instructor for u in self._lms.users.values())

    def __iter__(self) -> Iterator[str]:
        return iter([u.sub for u in self._lms.users.values() if not u.is_instructor])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def add(self, sub: str) -> None:
        if sub not in self:
            seeded = self._lms.users["student"]
            key = f"student:{sub}"
            self._lms.users[key] = replace(seeded, key=key, sub=sub, lms_id=sub, login_hint=sub)

    def discard(self, sub: str) -> None:
        for key, user in list(self._lms.users.items()):
            if user.sub == sub and not user.is_instructor:
                del self._lms.users[key]


class FakeLms:
    """What every fake LMS shares: the responses wiring, planned failures and request records.

    Subclasses answer: answer_token(request) and answer_service(request), and say where they
    live (token_url, service_base)."""

    token_url: str
    service_base: str

    def __init__(self) -> None:
        self.token_requests: list[TokenRequest] = []
        self.service_requests: list[tuple[str, str]] = []
        self.scores: dict[tuple[str, str], list[dict[str, Any]]] = {}  # accepted, in order
        self.token_delay_s = 0.0
        self._planned: deque[Answer | Exception] = deque()
        self._lock = threading.Lock()

    def install(self, http: responses.RequestsMock) -> FakeLms:
        """Serve the token endpoint and the AGS service URLs through the responses mock."""
        http.add(_ReasonResponse("POST", self.token_url, callback=self._token_endpoint))
        service = re.compile(re.escape(self.service_base) + r"(/.*)?(\?.*)?$")
        for method in ("GET", "POST", "PUT", "DELETE"):
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

    def answer_token(self, request: PreparedRequest) -> Answer:
        """The token endpoint's answer."""
        raise NotImplementedError

    def answer_service(self, request: PreparedRequest) -> Answer:
        """An AGS service URL's answer."""
        raise NotImplementedError

    def _token_endpoint(self, request: PreparedRequest) -> Answer:
        if self.token_delay_s:
            threading.Event().wait(self.token_delay_s)
        return self.answer_token(request)

    def _service(self, request: PreparedRequest) -> Answer:
        with self._lock:
            self.service_requests.append((str(request.method), str(request.url)))
            planned = self._planned.popleft() if self._planned else None
        if isinstance(planned, Exception):
            raise planned
        if planned is not None:
            return planned
        return self.answer_service(request)

    def _record_token_request(self, form: dict[str, str]) -> None:
        """Keep a granted request, with the assertion the LMS has just verified."""
        assertion = form["client_assertion"]
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
        with self._lock:
            self.token_requests.append(TokenRequest(form, header, claims))


class SandboxLmsFake(FakeLms):
    """A sandbox Moodle or Canvas (the subclass says which) taking the tool's AGS calls."""

    family: ClassVar[str]
    base_url: ClassVar[str]

    def __init__(self, *, public_key: RSAPublicKey, kid: str) -> None:
        super().__init__()
        self.kid, self.public_key = kid, public_key
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        keyset = {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}
        self.app = create_sandbox_lms(
            base_url=self.base_url,
            tool_url=TOOL_URL,
            family=self.family,
            fetch_tool_jwks=lambda: keyset,
        )
        self.sandbox = get_sandbox_lms(self.app)
        self.book = get_gradebook(self.app)
        self.students = Enrolment(self.sandbox)
        claims = self.sandbox.claims(
            PendingLaunch("student", "final", RESOURCE_LINK, 0), nonce="n", iat=0
        )
        self.lineitems_url: str = claims[AGS]["lineitems"]  # as in the launch's AGS claim
        self.service_base = self.lineitems_url.partition("?")[0]

    # --- who the LMS is -------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        """The tool's client id at this LMS."""
        return self.sandbox.site.client_id

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return self.sandbox.auth_token_url

    @property
    def resource_links(self) -> set[str]:
        """The ids of the course's tool links."""
        return {link.id for link in self.sandbox.links.values()}

    @property
    def tokens(self) -> Mapping[str, Any]:
        """The access tokens issued and still known, by token."""
        return self.book.auth.tokens

    @property
    def token_lifetime_s(self) -> int:
        """The expires_in of the tokens it issues."""
        return self.book.auth.token_lifetime_s

    @token_lifetime_s.setter
    def token_lifetime_s(self, seconds: int) -> None:
        self.book.auth.token_lifetime_s = seconds

    # --- set-up and inspection used by tests ---------------------------------------------------

    def expire_tokens(self) -> None:
        """Every issued token stops working (as after its lifetime)."""
        with self.book.auth.lock:
            self.book.auth.tokens.clear()

    def delete_line_item(self, item_id: str) -> None:
        """An instructor deletes the column in the gradebook."""
        self.book.delete_item(self._number(item_id))

    def add_line_item(self, **fields: Any) -> dict[str, Any]:
        """A line item made at the LMS (fields as in line item JSON); its JSON."""
        item = self.book.create_item(fields, CT_LINEITEM)
        return item_json(self.book, item)

    @property
    def line_items(self) -> dict[str, dict[str, Any]]:
        """Every line item's JSON, by id."""
        items = (item_json(self.book, item) for item in self.book.find_items({}))
        return {item["id"]: item for item in items}

    def items_tagged(self, tag: str) -> list[dict[str, Any]]:
        """The line items carrying tag."""
        return [item_json(self.book, item) for item in self.book.find_items({"tag": tag})]

    def latest_score(self, item_id: str, user_id: str) -> dict[str, Any] | None:
        """The score the gradebook shows for user on item."""
        stored = self.book.latest_score(self._number(item_id), user_id)
        return dict(stored.body) if stored else None

    def _number(self, item_id: str) -> int:
        for number in self.book.items:
            if item_url(self.sandbox, number) == item_id:
                return number
        raise KeyError(item_id)

    # --- the token endpoint and the service, answered by the sandbox ---------------------------

    def answer_token(self, request: PreparedRequest) -> Answer:
        form = {k: v[0] for k, v in parse_qs(_text(request)).items()}
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            answer = self.book.auth.issue_token(form, content_type)
        except Refusal as refusal:
            # The OAuth error code alone: the sandbox's Canvas also sends error_description (as
            # Canvas does), which the tool would report instead; tests compare the code.
            return _json(refusal.status, {"error": refusal.code or "invalid_request"})
        self._record_token_request(form)
        return 200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(answer)

    def answer_service(self, request: PreparedRequest) -> Answer:
        url, method = str(request.url), str(request.method)
        parts = urlsplit(url)
        headers = {
            k: v for k, v in request.headers.items() if k not in ("Content-Type", "Content-Length")
        }
        resp = self.app.test_client().open(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            query_string=parts.query,
            method=method,
            headers=headers,
            content_type=request.headers.get("Content-Type"),
            data=_text(request).encode(),
        )
        status, _, reason = resp.status.partition(" ")
        request.fake_reason = reason  # type: ignore[attr-defined]
        if method == "POST" and parts.path.endswith("/scores") and resp.status_code == 200:
            self._remember_score(url, json.loads(_text(request)))
        answer_headers = {"Content-Type": resp.content_type} if resp.content_type else {}
        return int(status), answer_headers, resp.get_data(as_text=True)

    def _remember_score(self, scores_url: str, body: dict[str, Any]) -> None:
        parts = urlsplit(scores_url)
        item_id = parts._replace(path=parts.path.removesuffix("/scores")).geturl()
        shown = self.latest_score(item_id, body["userId"])
        with self._lock:
            self.scores.setdefault((item_id, body["userId"]), []).append(shown or body)


class MoodleFake(SandboxLmsFake):
    """Moodle 4.5: services.php URLs with ?type_id=, token.php, refusals in the status line."""

    family = "moodle"
    base_url = "https://moodle.example.edu"


class CanvasFake(SandboxLmsFake):
    """Canvas: /api/lti/courses/<id>/line_items, login/oauth2/token, {"errors": ...} answers."""

    family = "canvas"
    base_url = "https://school.instructure.com"


def _json(status: int, body: Any, content_type: str = "application/json") -> Answer:
    return status, {"Content-Type": f"{content_type}; charset=utf-8"}, json.dumps(body)


def _text(request: PreparedRequest) -> str:
    body = request.body or ""
    return body.decode() if isinstance(body, bytes) else str(body)


class OpenEdxFake(FakeLms):
    """Open edX's lti_consumer: /api/lti_consumer/v1/lti/<config>/lti-ags, DRF error bodies.

    The sandbox plays no Open edX, so its rules live here (and only here). It keeps one score per
    user and line item and validates the timestamp in its serializer: the same timestamp again,
    or an older one, is a 400 with the message in a field list.
    """

    BASE = "https://courses.example.edu/api/lti_consumer/v1"

    def __init__(self, *, public_key: RSAPublicKey, kid: str) -> None:
        super().__init__()
        self.kid, self.public_key = kid, public_key
        self.client_id = "6d1c5b0e-8f0e-4d7a-9b9e-1f2a3b4c5d6e"
        self.token_url = f"{self.BASE}/token/7"
        self.lineitems_url = self.service_base = f"{self.BASE}/lti/7/lti-ags"
        self.resource_links = {"block-v1:Org+Course+Run+type@lti_consumer+block@exam"}
        self.students = {"2b4c6d8e-0f1a-4b3c-8d5e-7f9a1b2c3d4e"}
        self.permitted_scopes = frozenset({SCOPE_SCORE, SCOPE_LINEITEM})
        self.tokens: dict[str, frozenset[str]] = {}
        self.line_items: dict[str, dict[str, Any]] = {}
        self._jtis: set[str] = set()

    def latest_score(self, item_id: str, user_id: str) -> dict[str, Any] | None:
        """The score the gradebook shows for user on item."""
        history = self.scores.get((item_id, user_id))
        return history[-1] if history else None

    def answer_token(self, request: PreparedRequest) -> Answer:
        form = {k: v[0] for k, v in parse_qs(_text(request)).items()}
        assertion = form.get("client_assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion, self.public_key, algorithms=["RS256"], audience=self.token_url
            )
        except jwt.PyJWTError as exc:
            return _json(400, {"error": "invalid_client", "error_description": str(exc)})
        if header.get("kid") != self.kid or claims.get("sub") != self.client_id:
            return _json(400, {"error": "invalid_client"})
        granted = frozenset(set(form.get("scope", "").split()) & self.permitted_scopes)
        with self._lock:
            if not granted or claims.get("jti") in self._jtis:
                return _json(400, {"error": "invalid_scope" if not granted else "invalid_grant"})
            self._jtis.add(str(claims.get("jti")))
            token = f"openedx-token-{len(self.tokens) + 1}"
            self.tokens[token] = granted
        self._record_token_request(form)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        return _json(200, {**answer, "scope": " ".join(sorted(granted))})

    def answer_service(self, request: PreparedRequest) -> Answer:
        auth = request.headers.get("Authorization", "")
        scopes = self.tokens.get(auth.removeprefix("Bearer ")) if auth else None
        if scopes is None:
            return _json(401, {"detail": "Access token invalid or expired"})
        rest = urlsplit(str(request.url)).path[len(urlsplit(self.service_base).path) :]
        if rest in ("", "/"):
            if SCOPE_LINEITEM not in scopes:
                return _json(401, {"detail": "Insufficient permissions"})
            return self._line_items(request)
        match = re.fullmatch(r"/(\d+)(/scores)?/?", rest)
        item_id = f"{self.service_base}/{match.group(1)}" if match else ""
        if item_id not in self.line_items:
            return _json(404, {"detail": "Not Found: Grade item doesn't exist."})
        if match and match.group(2) and request.method == "POST":
            if SCOPE_SCORE not in scopes:
                return _json(401, {"detail": "Insufficient permissions"})
            return self._score(item_id, json.loads(_text(request)))
        return _json(200, self.line_items[item_id], CT_LINEITEM)

    def _line_items(self, request: PreparedRequest) -> Answer:
        if request.method == "GET":
            query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
            found = [
                item
                for item in self.line_items.values()
                if query.get("tag") in (None, item.get("tag"))
                and query.get("resource_link_id") in (None, item.get("resourceLinkId"))
            ]
            return _json(200, found, CT_CONTAINER)
        body = json.loads(_text(request))
        if not isinstance(body.get("label"), str) or "scoreMaximum" not in body:
            return _json(400, {"detail": "No label or Score Maximum"})
        if body.get("resourceLinkId") not in (None, *self.resource_links):
            return _json(403, {"detail": "Invalid resource link"})
        with self._lock:
            item = {"id": f"{self.service_base}/{len(self.line_items) + 1}", **body}
            self.line_items[item["id"]] = item
        return _json(201, item, CT_LINEITEM)

    def _score(self, item_id: str, body: dict[str, Any]) -> Answer:
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
        with self._lock:
            self.scores.setdefault((item_id, body["userId"]), []).append(dict(body))
        return _json(201, dict(body), CT_SCORE)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else None
