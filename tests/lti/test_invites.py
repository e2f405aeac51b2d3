"""lti.invites: single use, expiry and the duration parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lti_proctor.extensions import db
from lti_proctor.lti import invites
from tests.factories import make_platform

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)), ("7d", timedelta(days=7))],
)
def test_parse_duration(text, expected):
    assert invites.parse_duration(text) == expected


def test_invite_is_used_once_and_expires(app):
    with app.app_context():
        platform = make_platform()
        created = invites.create_invite(now=NOW, expires_in=timedelta(hours=1))
        invite = created.invite
        assert invites.get_open_invite(created.token, now=NOW) is invite
        assert invites.get_open_invite(created.token, now=NOW + timedelta(hours=2)) is None
        assert invites.use_invite(invite, platform_id=platform.id, now=NOW)
        assert not invites.use_invite(invite, platform_id=platform.id, now=NOW)
        db.session.commit()
        assert invite.status(NOW) == "used" and invite.platform_id == platform.id
