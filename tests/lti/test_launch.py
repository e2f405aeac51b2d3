"""Launch validation (/lti/launch): accepted launches and every rejection, each of which must
leave nothing stored; and Moodle/Canvas launches end to end through the sandbox LMS over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
from flask import Flask, render_template
from flask.testing import FlaskClient

from lti_proctor.extensions import db
from lti_proctor.lti.context import LaunchContext
from lti_proctor.lti.registrations import Deployment
from lti_proctor.lti.roles import Role
from lti_proctor.sandbox.lms import create_sandbox_lms
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.web import lti as web_lti
from tests.constants import TOOL_URL
from tests.factories import make_platform, register_described
from tests.launches import (
    LaunchBuilder,
    Login,
    nonce_pending,
    platform_key,
    table_counts,
)
from tests.live import Browser, live_server, parse_forms


@pytest.fixture
def builder(app: Flask, client: FlaskClient, http: responses.RequestsMock) -> LaunchBuilder:
    """A registered Moodle 4.5 platform launching student1."""
    return LaunchBuilder(app, client, http)


@pytest.fixture(autouse=True)
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[LaunchContext]:
    """The LaunchContexts handed on by the launch view during the test.

    These tests are about the LTI layer alone: a validated launch shows its context page here
    instead of going on to the exam (tests/web/test_exam.py covers that hand-off).
    """
    seen: list[LaunchContext] = []

    def spy(ctx: LaunchContext) -> Any:
        seen.append(ctx)
        return render_template("lti/launched.html", ctx=ctx)

    monkeypatch.setattr(web_lti, "_respond_to_launch", spy)
    return seen


def assert_refused(resp: Any, status: int, reason: str) -> None:
    assert resp.status_code == status, resp.data[:600]
    assert f'<code class="reason">{reason}</code>' in resp.get_data(as_text=True)
    assert 'class="request-id"' in resp.get_data(as_text=True)


# --- accepted launches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "message", "roles"),
    [
        ("moodle", "student", {Role.LEARNER}),
        ("moodle", "instructor", {Role.INSTRUCTOR}),
        ("canvas", "student", {Role.LEARNER}),
        ("canvas", "instructor", {Role.INSTRUCTOR}),
    ],
)
def test_resource_link_launch_yields_the_launch_context(
    app: Flask,
    client: FlaskClient,
    http: responses.RequestsMock,
    contexts: list[LaunchContext],
    family: str,
    message: str,
    roles: set[Role],
) -> None:
    b = LaunchBuilder(app, client, http, family=family, message=message)
    claims = b.fixture["claims"]

    resp = b.launch()

    assert resp.status_code == 200
    (ctx,) = contexts
    lti = "https://purl.imsglobal.org/spec/lti/claim/"
    assert ctx.issuer == b.issuer and ctx.client_id == b.client_id
    assert ctx.deployment_id == b.deployment_id
    assert ctx.message_type == "LtiResourceLinkRequest"
    assert ctx.user_sub == claims["sub"]
    assert ctx.roles == roles
    assert ctx.is_instructor is (Role.INSTRUCTOR in roles)
    assert (ctx.context_id, ctx.context_label, ctx.context_title) == (
        claims[lti + "context"]["id"],
        "PROC101",
        "Proctored Exams 101",
    )
    assert ctx.resource_link_id == claims[lti + "resource_link"]["id"]
    assert ctx.resource_link_title == "Final exam (proctored)"
    assert (ctx.user_name, ctx.given_name, ctx.family_name, ctx.email) == (
        claims["name"],
        claims["given_name"],
        claims["family_name"],
        claims["email"],
    )
    assert ctx.custom == {}
    assert ctx.locale == "en"
    assert ctx.document_target == "iframe"
    assert ctx.return_url == claims[lti + "launch_presentation"]["return_url"]
    assert ctx.platform_family == family
    ags = claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]
    assert ctx.ags is not None
    assert ctx.ags.scopes == tuple(ags["scope"])
    assert (ctx.ags.lineitems, ctx.ags.lineitem) == (ags["lineitems"], ags["lineitem"])
    assert ctx.nrps is None
    page = resp.get_data(as_text=True)
    assert claims["name"] in page and "Final exam (proctored)" in page


@pytest.mark.parametrize("family", ["moodle", "canvas"])
def test_deep_linking_launch_is_accepted_with_its_settings(
    app: Flask,
    client: FlaskClient,
    http: responses.RequestsMock,
    contexts: list[LaunchContext],
    family: str,
) -> None:
    b = LaunchBuilder(app, client, http, family=family, message="deep-linking")

    resp = b.launch()

    assert resp.status_code == 200
    (ctx,) = contexts
    assert ctx.message_type == "LtiDeepLinkingRequest"
    assert ctx.resource_link_id is None
    assert ctx.deep_linking_settings is not None
    assert ctx.deep_linking_settings["accept_types"] == ["ltiResourceLink"]
    assert ctx.is_instructor


def test_launch_reads_custom_nrps_and_canvas_top_level_locale(
    app: Flask, client: FlaskClient, http: responses.RequestsMock, contexts: list[LaunchContext]
) -> None:
    b = LaunchBuilder(app, client, http, family="canvas")
    nrps = {
        "context_memberships_url": "https://school.instructure.com/api/lti/courses/1/names_and_roles",
        "service_versions": ["2.0"],
    }
    presentation = {"document_target": "window", "return_url": "https://school.example/x"}

    resp = b.launch(
        overrides={
            "custom": {"profile": "strict", "attempts": 2, "empty": None},
            "nrps": nrps,
            "launch_presentation": presentation,
            "locale": "de",
        }
    )

    assert resp.status_code == 200
    (ctx,) = contexts
    assert ctx.custom == {"profile": "strict", "attempts": "2"}
    assert ctx.nrps is not None
    assert ctx.nrps.context_memberships_url == nrps["context_memberships_url"]
    assert ctx.nrps.service_versions == ("2.0",)
    assert (ctx.locale, ctx.document_target) == ("de", "window")


@pytest.mark.parametrize(
    "audience",
    [
        pytest.param({"aud": ["qJFGPTxkK5WNQyx"]}, id="aud-list-of-one"),
        pytest.param({"aud": ["qJFGPTxkK5WNQyx", "other"], "azp": "qJFGPTxkK5WNQyx"}, id="azp"),
    ],
)
def test_launch_accepts_an_audience_list_naming_our_client(
    builder: LaunchBuilder, audience: dict[str, Any]
) -> None:
    assert builder.launch(overrides=audience).status_code == 200


def test_launch_accepts_clock_skew_within_the_leeway(builder: LaunchBuilder) -> None:
    now = int(time.time())
    login = builder.login()
    token = builder.sign(builder.claims(login, overrides={"iat": now + 20, "exp": now - 20}))
    assert builder.post(token, login.state).status_code == 200


def test_launch_consumes_the_nonce_and_expires_the_state_cookie(
    app: Flask, builder: LaunchBuilder
) -> None:
    login = builder.login()
    assert nonce_pending(app, login.nonce)

    resp = builder.post(builder.sign(builder.claims(login)), login.state)

    assert resp.status_code == 200
    assert not nonce_pending(app, login.nonce)
    cleared = [h for h in resp.headers.getlist("Set-Cookie") if login.state in h]
    assert cleared and "Max-Age=0" in cleared[0]
    assert "SameSite=None" in cleared[0] and "Secure" in cleared[0]


def test_one_issuer_with_two_client_ids_launches_each(
    app: Flask, builder: LaunchBuilder, contexts: list[LaunchContext]
) -> None:
    with app.app_context():
        make_platform(client_id="second-client", deployments=["1"])

    login = builder.login(client_id="second-client")
    token = builder.sign(builder.claims(login, overrides={"aud": "second-client"}))

    assert builder.post(token, login.state).status_code == 200
    assert contexts[0].client_id == "second-client"


def test_lti_pages_never_forbid_framing(builder: LaunchBuilder) -> None:
    login = builder.login()
    ok = builder.post(builder.sign(builder.claims(login)), login.state)
    refused = builder.post("not-a-token", "state-x")
    for resp in (login.response, ok, refused):
        assert "X-Frame-Options" not in resp.headers


# --- rejections ------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


Mint = Callable[[LaunchBuilder, Login], str]

# (mint the id_token for a login, status, reason code, text the page must show)
REJECTIONS: dict[str, tuple[Mint, int, str, str]] = {
    "bad_signature": (
        lambda b, lg: b.sign(
            b.claims(lg), key=platform_key("attacker"), headers={"kid": b.key.kid}
        ),
        400,
        "launch.signature_invalid",
        "",
    ),
    "tampered_payload": (
        lambda b, lg: _tamper(b.sign(b.claims(lg)), b.claims(lg, overrides={"sub": "9"})),
        400,
        "launch.signature_invalid",
        "",
    ),
    "expired": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"iat": _now() - 600, "exp": _now() - 300})),
        400,
        "launch.token_expired",
        "",
    ),
    "iat_in_the_future": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"iat": _now() + 600, "exp": _now() + 660})),
        400,
        "launch.token_not_yet_valid",
        "",
    ),
    "cert_timestamps_11111_22222": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"iat": 11111, "exp": 22222})),
        400,
        "launch.token_expired",
        "",
    ),
    "unknown_issuer": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"iss": "https://lms.unknown.example"})),
        400,
        "launch.registration_unknown",
        "unknown issuer",
    ),
    "unknown_client_id": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"aud": "not-registered"})),
        400,
        "launch.registration_unknown",
        "unknown client_id",
    ),
    "several_audiences_without_azp": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"aud": [b.client_id, "other-tool"]})),
        400,
        "launch.audience_invalid",
        "no azp",
    ),
    "azp_not_an_audience": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"azp": "other-tool"})),
        400,
        "launch.audience_invalid",
        "azp",
    ),
    "unknown_deployment": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"deployment_id": "99"})),
        400,
        "launch.deployment_unknown",
        "99",
    ),
    "alg_none": (
        lambda b, lg: b.sign(b.claims(lg), headers={"alg": "none"}),
        400,
        "launch.algorithm_not_allowed",
        "none",
    ),
    "hs256_signed_with_the_platform_public_key": (
        lambda b, lg: b.sign(b.claims(lg), headers={"alg": "HS256"}),
        400,
        "launch.algorithm_not_allowed",
        "HS256",
    ),
    "cert_no_kid": (
        lambda b, lg: b.sign(b.claims(lg), headers={"kid": None}),
        400,
        "launch.kid_unknown",
        "no kid",
    ),
    "wrong_message_type": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"message_type": "DataPrivacyLaunchRequest"})),
        400,
        "launch.message_unsupported",
        "DataPrivacyLaunchRequest",
    ),
    "cert_wrong_lti_version": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"version": "11.3"})),
        400,
        "launch.version_unsupported",
        "11.3",
    ),
    "cert_not_an_lti_message": (
        lambda b, lg: b.sign({"name": "badltilaunch"}),
        400,
        "launch.claim_missing",
        "missing claim: iss",
    ),
    "cert_aud_iss_sub_deployment_roles_missing": (
        lambda b, lg: b.sign(b.claims(lg, drop=["aud", "iss", "sub", "deployment_id", "roles"])),
        400,
        "launch.claim_missing",
        "missing claim",
    ),
    "nonce_never_issued": (
        lambda b, lg: b.sign(b.claims(None)),
        400,
        "launch.nonce_invalid",
        "",
    ),
    "roles_not_a_list": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"roles": "Learner"})),
        400,
        "launch.claim_invalid",
        "roles",
    ),
    "context_not_an_object": (
        lambda b, lg: b.sign(b.claims(lg, overrides={"context": ["PROC101"]})),
        400,
        "launch.claim_invalid",
        "context",
    ),
    "not_a_jwt": (lambda b, lg: "not-a-jwt", 400, "launch.token_invalid", ""),
    "body_not_a_json_object": (
        lambda b, lg: _tamper(b.sign(b.claims(lg)), ["a", "list"]),
        400,
        "launch.token_invalid",
        "",
    ),
}


def _tamper(token: str, body: Any) -> str:
    """Replace a signed token's body, keeping the header and the old signature."""
    import base64
    import json

    header, _, signature = token.split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_launch_rejection_shows_reason_and_stores_nothing(
    app: Flask, builder: LaunchBuilder, case: str
) -> None:
    mint, status, reason, shown = REJECTIONS[case]
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(mint(builder, login), login.state)

    assert_refused(resp, status, reason)
    assert shown in resp.get_data(as_text=True)
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


