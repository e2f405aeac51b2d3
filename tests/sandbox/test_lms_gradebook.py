"""The sandbox LMS gradebook over real HTTP: the tool's real AgsClient gets a token with its signed
assertion (checked against the tool's JWKS served by the real tool app), creates its line item
once and posts scores, which the gradebook validates and shows as Moodle or Canvas would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from lti_proctor.lti import keys
from lti_proctor.lti.ags import (
    ActivityProgress,
    AgsClient,
    AgsRejectedError,
    GradingProgress,
    LineItemGoneError,
    PlatformCredentials,
    Score,
    ScoreOutcome,
)
from lti_proctor.lti.service_tokens import ASSERTION_TYPE, build_client_assertion
from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_data import AGS, RESOURCE_LINK
from lti_proctor.sandbox.lms_gradebook import get_gradebook
from lti_proctor.sandbox.lms_platform import PendingLaunch, SandboxLms, get_sandbox_lms
from lti_proctor.store import get_store
from tests.live import live_server

CT_SCORE = "application/vnd.ims.lis.v1.score+json"
CT_LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CT_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LABEL = "Proctoring: Final exam (proctored)"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass
class Sandbox:
    """The tool (live, real app) and a sandbox LMS (live) that knows the tool's URL."""

    tool: Flask
    tool_url: str
    lms: SandboxLms
    lms_app: Flask
    lms_url: str

    @property
    def ags_claim(self) -> dict[str, Any]:
        """The AGS claim of a student's launch of the exam link."""
        pending = PendingLaunch("student", "final", RESOURCE_LINK, 1)
        claim: dict[str, Any] = self.lms.claims(pending, nonce="n", iat=int(time.time()))[AGS]
        return claim

    @property
    def student(self) -> str:
        return self.lms.users["student"].sub

    @property
    def link_id(self) -> str:
        return self.lms.links["final"].id

    def client(self, scopes: tuple[str, ...] = (SCOPE_LINEITEM, SCOPE_SCORE)) -> AgsClient:
        """The tool's real AGS client for this LMS (call inside the tool's app context)."""
        credentials = PlatformCredentials(
            id=f"sandbox-{uuid.uuid4().hex[:8]}",
            client_id=self.lms.site.client_id,
            token_url=self.lms.auth_token_url,
        )
        return AgsClient(
            credentials, store=get_store(), signer=keys.get_signing_key, timeout=5, scopes=scopes
        )

    def line_item(self) -> str:
        """The tool's proctoring line item, found or created through the real client."""
        with self.tool.app_context():
            return self.client().find_or_create_line_item(
                self.ags_claim["lineitems"],
                resource_link_id=self.link_id,
                label=LABEL,
                score_maximum=100,
            )

    def token(self, scopes: tuple[str, ...] = (SCOPE_LINEITEM, SCOPE_SCORE)) -> str:
        """A fresh access token, obtained the way the tool obtains it."""
        with self.tool.app_context():
            return self.client(scopes).tokens.get()

    def assertion(self, **overrides: Any) -> str:
        """A client assertion signed with the tool's key; overrides change claims (None drops)."""
        with self.tool.app_context():
            kid, key = keys.get_signing_key()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.lms.site.client_id,
            "sub": self.lms.site.client_id,
            "aud": self.lms.auth_token_url,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        signing_key = overrides.pop("key", key)
        kid = overrides.pop("kid", kid)
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(params=["moodle", "canvas"])
def sandbox(request: pytest.FixtureRequest, app: Flask) -> Iterator[Sandbox]:
    family: str = request.param
    built: dict[str, Flask] = {}
    with live_server(app) as tool_url:

        def build(base_url: str) -> Flask:
            built["app"] = create_sandbox_lms(base_url=base_url, tool_url=tool_url, family=family)
            return built["app"]

        with live_server(build) as lms_url:
            lms_app = built["app"]
            yield Sandbox(app, tool_url, get_sandbox_lms(lms_app), lms_app, lms_url)


def _token_request(sandbox: Sandbox, **form: str) -> requests.Response:
    values = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sandbox.assertion(),
        "scope": f"{SCOPE_LINEITEM} {SCOPE_SCORE}",
        **form,
    }
    return requests.post(
        sandbox.lms.auth_token_url,
        data=urlencode(values),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )


