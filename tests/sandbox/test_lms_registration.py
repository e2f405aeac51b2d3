"""The sandbox LMS's Dynamic Registration page, driven end to end through the running demo."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from lti_proctor.demo import RunningDemo, start_demo
from lti_proctor.extensions import db
from lti_proctor.lti import invites
from lti_proctor.lti.platforms import list_platforms
from lti_proctor.sandbox.lms_platform import get_sandbox_lms
from lti_proctor.sandbox.lms_registration import PATHS, configuration
from tests.live import Browser, Page


@pytest.fixture(params=["moodle", "canvas"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningDemo]:
    overrides = {"INSTANCE_PATH": str(tmp_path / "instance")}
    with start_demo(port_base=0, family=request.param, overrides=overrides) as running:
        yield running


def make_invite(demo: RunningDemo) -> str:
    """What `lti-proctor platform invite` prints as its last line, for the demo's tool."""
    with demo.tool_app.app_context():
        created = invites.create_invite(now=datetime.now(UTC), expires_in=timedelta(days=1))
        db.session.commit()
        token = created.token
        db.session.remove()
    return f"{demo.urls.tool}/lti/register?invite={token}"


def paste(browser: Browser, demo: RunningDemo, url: str) -> Page:
    """The admin pastes url on the LMS's registration page; the frame's resting page."""
    admin = demo.urls.lms + PATHS[demo.family]["admin"]
    form = Page(browser.session.post(admin, data={"url": url}, timeout=10))
    assert form.iframes, form.text[:300]
    return browser.open(urljoin(admin, form.iframes[0]))


def registered(demo: RunningDemo) -> list[tuple[str, str, list[str]]]:
    with demo.tool_app.app_context():
        found = [
            (p.issuer, p.client_id, [d.deployment_id for d in p.deployments])
            for p in list_platforms()
        ]
        db.session.remove()
    return found


def test_admin_pastes_invite_then_student_launches_with_no_command(demo: RunningDemo) -> None:
    browser = Browser()
    before = registered(demo)
    done = paste(browser, demo, make_invite(demo))
    assert done.status == 200, done.text[:400]
    assert "The proctoring tool is registered" in done.text
    lms = get_sandbox_lms(demo.lms_app)
    assert lms.site.client_id in done.text
    after = registered(demo)
    assert len(after) == len(before) + 1
    issuer, client_id, deployments = after[-1]
    assert (issuer, client_id) == (lms.site.issuer, lms.site.client_id)
    assert deployments == ([] if demo.family == "canvas" else [lms.site.deployment_id])

    # The demo's exam was kept in the tool for the demo's own registration; a new registration
    # is another platform, so its link would be refused (launch.exam_not_found). Launch a plain
    # legacy link instead: this test is about registering.
    lms.links["final"].custom = {"exam_url": demo.urls.lms + "/quiz/1"}
    index = browser.open(demo.urls.lms + "/")
    exam = browser.open(index.link("Launch as student"))
    assert exam.status == 200 and exam.url == demo.urls.tool + "/exam/start"
    assert 'id="exam-app"' in exam.text
    assert registered(demo)[-1][2] == [lms.site.deployment_id]  # learned on Canvas


def test_the_same_invite_pasted_again_is_refused(demo: RunningDemo) -> None:
    browser = Browser()
    url = make_invite(demo)
    assert paste(browser, demo, url).status == 200
    count = len(registered(demo))
    again = paste(browser, demo, url)
    assert again.status == 403
    assert "register.invite_invalid" in again.text
    assert len(registered(demo)) == count


def test_canvas_configuration_needs_the_registration_token(demo: RunningDemo) -> None:
    url = demo.urls.lms + PATHS[demo.family]["configuration"]
    resp = requests.get(url, timeout=5)
    if demo.family == "canvas":
        assert resp.status_code == 401
    else:
        assert resp.status_code == 200
        assert resp.json() == configuration(get_sandbox_lms(demo.lms_app))


def test_registration_endpoint_refuses_without_a_token(demo: RunningDemo) -> None:
    url = demo.urls.lms + PATHS[demo.family]["registration"]
    resp = requests.post(url, json={}, timeout=5)
    assert resp.status_code == 401
    assert resp.text == "missing_registration_token"