REQUIRED = [
    "iss",
    "aud",
    "nonce",
    "exp",
    "iat",
    "sub",
    "roles",
    "deployment_id",
    "message_type",
    "version",
    "resource_link.id",
]


@pytest.mark.parametrize("claim", REQUIRED)
def test_launch_missing_a_required_claim_names_it(
    app: Flask, builder: LaunchBuilder, claim: str
) -> None:
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(builder.sign(builder.claims(login, drop=[claim])), login.state)

    assert_refused(resp, 400, "launch.claim_missing")
    assert f"missing claim: {claim}" in resp.get_data(as_text=True)
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


def test_deep_linking_launch_without_its_settings_is_refused(
    app: Flask, client: FlaskClient, http: responses.RequestsMock
) -> None:
    b = LaunchBuilder(app, client, http, family="canvas", message="deep-linking")
    before = table_counts(app)

    resp = b.launch(drop=["deep_linking_settings"])

    assert_refused(resp, 400, "launch.claim_missing")
    assert "missing claim: deep_linking_settings" in resp.get_data(as_text=True)
    assert table_counts(app) == before


def test_launch_for_another_registered_client_than_the_login_is_wrong_aud(
    app: Flask, builder: LaunchBuilder
) -> None:
    with app.app_context():
        make_platform(client_id="second-client", deployments=["1"])
    login = builder.login()  # for qJFGPTxkK5WNQyx
    before = table_counts(app)

    token = builder.sign(builder.claims(login, overrides={"aud": "second-client"}))
    resp = builder.post(token, login.state)

    assert_refused(resp, 400, "launch.audience_invalid")
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


