"""LaunchBuilder: drives /lti/login with the test client and mints signed id_tokens for the
registered test platform, whose JWKS it serves through the `http` responses mock.

Claims start from the real Moodle 4.5 / Canvas shapes in tests/fixtures/launches/, with live
iat/exp and the nonce the login issued. Also the "nothing was stored" probes rejection tests use.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import responses
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import RSAAlgorithm
from werkzeug.test import TestResponse

from lti_proctor.extensions import db
from lti_proctor.lti import claims as c
from lti_proctor.lti.oidc import nonce_key, used_nonce_key
from lti_proctor.store import get_store
from tests.factories import make_platform
from tests.live import parse_forms

FIXTURES = Path(__file__).parent / "fixtures" / "launches"

# Short names for the claims tests override or drop most.
CLAIM = {
    "message_type": c.MESSAGE_TYPE,
    "version": c.VERSION,
    "deployment_id": c.DEPLOYMENT_ID,
    "target_link_uri": c.TARGET_LINK_URI,
    "resource_link": c.RESOURCE_LINK,
    "roles": c.ROLES,
    "context": c.CONTEXT,
    "tool_platform": c.TOOL_PLATFORM,
    "launch_presentation": c.LAUNCH_PRESENTATION,
    "custom": c.CUSTOM,
    "ags": c.AGS_ENDPOINT,
    "nrps": c.NRPS,
    "deep_linking_settings": c.DEEP_LINKING_SETTINGS,
}


def load_fixture(family: str, message: str) -> dict[str, Any]:
    """One of the captured launch shapes: message is student, instructor or deep-linking."""
    suffix = "deep-linking-request" if message == "deep-linking" else f"{message}-launch"
    data: dict[str, Any] = json.loads((FIXTURES / f"{family}-{suffix}.json").read_text())
    return data


@dataclass(frozen=True)
class PlatformKey:
    """An RSA key pair the fake platform signs with."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@cache