def _score(user_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    body = {
        "userId": user_id,
        "activityProgress": "Started",
        "gradingProgress": "Pending",
        "timestamp": at.isoformat(timespec="milliseconds"),
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def _post_score(item_url: str, token: str, body: dict[str, Any]) -> requests.Response:
    from lti_proctor.lti.ags import scores_url

    return requests.post(
        scores_url(item_url),
        json=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": CT_SCORE},
        timeout=5,
    )


def test_ags_claim_of_the_launch_points_at_the_sandbox_gradebook(sandbox: Sandbox) -> None:
    claim = sandbox.ags_claim

    assert claim["lineitems"].startswith(sandbox.lms_url + "/")
    assert SCOPE_SCORE in claim["scope"] and SCOPE_LINEITEM in claim["scope"]
    token = sandbox.token()
    resp = requests.get(claim["lineitem"], headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 200
    assert resp.json()["label"] == "Final exam (proctored)"
    assert resp.json()["id"] == claim["lineitem"]


def test_token_is_granted_for_the_tools_signed_assertion(sandbox: Sandbox) -> None:
    with sandbox.tool.app_context():
        kid, key = keys.get_signing_key()
        credentials = PlatformCredentials(
            "p", sandbox.lms.site.client_id, sandbox.lms.auth_token_url
        )
        assertion = build_client_assertion(credentials, kid=kid, key=key)

    resp = _token_request(sandbox, client_assertion=assertion)
    again = _token_request(sandbox, client_assertion=assertion)

    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert set(body["scope"].split()) == {SCOPE_LINEITEM, SCOPE_SCORE}
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")  # jti reused


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("signed by another key", "invalid_client"),
        ("unknown kid", "invalid_client"),
        ("sub is not the client", "invalid_client"),
        ("iss is not the client", "invalid_client"),
        ("audience is not the token URL", "invalid_grant"),
        ("expired", "invalid_grant"),
        ("no jti", "invalid_grant"),
        ("password grant", "unsupported_grant_type"),
        ("scope not granted", "invalid_scope"),
        ("no assertion", "invalid_request"),
    ],
)
def test_token_request_with_a_bad_assertion_is_refused(
    sandbox: Sandbox, case: str, error: str
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    form = {
        "signed by another key": {"client_assertion": sandbox.assertion(key=stranger)},
        "unknown kid": {"client_assertion": sandbox.assertion(kid="not-a-tool-kid")},
        "sub is not the client": {"client_assertion": sandbox.assertion(sub="someone-else")},
        "iss is not the client": {"client_assertion": sandbox.assertion(iss="someone-else")},
        "audience is not the token URL": {
            "client_assertion": sandbox.assertion(aud="https://elsewhere.example/token")
        },
        "expired": {"client_assertion": sandbox.assertion(iat=now - 600, exp=now - 300)},
        "no jti": {"client_assertion": sandbox.assertion(jti=None)},
        "password grant": {"grant_type": "password"},
        "scope not granted": {"scope": SCOPE_NRPS},
        "no assertion": {"client_assertion": ""},
    }[case]

    resp = _token_request(sandbox, **form)

    assert resp.status_code == 400
    assert resp.json()["error"] == error
    assert "access_token" not in resp.json()
    assert ("error_description" in resp.json()) is (sandbox.lms.family == "canvas")


def test_line_item_is_created_once_and_found_again(sandbox: Sandbox) -> None:
    first = sandbox.line_item()
    second = sandbox.line_item()

    assert first == second
    token = sandbox.token()
    lineitems = sandbox.ags_claim["lineitems"]
    resp = requests.get(
        lineitems,
        params={"tag": "proctoring"},
        headers={"Authorization": f"Bearer {token}", "Accept": CT_CONTAINER},
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(CT_CONTAINER)
    (item,) = resp.json()
    assert item["id"] == first
    assert (item["label"], item["scoreMaximum"], item["tag"]) == (LABEL, 100, "proctoring")
    assert item["resourceLinkId"] == sandbox.link_id
    every = requests.get(lineitems, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    assert [i["label"] for i in every] == ["Final exam (proctored)", LABEL]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"scoreMaximum": 100}, CT_LINEITEM, 400),
        ({"label": "", "scoreMaximum": 100}, CT_LINEITEM, 400),
        ({"label": "X", "scoreMaximum": 0}, CT_LINEITEM, 400),
        ({"label": "X", "scoreMaximum": "100"}, CT_LINEITEM, 400),
        ({"label": "X", "scoreMaximum": 100}, "application/json", 400),
        ({"label": "X", "scoreMaximum": 100, "resourceLinkId": "nope"}, CT_LINEITEM, 403),
    ],
)
def test_line_item_creation_is_validated(
    sandbox: Sandbox, body: dict[str, Any], content_type: str, status: int
) -> None:
    resp = requests.post(
        sandbox.ags_claim["lineitems"],
        json=body,
        headers={"Authorization": f"Bearer {sandbox.token()}", "Content-Type": content_type},
        timeout=5,
    )

    assert resp.status_code == status
    assert [i.label for i in get_gradebook(sandbox.lms_app).find_items({})] == [
        "Final exam (proctored)"
    ]