def test_launch_on_an_inactive_deployment_is_forbidden(app: Flask, builder: LaunchBuilder) -> None:
    with app.app_context():
        db.session.query(Deployment).update({"active": False})
        db.session.commit()
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(builder.sign(builder.claims(login)), login.state)

    assert_refused(resp, 403, "launch.deployment_inactive")
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


def test_replayed_launch_is_refused_as_nonce_replayed(app: Flask, builder: LaunchBuilder) -> None:
    login = builder.login()
    token = builder.sign(builder.claims(login))
    assert builder.post(token, login.state).status_code == 200
    # The attacker replays the captured form post, with the state cookie too.
    builder.client.set_cookie(f"lti1p3-{login.state}", login.state)
    before = table_counts(app)

    resp = builder.post(token, login.state)

    assert_refused(resp, 400, "launch.nonce_replayed")
    assert table_counts(app) == before


def test_launch_without_the_state_cookie_is_state_missing(
    app: Flask, builder: LaunchBuilder
) -> None:
    login = builder.login()
    token = builder.sign(builder.claims(login))
    cookieless = app.test_client()  # e.g. a browser that blocks third-party cookies in frames
    before = table_counts(app)

    resp = builder.post(token, login.state, client=cookieless)

    assert_refused(resp, 400, "launch.state_missing")
    assert "new window" in resp.get_data(as_text=True)
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