def platform_key(name: str = "platform") -> PlatformKey:
    """An RSA 2048 key, generated once per test session per name (pyjwt refuses smaller)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return PlatformKey(key, kid=hashlib.sha1(name.encode()).hexdigest()[:20])


@dataclass(frozen=True)
class Login:
    """What /lti/login answered: the redirect and the OIDC parameters in it."""

    response: TestResponse
    params: dict[str, str]

    @property
    def state(self) -> str:
        return self.params["state"]

    @property
    def nonce(self) -> str:
        return self.params["nonce"]


class LaunchBuilder:
    """A registered fake platform that logs in and launches through the tool's test client."""

    def __init__(
        self,
        app: Flask,
        client: FlaskClient,
        http: responses.RequestsMock,
        *,
        family: str = "moodle",
        message: str = "student",
        key: PlatformKey | None = None,
        register: bool = True,
    ) -> None:
        self.app, self.client, self.http = app, client, http
        self.family, self.message = family, message
        self.key = key or platform_key()
        self.fixture = load_fixture(family, message)
        initiation = self.fixture["login_initiation"]
        self.issuer: str = initiation["iss"]
        self.client_id: str = initiation["client_id"]
        self.deployment_id: str = initiation.get("lti_deployment_id") or initiation["deployment_id"]
        self.jwks_url = ""
        if register:
            self.register()

    def register(self, **overrides: Any) -> None:
        """Add this platform's registration and deployment, and serve its JWKS."""
        with self.app.app_context():
            platform = make_platform(
                family=self.family, deployments=[self.deployment_id], **overrides
            )
            self.jwks_url = platform.key_set_url
        self.serve_jwks([self.key])

    def serve_jwks(self, keys: Iterable[PlatformKey]) -> None:
        """(Re)place what the platform's JWKS URL answers."""
        self.http.remove(responses.GET, self.jwks_url)
        self.http.get(self.jwks_url, json={"keys": [k.public_jwk for k in keys]})

    def jwks_calls(self) -> int:
        """How many times the tool fetched the platform's JWKS in this test."""
        return sum(1 for call in self.http.calls if call.request.url == self.jwks_url)

    def login_params(self, **overrides: str | None) -> dict[str, str]:
        """The login initiation form the LMS posts, with overrides (None drops a field)."""
        params = dict(self.fixture["login_initiation"])
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def login(
        self, *, client: FlaskClient | None = None, method: str = "POST", **overrides: str | None
    ) -> Login:
        """Start a login; the client keeps the state cookie."""
        client = client or self.client
        params = self.login_params(**overrides)
        if method == "GET":
            resp = client.get("/lti/login", query_string=params)
        else:
            resp = client.post("/lti/login", data=params)
        query = dict(parse_qsl(urlsplit(resp.headers.get("Location", "")).query))
        return Login(resp, query)

    def claims(
        self,
        login: Login | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
    ) -> dict[str, Any]:
        """The fixture's claims with a live iat/exp and the login's nonce; short names allowed."""
        body = copy.deepcopy(self.fixture["claims"])
        now = int(time.time())
        body["iat"] = now
        body["exp"] = now + (3600 if self.family == "canvas" else 60)
        body["nonce"] = login.nonce if login else uuid.uuid4().hex
        for name, value in (overrides or {}).items():
            body[CLAIM.get(name, name)] = value
        for name in drop:
            _drop(body, name)
        return body

    def sign(
        self,
        body: Mapping[str, Any],
        *,
        key: PlatformKey | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """An RS256 id_token; headers may add or replace (None removes) header fields."""
        key = key or self.key
        header: dict[str, Any] = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
        header.update(headers or {})
        header = {k: v for k, v in header.items() if v is not None}
        if header.get("alg") != "RS256":
            return unsigned_or_hmac(header, body, secret=key.public_pem)
        return jwt.encode(dict(body), key.private_key, algorithm="RS256", headers=header)

    def post(
        self,
        token: str,
        state: str | None,
        *,
        client: FlaskClient | None = None,
        follow_start: bool = True,
    ) -> TestResponse:
        """The platform's form_post to /lti/launch; a student's starting page is followed to
        /exam/start (its script posts the form) unless follow_start is False."""
        data = {"id_token": token}
        if state is not None:
            data["state"] = state
        client = client or self.client
        resp = client.post("/lti/launch", data=data)
        return follow_starting_page(client, resp) if follow_start else resp

    def launch(
        self,
        *,
        overrides: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
        client: FlaskClient | None = None,
        follow_start: bool = True,
    ) -> TestResponse:
        """A whole login + launch round trip with these claim changes."""
        login = self.login(client=client)
        token = self.sign(self.claims(login, overrides=overrides, drop=drop))
        return self.post(token, login.state, client=client, follow_start=follow_start)


def start_token(resp: TestResponse) -> str | None:
    """The signed token of the starting page's start form, or None when resp is another page."""
    for form in parse_forms(resp.get_data(as_text=True)):
        if form.id == "exam-starting-form":
            return dict(form.fields)["token"]
    return None


def follow_starting_page(client: FlaskClient, resp: TestResponse) -> TestResponse:
    """What the starting page's script does: post its form to /exam/start; other pages as is."""
    token = start_token(resp)
    if token is None:
        return resp
    return client.post("/exam/start", data={"token": token})


def _drop(body: dict[str, Any], name: str) -> None:
    """Remove a claim; "resource_link.id" removes a member of a claim object."""
    head, _, member = name.partition(".")
    uri = CLAIM.get(head, head)
    if member:
        body[uri] = {k: v for k, v in body[uri].items() if k != member}
    else:
        body.pop(uri, None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_or_hmac(header: Mapping[str, Any], body: Mapping[str, Any], *, secret: bytes) -> str:
    """alg none (empty signature) or HS256 keyed with `secret`; pyjwt refuses to mint these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if header.get("alg") in (None, "none"):
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def table_counts(app: Flask) -> dict[str, int]:
    """Rows per table, except the shared store's (it caches key sets by design)."""
    with app.app_context():
        return {
            table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table)) or 0
            for table in db.metadata.sorted_tables
            if table.name != "store_entry"
        }


def store_size(app: Flask) -> int:
    """How many live keys the shared store holds (Redis keys under the prefix, or table rows)."""
    with app.app_context():
        store = get_store()
        redis_client = getattr(store, "_r", None)
        if redis_client is not None:
            return len(redis_client.keys(app.config["STORE_PREFIX"] + "*"))
        return db.session.scalar(sa.text("select count(*) from store_entry")) or 0


def nonce_pending(app: Flask, nonce: str) -> bool:
    """True when the nonce is still waiting for its launch (not consumed, not marked used)."""
    with app.app_context():
        store = get_store()
        return store.get(nonce_key(nonce)) is not None and store.get(used_nonce_key(nonce)) is None