def test_line_item_can_be_renamed_and_deleted_then_answers_404(sandbox: Sandbox) -> None:
    item_url = sandbox.line_item()
    auth = {"Authorization": f"Bearer {sandbox.token()}"}

    renamed = requests.put(
        item_url,
        json={"label": "Proctoring: renamed", "scoreMaximum": 100, "tag": "proctoring"},
        headers={**auth, "Content-Type": CT_LINEITEM},
        timeout=5,
    )
    deleted = requests.delete(item_url, headers=auth, timeout=5)

    assert renamed.status_code == 200 and renamed.json()["label"] == "Proctoring: renamed"
    assert deleted.status_code == 204
    assert requests.get(item_url, headers=auth, timeout=5).status_code == 404
    with sandbox.tool.app_context(), pytest.raises(LineItemGoneError):
        sandbox.client().post_score(
            item_url,
            Score(sandbox.student, ActivityProgress.STARTED, GradingProgress.PENDING, T0),
        )


def test_scores_are_accepted_and_the_gradebook_shows_them(sandbox: Sandbox) -> None:
    item_url = sandbox.line_item()
    started = Score(sandbox.student, ActivityProgress.STARTED, GradingProgress.PENDING, T0)
    graded = Score(
        sandbox.student,
        ActivityProgress.COMPLETED,
        GradingProgress.FULLY_GRADED,
        T0 + timedelta(minutes=40),
        score_given=87,
        score_maximum=100,
        comment="Proctoring: reviewed, risk 13, 1 violation",
    )

    with sandbox.tool.app_context():
        client = sandbox.client()
        outcomes = [client.post_score(item_url, started), client.post_score(item_url, graded)]

    assert outcomes == [ScoreOutcome.ACCEPTED, ScoreOutcome.ACCEPTED]
    page = requests.get(sandbox.lms_url + "/gradebook", timeout=5)
    assert page.status_code == 200
    html = page.text
    assert '<meta http-equiv="refresh"' in html
    assert LABEL in html and "Sam Student" in html
    for shown in ("Completed", "FullyGraded", "87 / 100", "risk 13, 1 violation"):
        assert shown in html
    assert "2026-03-02T08:40:00.000+00:00" in html


def test_a_pending_score_keeps_no_grade_on_moodle_but_does_on_canvas(sandbox: Sandbox) -> None:
    item_url = sandbox.line_item()
    pending = Score(
        sandbox.student,
        ActivityProgress.COMPLETED,
        GradingProgress.PENDING_MANUAL,
        T0,
        score_given=40,
        score_maximum=100,
    )

    with sandbox.tool.app_context():
        sandbox.client().post_score(item_url, pending)

    number = max(i.number for i in get_gradebook(sandbox.lms_app).find_items({}))
    stored = get_gradebook(sandbox.lms_app).latest_score(number, sandbox.student)
    assert stored is not None and stored.get("gradingProgress") == "PendingManual"
    expected = None if sandbox.lms.family == "moodle" else 40  # Moodle keeps no grade yet
    assert stored.get("scoreGiven") == expected