@pytest.mark.parametrize(
    "posted_state",
    [pytest.param("state-0123456789abcdef", id="other-state"), pytest.param(None, id="no-state")],
)
def test_launch_with_a_state_not_matching_the_cookie_is_state_mismatch(
    app: Flask, builder: LaunchBuilder, posted_state: str | None
) -> None:
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(builder.sign(builder.claims(login)), posted_state)

    assert_refused(resp, 400, "launch.state_mismatch")
    assert table_counts(app) == before
    assert nonce_pending(app, login.nonce)


def test_launch_pairing_one_logins_nonce_with_another_logins_state_is_refused(
    app: Flask, builder: LaunchBuilder
) -> None:
    first, second = builder.login(), builder.login()

    resp = builder.post(builder.sign(builder.claims(first)), second.state)

    assert_refused(resp, 400, "launch.nonce_invalid")
    assert nonce_pending(app, first.nonce) and nonce_pending(app, second.nonce)


def test_platform_error_response_is_shown_as_platform_refused(builder: LaunchBuilder) -> None:
    login = builder.login()
    data = {"error": "access_denied", "error_description": "Not logged in", "state": login.state}

    resp = builder.client.post("/lti/launch", data=data)

    assert_refused(resp, 400, "launch.platform_refused")
    assert "access_denied" in resp.get_data(as_text=True)


