from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from lti_proctor.lti.nrps import CT_MEMBERSHIPS, SCOPE, NrpsClient
from lti_proctor.lti.service_http import AgsRejectedError
from lti_proctor.lti.service_tokens import PlatformCredentials

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MOODLE = "https://moodle.example.edu/mod/lti/services.php/CourseSection/2/bindings/1/memberships"
CANVAS = "https://school.instructure.com/api/lti/courses/1/names_and_roles"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
TEACHER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str, ttl_s: float) -> None:
        self.data[key] = value

    def add(self, key: str, value: str, ttl_s: float) -> bool:
        return self.data.setdefault(key, value) == value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def member(uid: str, name: str, role: str = LEARNER, status: str = "Active") -> dict[str, object]:
    first, last = name.split()
    return {
        "status": status,
        "roles": [role],
        "user_id": uid,
        "name": name,
        "given_name": first,
        "family_name": last,
        "email": f"{first.lower()}@example.edu",
    }


def serve_pages(http, url: str, pages: list[list[dict[str, object]]], *, quote: str = '"'):
    """Answer the roster as Moodle/Canvas do: one page per request, Link rel=next to the next."""
    tokens = []

    def token(request):
        form = parse_qs(request.body)
        assert form["grant_type"] == ["client_credentials"]
        assert form["scope"] == [SCOPE]
        tokens.append(form)
        return 200, {}, json.dumps({"access_token": "nrps-token", "expires_in": 3600})

    def roster(request):
        assert request.headers["Authorization"] == "Bearer nrps-token"
        assert request.headers["Accept"] == CT_MEMBERSHIPS
        index = int(parse_qs(request.url.partition("?")[2]).get("page", ["0"])[0])
        headers = {"Content-Type": CT_MEMBERSHIPS}
        if index + 1 < len(pages):
            headers["Link"] = f"<{url}?page={index + 1}>; rel={quote}next{quote}"
        body = {"id": url, "context": {"id": "2"}, "members": pages[index]}
        return 200, headers, json.dumps(body)

    http.add_callback("POST", "https://lms.example/token", callback=token)
    http.add_callback("GET", url, callback=roster)
    return tokens


def client() -> NrpsClient:
    creds = PlatformCredentials(id="p1", client_id="c1", token_url="https://lms.example/token")
    return NrpsClient(creds, store=MemoryStore(), signer=lambda: ("k1", KEY), timeout=2)


@pytest.mark.parametrize(("url", "quote"), [(MOODLE, "\u201c"), (CANVAS, '"')])
def test_roster_follows_every_page_with_one_token(http: responses.RequestsMock, url, quote):
    pages = [
        [member("2", "Sam Student"), member("3", "Terry Teacher", TEACHER)],
        [member("4", "Ann Alpha")],
        [member("5", "Bob Beta", status="Inactive")],
    ]
    tokens = serve_pages(http, url, pages, quote=quote)
    found = client().members(url)
    assert [m.user_id for m in found] == ["2", "3", "4", "5"]
    assert [m.display_name for m in found if m.is_learner] == ["Sam Student", "Ann Alpha"]
    assert len(tokens) == 1


def test_roster_answer_without_members_is_refused(http: responses.RequestsMock):
    serve_pages(http, CANVAS, [[]])
    http.replace("GET", CANVAS, json={"id": CANVAS}, content_type=CT_MEMBERSHIPS)
    with pytest.raises(AgsRejectedError):
        client().members(CANVAS)
