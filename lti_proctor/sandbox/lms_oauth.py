"""The sandbox LMS's OAuth2 token endpoint logic: the client-credentials grant with the tool's
signed JWT assertion (checked against the tool's JWKS), the access tokens it issued and the
assertion ids it has seen, as Moodle's mod/lti/token.php and Canvas's login/oauth2/token check them.

Plain Python, no Flask; one lock. A development stand-in: tokens live in this process only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from lti_proctor.sandbox.lms_data import AGS_SCOPES_CANVAS, AGS_SCOPES_MOODLE

CT_FORM = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME_S = 3600  # Moodle's LTI_ACCESS_TOKEN_LIFE; Canvas issues one hour too
MAX_ASSERTION_LIFETIME_S = 3600
LEEWAY_S = 5

Json = dict[str, Any]
KeySetFetcher = Callable[[], Mapping[str, Any]]


class Refusal(Exception):
    """The LMS refuses the request; `code` is the OAuth error code on the token endpoint."""

    def __init__(
        self, status: int, message: str, *, code: str = "", in_status_line: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.in_status_line = in_status_line  # Moodle's scores.php answers in the status line


@dataclass
class Grant:
    """An issued access token's scopes and expiry (time.time() seconds)."""

    scopes: frozenset[str]
    expires_at: float


@dataclass
class ServiceAuth:
    """One tool's service access at the LMS: the token grant and the Bearer check."""

    family: str
    client_id: str
    token_url: str
    fetch_tool_jwks: KeySetFetcher
    clock: Callable[[], float] = time.time
    token_lifetime_s: int = TOKEN_LIFETIME_S
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, Grant] = field(default_factory=dict)
    jtis: dict[str, float] = field(default_factory=dict)
    extra_scopes: frozenset[str] = frozenset()  # e.g. NRPS, when the LMS offers it the tool

    @property
    def permitted_scopes(self) -> frozenset[str]:
        """The scopes this LMS grants the tool: its AGS claim's, plus extra_scopes."""
        ags = AGS_SCOPES_CANVAS if self.family == "canvas" else AGS_SCOPES_MOODLE
        return frozenset(ags) | self.extra_scopes

    def issue_token(self, form: Mapping[str, str], content_type: str) -> Json:
        """Check a client-credentials request with a signed JWT assertion; the token answer."""
        if content_type != CT_FORM:
            raise Refusal(400, "the request must be form-encoded", code="invalid_request")
        for name in ("grant_type", "client_assertion_type", "client_assertion", "scope"):
            if not form.get(name):
                raise Refusal(400, f"{name} is missing", code="invalid_request")
        if (
            form["grant_type"] != "client_credentials"
            or form["client_assertion_type"] != ASSERTION_TYPE
        ):
            raise Refusal(
                400, "only client_credentials with a JWT assertion", code="unsupported_grant_type"
            )
        claims = self._verified_assertion(form["client_assertion"])
        scopes = self._granted_scopes(form["scope"])
        token = secrets.token_urlsafe(32)
        with self.lock:
            self._remember_jti(claims)
            self.tokens[token] = Grant(scopes, self.clock() + self.token_lifetime_s)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_s,
            "scope": " ".join(sorted(scopes)),
        }

    def _verified_assertion(self, assertion: str) -> Json:
        """The assertion's claims once its signature (tool JWKS), iss/sub, aud and exp hold."""
        try:
            kid = jwt.get_unverified_header(assertion).get("kid")
        except jwt.PyJWTError as exc:
            raise Refusal(400, "client_assertion is not a JWT", code="invalid_request") from exc
        key = self.tool_key(kid)
        try:
            claims: Json = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                audience=self.token_url,
                leeway=LEEWAY_S,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise Refusal(400, "JWS signature invalid", code="invalid_client") from exc
        except jwt.PyJWTError as exc:
            raise Refusal(400, f"client_assertion refused: {exc}", code="invalid_grant") from exc
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            raise Refusal(400, "iss and sub must be the tool's client_id", code="invalid_client")
        if float(claims["exp"]) - self.clock() > MAX_ASSERTION_LIFETIME_S:
            raise Refusal(400, "client_assertion lives too long", code="invalid_grant")
        return claims

    def tool_key(self, kid: object) -> Any:
        """The tool's public key named kid, read from the tool's JWKS URL."""
        if not isinstance(kid, str) or not kid:
            raise Refusal(400, "client_assertion has no kid", code="invalid_client")
        try:
            keyset = jwt.PyJWKSet.from_dict(dict(self.fetch_tool_jwks()))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise Refusal(400, "the tool's key set is unusable", code="invalid_client") from exc
        for jwk in keyset.keys:
            if jwk.key_id == kid:
                return jwk.key
        raise Refusal(400, "no key of the tool has this kid", code="invalid_client")

    def _remember_jti(self, claims: Json) -> None:
        now = self.clock()
        for jti, expires in list(self.jtis.items()):
            if expires + LEEWAY_S < now:
                del self.jtis[jti]
        jti = str(claims["jti"])
        if jti in self.jtis:
            raise Refusal(400, "client_assertion jti was already used", code="invalid_grant")
        self.jtis[jti] = float(claims["exp"])

    def _granted_scopes(self, scope: str) -> frozenset[str]:
        requested = frozenset(scope.split())
        if self.family == "canvas":
            # Canvas refuses the whole request when one scope is not on the developer key.
            granted = requested if requested <= self.permitted_scopes else frozenset()
        else:
            granted = requested & self.permitted_scopes  # Moodle grants what it may
        if not granted:
            raise Refusal(400, "none of the requested scopes may be granted", code="invalid_scope")
        return granted

    def authorize(self, authorization: str, *, any_of: frozenset[str]) -> None:
        """Check the Bearer token and that it carries one of the scopes any_of."""
        token = authorization.removeprefix("Bearer ").strip()
        with self.lock:
            grant = self.tokens.get(token) if authorization.startswith("Bearer ") else None
        if grant is None or grant.expires_at <= self.clock():
            raise Refusal(401, "Access token invalid or expired")
        if not grant.scopes & any_of:
            raise Refusal(401, "Insufficient permissions for this request")