# --- the platform's key set ------------------------------------------------------------------


def test_unknown_kid_refetches_the_key_set_at_most_once_per_cooldown(
    app: Flask, builder: LaunchBuilder
) -> None:
    app.config["LTI_JWKS_REFETCH_COOLDOWN_S"] = 0.2
    assert builder.launch().status_code == 200
    assert builder.jwks_calls() == 1
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(builder.sign(builder.claims(login), headers={"kid": "k-1"}), login.state)

    assert_refused(resp, 400, "launch.kid_unknown")
    assert builder.jwks_calls() == 2  # exactly one refetch
    assert table_counts(app) == before and nonce_pending(app, login.nonce)
    # A flood of made-up kids reaches the LMS at most once per cooldown, whoever sends it.
    started = time.monotonic()
    for n in range(6):
        token = builder.sign(builder.claims(login), headers={"kid": f"forged-{n}"})
        assert_refused(builder.post(token, login.state), 400, "launch.kid_unknown")
    cooldowns = (time.monotonic() - started) / 0.2
    assert builder.jwks_calls() - 2 <= int(cooldowns) + 1
    assert table_counts(app) == before and nonce_pending(app, login.nonce)


def test_forged_kid_flood_does_not_block_a_launch_signed_with_a_rotated_key(
    app: Flask, builder: LaunchBuilder
) -> None:
    app.config["LTI_JWKS_REFETCH_COOLDOWN_S"] = 0.3
    assert builder.launch().status_code == 200
    attacker = builder.login()  # anyone may start a login; the state and nonce are theirs
    for n in range(5):
        forged = builder.sign(builder.claims(attacker), headers={"kid": f"forged-{n}"})
        assert_refused(builder.post(forged, attacker.state), 400, "launch.kid_unknown")
    # The LMS rotates its key right after the flood's last refetch, and signs with it at once.
    rotated = platform_key("rotated")
    builder.serve_jwks([builder.key, rotated])
    calls_before_genuine = builder.jwks_calls()
    login = builder.login()

    resp = builder.post(builder.sign(builder.claims(login), key=rotated), login.state)

    assert resp.status_code == 200, resp.data[:600]
    assert builder.jwks_calls() <= calls_before_genuine + 1


def test_a_rotated_platform_key_is_found_by_refetching(builder: LaunchBuilder) -> None:
    assert builder.launch().status_code == 200
    rotated = platform_key("rotated")
    builder.serve_jwks([builder.key, rotated])
    login = builder.login()

    resp = builder.post(builder.sign(builder.claims(login), key=rotated), login.state)

    assert resp.status_code == 200
    assert builder.jwks_calls() == 2


