"""The sandbox LMS's platform: its identity, key, seeded course, users and links, and the
launches it has started; SandboxLms signs the id_tokens.

Below the sandbox LMS's routes (lms.py, lms_gradebook.py, lms_quiz.py), which all reach it with
get_sandbox_lms(). A single-process dev stand-in: pending launches live in process memory.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, current_app
from jwt.algorithms import RSAAlgorithm

from lti_proctor.sandbox.lms_data import (
    DEEP_LINKING,
    RESOURCE_LINK,
    Message,
    SandboxResourceLink,
    SandboxUser,
    Site,
    build_claims,
    seed,
)

EXTENSION = "sandbox_lms"
FAMILIES = ("moodle", "canvas")
CANVAS_ISSUER = "https://canvas.instructure.com"
STORAGE_FRAME = "post_message_forwarding"  # Canvas's frame that answers put_data / get_data
Fields = list[tuple[str, str]]


@dataclass(frozen=True)
class PendingLaunch:
    """A launch the LMS started (login initiation sent) and awaits at its auth endpoint."""

    user_key: str
    link_key: str | None
    message_type: str
    launch_number: int
    locale: str = "en"  # the user's language in the LMS, sent as the launch's locale


class SandboxLms:
    """The sandbox platform: identity, key, seeded course, users and links, pending launches."""

    def __init__(self, site: Site, *, tool_login_url: str, redirect_uris: list[str]) -> None:
        self.site = site
        self.tool_login_url = tool_login_url
        self.redirect_uris = redirect_uris
        self.kid = _kid(site.family)
        self._hint_secret = secrets.token_bytes(32)
        self.course, self.users, self.links = seed(site.family)
        self._pending: dict[str, PendingLaunch] = {}
        self._key: rsa.RSAPrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> rsa.RSAPrivateKey:
        """The platform's signing key, made on first use (a gradebook-only LMS never signs)."""
        with self._lock:  # one key even when two requests ask first at once
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    @property
    def family(self) -> str:
        """moodle or canvas."""
        return self.site.family

    def url(self, path: str) -> str:
        """An absolute URL on the sandbox."""
        return self.site.base_url + path

    @property
    def auth_login_url(self) -> str:
        """The OIDC auth endpoint tools redirect to."""
        if self.family == "canvas":
            return self.url("/api/lti/authorize_redirect")
        return self.url("/mod/lti/auth.php")

    @property
    def key_set_url(self) -> str:
        """The platform JWKS."""
        return self.url(
            "/api/lti/security/jwks" if self.family == "canvas" else "/mod/lti/certs.php"
        )

    @property
    def auth_token_url(self) -> str:
        """The OAuth2 token endpoint (served by the gradebook blueprint, lms_gradebook.py)."""
        return self.url("/login/oauth2/token" if self.family == "canvas" else "/mod/lti/token.php")

    def describe(self) -> dict[str, str | None]:
        """What an admin registers in the tool: Platform columns plus the deployment id."""
        return {
            "name": f"Sandbox {self.family.capitalize()}",
            "family": self.family,
            "issuer": self.site.issuer,
            "client_id": self.site.client_id,
            "deployment_id": self.site.deployment_id,
            "auth_login_url": self.auth_login_url,
            "auth_token_url": self.auth_token_url,
            "key_set_url": self.key_set_url,
            "auth_audience": None,
        }

    def jwks(self) -> dict[str, Any]:
        """The public key set, as the LMS publishes it."""
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "alg": "RS256", "kid": self.kid, "use": "sig"}]}

    def add_resource_link(
        self,
        key: str,
        *,
        title: str,
        description: str = "",
        custom: dict[str, str] | None = None,
        graded: bool = True,
    ) -> SandboxResourceLink:
        """Seed another tool link in the course (ids continue the LMS's own numbering)."""
        number = len(self.links) + 1
        link = SandboxResourceLink(
            key=key,
            id=str(number) if self.family == "moodle" else secrets.token_hex(16),
            title=title,
            description=description,
            custom=dict(custom or {}),
            cmid=4 + number,
            lineitem_id=str(6 + number) if self.family == "moodle" else str(number),
            assignment_id=number,
            graded=graded,
        )
        with self._lock:
            self.links[key] = link
        return link

    def login_initiation(
        self,
        user_key: str,
        link_key: str | None,
        message_type: str = RESOURCE_LINK,
        *,
        locale: str = "en",
        framed: bool = False,
    ) -> list[tuple[str, str]]:
        """The form fields the LMS posts to the tool's login URL, in the LMS's order.

        Canvas adds lti_storage_target when it frames the tool next to its forwarding frame
        (LTI Platform Storage, answered by static/lms/platform_storage.js).
        """
        user = self.users[user_key]
        number = secrets.randbelow(10**9)
        pending = PendingLaunch(user_key, link_key, message_type, number, locale)
        if self.family == "canvas":
            fields = self._canvas_initiation(user, pending)
            if framed:
                fields.append(("lti_storage_target", STORAGE_FRAME))
            return fields
        return self._moodle_initiation(user, pending)

    def _moodle_initiation(
        self, user: SandboxUser, pending: PendingLaunch
    ) -> list[tuple[str, str]]:
        digits = f"{secrets.randbelow(9 * 10**9) + 10**9}"
        hint_data: dict[str, Any]
        if pending.message_type == DEEP_LINKING:
            launch_id = f"ltilaunch_ContentItemSelectionRequest{digits}"
            hint_data = {"launchid": launch_id}
        else:
            link = self.links[pending.link_key or ""]
            launch_id = f"ltilaunch{link.id}_{digits}"
            hint_data = {"cmid": link.cmid, "launchid": launch_id}
        hint = json.dumps(hint_data, separators=(",", ":"))
        self._remember(launch_id, pending)
        return [
            ("iss", self.site.issuer),
            ("target_link_uri", self.site.target_link_uri),
            ("login_hint", user.login_hint),
            ("lti_message_hint", hint),
            ("client_id", self.site.client_id),
            ("lti_deployment_id", self.site.deployment_id),
        ]

    def _canvas_initiation(
        self, user: SandboxUser, pending: PendingLaunch
    ) -> list[tuple[str, str]]:
        verifier = secrets.token_hex(64)
        self._remember(verifier, pending)
        hint = jwt.encode(
            {
                "verifier": verifier,
                "canvas_domain": urlsplit(self.site.base_url).netloc,
                "context_type": "Course",
                "context_id": int(self.course.id),
                "canvas_locale": pending.locale,
                "include_storage_target": True,
                "exp": int(time.time()) + 300,
            },
            self._hint_secret,
            algorithm="HS256",
        )
        return [
            ("iss", self.site.issuer),
            ("login_hint", user.login_hint),
            ("client_id", self.site.client_id),
            ("deployment_id", self.site.deployment_id),
            ("target_link_uri", self.site.target_link_uri),
            ("lti_message_hint", hint),
            ("canvas_environment", "prod"),
            ("canvas_region", "not_configured"),
        ]

    def _remember(self, launch_id: str, pending: PendingLaunch) -> None:
        with self._lock:
            self._pending[launch_id] = pending

    def take_pending(self, message_hint: str) -> PendingLaunch | None:
        """The launch an lti_message_hint refers to, removed (each launch id works once)."""
        launch_id = self._launch_id(message_hint)
        with self._lock:
            return self._pending.pop(launch_id, None) if launch_id else None

    def _launch_id(self, message_hint: str) -> str | None:
        try:
            if self.family == "canvas":
                claims = jwt.decode(message_hint, self._hint_secret, algorithms=["HS256"])
                return str(claims["verifier"])
            return str(json.loads(message_hint)["launchid"])
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            return None

    def id_token(self, pending: PendingLaunch, *, nonce: str) -> str:
        """The signed id_token of a pending launch."""
        claims = self.claims(pending, nonce=nonce, iat=int(time.time()))
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )

    def claims(self, pending: PendingLaunch, *, nonce: str, iat: int) -> dict[str, Any]:
        """The id_token body of a pending launch."""
        link = self.links[pending.link_key] if pending.link_key else None
        msg = Message(
            site=self.site,
            course=self.course,
            user=self.users[pending.user_key],
            link=link,
            message_type=pending.message_type,
            nonce=nonce,
            iat=iat,
            launch_number=pending.launch_number,
            locale=pending.locale,
            dl_data=self._dl_data() if pending.message_type == DEEP_LINKING else "",
        )
        return build_claims(msg)

    def _dl_data(self) -> str:
        """Canvas's signed `data` for the deep-linking return; passed back unchanged."""
        return jwt.encode(
            {"deep_link_return_url_data": secrets.token_hex(8), "exp": int(time.time()) + 3600},
            self._hint_secret,
            "HS256",
        )

    def dl_data_is_ours(self, data: str) -> bool:
        """Whether a deep-linking return's `data` is one this LMS signed and it has not expired."""
        try:
            jwt.decode(data, self._hint_secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return False
        return True


def _kid(family: str) -> str:
    """Canvas names keys by ISO 8601 time; Moodle by 20 hex characters."""
    if family == "canvas":
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return secrets.token_hex(10)


def get_sandbox_lms(app: Flask | None = None) -> SandboxLms:
    """The SandboxLms of app (default: the current app)."""
    target = app or current_app
    lms: SandboxLms = target.extensions[EXTENSION]
    return lms