def test_an_older_score_is_refused_as_the_lms_refuses_it(sandbox: Sandbox) -> None:
    item_url = sandbox.line_item()
    token = sandbox.token()
    newer = _score(sandbox.student, T0 + timedelta(minutes=5), activityProgress="Completed")
    older = _score(sandbox.student, T0)

    assert _post_score(item_url, token, newer).status_code == 200
    refused = _post_score(item_url, token, older)
    with sandbox.tool.app_context():
        outcome = sandbox.client().post_score(
            item_url, Score(sandbox.student, ActivityProgress.STARTED, GradingProgress.PENDING, T0)
        )

    if sandbox.lms.family == "moodle":
        assert refused.status_code == 409 and "earlier timestamp" in refused.reason
    else:
        assert refused.status_code == 400
        assert "before last updated timestamp" in refused.json()["errors"]["message"]
    assert outcome is ScoreOutcome.SUPERSEDED
    number = max(i.number for i in get_gradebook(sandbox.lms_app).find_items({}))
    latest = get_gradebook(sandbox.lms_app).latest_score(number, sandbox.student)
    assert latest is not None and latest.get("activityProgress") == "Completed"


@pytest.mark.parametrize(
    ("fields", "canvas_status"),
    [
        ({"userId": "999"}, 422),
        ({"userId": "<instructor>"}, 422),
        ({"activityProgress": "Done"}, 422),
        ({"gradingProgress": "Graded"}, 422),
        ({"timestamp": "yesterday"}, 400),
        ({"timestamp": "2026-03-02T08:00:00"}, 400),
        ({"timestamp": None}, 400),
        ({"scoreGiven": 50}, 422),
    ],
)
def test_invalid_scores_are_refused(
    sandbox: Sandbox, fields: dict[str, Any], canvas_status: int
) -> None:
    item_url = sandbox.line_item()
    if fields.get("userId") == "<instructor>":
        fields = {"userId": sandbox.lms.users["instructor"].sub}

    resp = _post_score(item_url, sandbox.token(), _score(sandbox.student, T0, **fields))

    if sandbox.lms.family == "moodle":
        # scores.php: one refusal for every problem, in the status line; the body stays "[]".
        assert (resp.status_code, resp.reason, resp.text) == (
            400,
            "Incorrect score received",
            "[]",
        )
    else:
        assert resp.status_code == canvas_status
        assert resp.json()["errors"]["message"]
    assert get_gradebook(sandbox.lms_app).scores == {}


def test_invalid_score_is_a_permanent_error_for_the_tool(sandbox: Sandbox) -> None:
    item_url = sandbox.line_item()
    stranger = Score("999", ActivityProgress.STARTED, GradingProgress.PENDING, T0)

    with sandbox.tool.app_context(), pytest.raises(AgsRejectedError) as refused:
        sandbox.client().post_score(item_url, stranger)

    assert refused.value.status in (400, 422)


@pytest.mark.parametrize("credential", ["none", "unknown token", "token without score scope"])
def test_score_without_a_valid_token_of_the_right_scope_is_401(
    sandbox: Sandbox, credential: str
) -> None:
    item_url = sandbox.line_item()
    token = {
        "none": "",
        "unknown token": "not-a-token",
        "token without score scope": sandbox.token((SCOPE_LINEITEM,)),
    }[credential]

    resp = _post_score(item_url, token, _score(sandbox.student, T0))

    assert resp.status_code == 401
    assert get_gradebook(sandbox.lms_app).scores == {}


@pytest.mark.parametrize("sandbox", ["moodle"], indirect=True)
def test_moodle_services_need_the_tool_type_id(sandbox: Sandbox) -> None:
    lineitems = sandbox.ags_claim["lineitems"].split("?")[0]

    resp = requests.get(
        lineitems, headers={"Authorization": f"Bearer {sandbox.token()}"}, timeout=5
    )

    assert resp.status_code == 401


def test_course_index_links_the_gradebook_with_the_proctoring_column(sandbox: Sandbox) -> None:
    sandbox.line_item()

    index = requests.get(sandbox.lms_url + "/", timeout=5).text
    page = requests.get(sandbox.lms_url + "/gradebook", timeout=5).text

    assert 'href="/gradebook"' in index
    assert LABEL in page and "added by the tool" in page and "Final exam (proctored)" in page