def test_key_set_is_fetched_once_for_many_launches_and_shared_with_a_second_worker(
    app: Flask, app_config: dict[str, Any], builder: LaunchBuilder
) -> None:
    for _ in range(3):
        assert builder.launch().status_code == 200
    from lti_proctor import create_app
    from lti_proctor.lti.jwks import parsed_key_cache_info

    second_worker = create_app(app_config)  # same database and shared store, new process state
    parsed_before = parsed_key_cache_info().misses
    try:
        resp = builder.launch(client=second_worker.test_client())
    finally:
        with second_worker.app_context():
            db.engine.dispose()

    assert resp.status_code == 200
    assert builder.jwks_calls() == 1
    assert parsed_key_cache_info().misses == parsed_before  # the key was parsed once, earlier


def test_unreachable_key_set_is_refused_with_jwks_unavailable(
    app: Flask, builder: LaunchBuilder
) -> None:
    builder.http.remove(responses.GET, builder.jwks_url)
    builder.http.get(builder.jwks_url, status=503, body="maintenance")
    login = builder.login()

    resp = builder.post(builder.sign(builder.claims(login)), login.state)

    assert_refused(resp, 400, "launch.jwks_unavailable")
    assert nonce_pending(app, login.nonce)


# --- end to end through the sandbox LMS over real HTTP --------------------------------------


@pytest.fixture
def live_tool(app: Flask) -> Iterator[str]:
    """The tool served over http on 127.0.0.1, with dev cookies (plain http) allowed."""
    with live_server(app) as url:
        app.config.update(BASE_URL=url, DEV_INSECURE_COOKIES=True)
        yield url
        app.config["BASE_URL"] = TOOL_URL


@pytest.fixture(params=["moodle", "canvas"])
def sandbox(request: pytest.FixtureRequest, app: Flask, live_tool: str) -> Iterator[str]:
    """A sandbox Moodle or Canvas served over http and registered in the tool; its URL."""
    built: dict[str, Flask] = {}

    def build(base_url: str) -> Flask:
        built["lms"] = create_sandbox_lms(
            base_url=base_url, tool_url=live_tool, family=request.param
        )
        return built["lms"]

    with live_server(build) as url:
        with app.app_context():
            register_described(get_sandbox_lms(built["lms"]).describe())
        yield url


@pytest.mark.parametrize(
    ("who", "shown_role"), [("student", "learner"), ("instructor", "instructor")]
)
def test_launch_from_the_sandbox_lms_over_http_succeeds(
    app: Flask, sandbox: str, live_tool: str, who: str, shown_role: str
) -> None:
    browser = Browser()
    course = browser.open(sandbox + "/")

    page = browser.open(course.link(f"Launch as {who}"))

    assert page.status == 200, page.text
    assert page.url == live_tool + "/lti/launch"
    assert "Final exam (proctored)" in page.text
    assert "Proctored Exams 101" in page.text
    assert f'<td class="roles">{shown_role}</td>' in page.text
    name = "Sam Student" if who == "student" else "Terry Teacher"
    assert f"Hello {name}" in page.text
    # The login went to the tool, the LMS's auth endpoint, and back as a form_post.
    visited = [p.url.split("?")[0] for p in browser.history]
    # A redirect, not a resting page; Canvas's framed launch (lti_storage_target) gets the
    # Platform Storage page, whose script goes on to the LMS by itself.
    logins = [p for p in browser.history if p.url.split("?")[0] == live_tool + "/lti/login"]
    assert all('id="lti-continue"' in p.text and "data-auto-submit" in p.text for p in logins)
    assert any(u.endswith(("/mod/lti/auth.php", "/api/lti/authorize")) for u in visited)


def test_deep_linking_from_the_sandbox_lms_over_http_succeeds(sandbox: str, live_tool: str) -> None:
    browser = Browser()
    course = browser.open(sandbox + "/")

    page = browser.open(course.link("Add the tool to the course"))

    assert page.status == 200, page.text
    assert "LtiDeepLinkingRequest" in page.text


def test_resubmitting_the_sandbox_auth_form_is_refused_as_replayed(
    app: Flask, sandbox: str
) -> None:
    browser = Browser()
    page = browser.open(browser.open(sandbox + "/").link("Launch as student"))
    assert page.status == 200
    auth_page = browser.history[-2]
    form = auth_page.auto_submitted_form()
    assert form is not None
    before = table_counts(app)
    # The browser keeps no state cookie after success, so restore it as an attacker would.
    state = dict(form.fields)["state"]
    browser.session.cookies.set(f"lti1p3-{state}", state)

    again = browser.session.post(form.action, data=form.fields, timeout=10)

    assert again.status_code == 400
    assert '<code class="reason">launch.nonce_replayed</code>' in again.text
    assert table_counts(app) == before


# --- stricter launches (issue 9 item 3) -------------------------------------------------------


def test_launch_issued_longer_ago_than_the_maximum_age_is_refused_despite_a_valid_exp(
    app: Flask, builder: LaunchBuilder
) -> None:
    now = int(time.time())
    login = builder.login()
    before = table_counts(app)
    old = builder.claims(login, overrides={"iat": now - 3600 - 31, "exp": now + 3600})

    resp = builder.post(builder.sign(old), login.state)

    assert_refused(resp, 400, "launch.token_too_old")
    assert table_counts(app) == before and nonce_pending(app, login.nonce)


def test_launch_age_limit_is_configurable_and_allows_the_leeway(
    app: Flask, builder: LaunchBuilder
) -> None:
    app.config["LTI_MAX_TOKEN_AGE_S"] = 600
    now = int(time.time())
    login = builder.login()
    within = builder.claims(login, overrides={"iat": now - 620, "exp": now + 60})
    assert builder.post(builder.sign(within), login.state).status_code == 200

    login = builder.login()
    beyond = builder.claims(login, overrides={"iat": now - 700, "exp": now + 60})
    assert_refused(builder.post(builder.sign(beyond), login.state), 400, "launch.token_too_old")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/lti/launch",
        "http://tool.example.com/lti/launch",
        "https://tool.example.com:8443/lti/launch",
        "https://tool.example.com.evil.example/lti/launch",
        "https://tool.example.com@evil.example/lti/launch",
        "javascript:alert(1)",
        "/lti/launch",
    ],
    ids=["other-host", "plain-http", "other-port", "suffix-host", "userinfo", "script", "relative"],
)
def test_launch_whose_target_link_uri_is_not_this_tool_is_refused(
    app: Flask, builder: LaunchBuilder, target: str
) -> None:
    login = builder.login()
    before = table_counts(app)

    resp = builder.post(
        builder.sign(builder.claims(login, overrides={"target_link_uri": target})), login.state
    )

    assert_refused(resp, 400, "launch.target_link_invalid")
    assert table_counts(app) == before and nonce_pending(app, login.nonce)


def test_launch_without_target_link_uri_names_the_missing_claim(
    app: Flask, builder: LaunchBuilder
) -> None:
    login = builder.login()

    resp = builder.post(builder.sign(builder.claims(login, drop=["target_link_uri"])), login.state)

    assert_refused(resp, 400, "launch.claim_missing")
    assert "missing claim: target_link_uri" in resp.get_data(as_text=True)
    assert nonce_pending(app, login.nonce)


def test_form_posted_a_second_time_is_a_replay_not_a_missing_cookie(
    app: Flask, builder: LaunchBuilder
) -> None:
    login = builder.login()
    token = builder.sign(builder.claims(login))
    first = builder.post(token, login.state)
    assert first.status_code == 200
    assert builder.client.get_cookie(f"lti1p3-{login.state}") is None  # cleared by the launch
    before = table_counts(app)

    again = builder.post(token, login.state)  # the browser resubmits the form (Back, F5)

    assert_refused(again, 400, "launch.nonce_replayed")
    assert table_counts(app) == before


# --- LTI Platform Storage: the launch without a cookie -----------------------------------------


@pytest.fixture
def storage_launch(
    app: Flask, client: FlaskClient, http: responses.RequestsMock
) -> tuple[LaunchBuilder, Login, str, FlaskClient]:
    """A Canvas login that used Platform Storage, its id_token, and a browser without cookies."""
    b = LaunchBuilder(app, client, http, family="canvas")
    login = b.login(lti_storage_target="post_message_forwarding")
    (form,) = parse_forms(login.response.get_data(as_text=True))
    params = dict(form.fields)
    login = Login(login.response, params)
    return b, login, b.sign(b.claims(login)), app.test_client()


def _storage_post(
    b: LaunchBuilder, client: FlaskClient, token: str, state: str, nonce: str, origin: str
) -> Any:
    data = {"id_token": token, "state": state, "lti_storage_state": state}
    data["lti_storage_nonce"] = nonce
    return client.post("/lti/launch", data=data, headers={"Origin": origin})


def test_cookieless_launch_of_a_storage_login_asks_the_page_to_read_platform_storage(
    app: Flask, storage_launch: tuple[LaunchBuilder, Login, str, FlaskClient]
) -> None:
    b, login, token, cookieless = storage_launch
    before = table_counts(app)

    resp = b.post(token, login.state, client=cookieless)

    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'data-mode="launch"' in page and 'data-origin="https://sso.canvaslms.com"' in page
    assert f'data-state-key="lti-proctor.state.{login.state}"' in page
    assert f'name="id_token" value="{token}"' in page
    assert table_counts(app) == before and nonce_pending(app, login.nonce)


def test_launch_with_the_values_read_back_from_platform_storage_is_accepted_once(
    app: Flask, storage_launch: tuple[LaunchBuilder, Login, str, FlaskClient]
) -> None:
    b, login, token, cookieless = storage_launch

    resp = _storage_post(b, cookieless, token, login.state, login.nonce, TOOL_URL)

    assert resp.status_code == 200, resp.data[:600]
    assert not nonce_pending(app, login.nonce)
    again = _storage_post(b, cookieless, token, login.state, login.nonce, TOOL_URL)
    assert_refused(again, 400, "launch.nonce_replayed")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"origin": "https://evil.example"}, "launch.state_mismatch"),
        ({"origin": ""}, "launch.state_mismatch"),
        ({"stored_state": "state-forged"}, "launch.state_mismatch"),
        ({"stored_nonce": "forged-nonce"}, "launch.state_mismatch"),
    ],
    ids=["foreign-origin", "no-origin", "wrong-state", "wrong-nonce"],
)
def test_platform_storage_answer_not_from_the_tools_page_or_not_matching_is_refused(
    app: Flask,
    storage_launch: tuple[LaunchBuilder, Login, str, FlaskClient],
    change: dict[str, str],
    reason: str,
) -> None:
    _b, login, token, cookieless = storage_launch
    before = table_counts(app)
    data = {
        "id_token": token,
        "state": login.state,
        "lti_storage_state": change.get("stored_state", login.state),
        "lti_storage_nonce": change.get("stored_nonce", login.nonce),
    }
    origin = change.get("origin", TOOL_URL)
    headers = {"Origin": origin} if origin else {}

    resp = cookieless.post("/lti/launch", data=data, headers=headers)

    assert_refused(resp, 400, reason)
    assert table_counts(app) == before and nonce_pending(app, login.nonce)


def test_cookieless_launch_of_a_cookie_login_is_still_state_missing(
    app: Flask, builder: LaunchBuilder
) -> None:
    login = builder.login()
    token = builder.sign(builder.claims(login))

    resp = _storage_post(builder, app.test_client(), token, login.state, login.nonce, TOOL_URL)

    assert_refused(resp, 400, "launch.state_missing")
    assert nonce_pending(app, login.nonce)
