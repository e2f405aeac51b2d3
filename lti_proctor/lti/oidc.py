"""OIDC login: the third-party initiated login, and the request and cookie adapters it shares
with launch validation.

The login finds the registration (DbToolConf), sets the state cookie (SameSite=None; Secure, or
Lax over http in dev mode) and records the nonce in the shared store, never in process memory.
web/ reads the request and passes plain values in; a refusal is a LaunchError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response
from pylti1p3.contrib.flask.oidc_login import FlaskOIDCLogin
from pylti1p3.cookie import CookieService
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.registration import Registration
from pylti1p3.request import Request
from pylti1p3.session import SessionService

from lti_proctor.lti.errors import LaunchError, LaunchReason, classify_lti_exception
from lti_proctor.lti.jwks import KeyValueStore
from lti_proctor.lti.registrations import DbToolConf, Platform

log = logging.getLogger(__name__)

COOKIE_PREFIX = "lti1p3-"
STATE_PREFIX = "state-"


@dataclass(frozen=True)
class LaunchSettings:
    """The configuration a login or launch needs, read from app.config by web/."""

    launch_url: str  # our redirect_uri: BASE_URL + /lti/launch
    leeway_s: float = 30
    nonce_ttl_s: float = 900
    state_ttl_s: int = 900
    jwks_cache_s: float = 3600
    http_timeout_s: float = 5.0
    insecure_cookies: bool = False  # dev only: SameSite=Lax, no Secure, so plain http works


def nonce_key(nonce: str) -> str:
    """Shared-store key of a nonce issued at login and waiting for its launch."""
    return "lti:nonce:" + hashlib.sha256(nonce.encode()).hexdigest()


def used_nonce_key(nonce: str) -> str:
    """Shared-store key remembering a consumed nonce, so a replay gets its own reason code."""
    return "lti:nonce-used:" + hashlib.sha256(nonce.encode()).hexdigest()


def state_cookie_name(state: str) -> str:
    """Name of the cookie that holds a login's state (one per login, so tabs do not collide)."""
    return COOKIE_PREFIX + state


class ToolRequest(Request):
    """pylti1p3's view of one HTTP request, built from the plain values web/ read."""

    def __init__(
        self, params: Mapping[str, str], cookies: Mapping[str, str], *, secure: bool
    ) -> None:
        self._params = dict(params)
        self._cookies = dict(cookies)
        self._secure = secure

    @property
    def session(self) -> dict[str, Any]:
        """pylti1p3's session storage is never used: nonces live in the shared store."""
        return {}

    def is_secure(self) -> bool:
        """Whether the request came over https."""
        return self._secure

    def get_param(self, key: str) -> str:
        """A query (GET) or form (POST) parameter; empty when absent."""
        return self._params.get(key, "")

    def get_cookie(self, key: str) -> str | None:
        """A cookie of the request."""
        return self._cookies.get(key)

    def cookie_names(self) -> list[str]:
        """Names of every cookie the request carries."""
        return list(self._cookies)


class ToolCookieService(CookieService):
    """Cookies for LTI frames: SameSite=None; Secure, or Lax over http in dev mode."""

    _cookie_prefix = COOKIE_PREFIX.rstrip("-")

    def __init__(self, request: ToolRequest, *, insecure: bool) -> None:
        self._request = request
        self._insecure = insecure
        self._to_set: dict[str, tuple[str, int | None]] = {}

    def get_cookie(self, name: str) -> str | None:
        """The value of our cookie called name."""
        return self._request.get_cookie(COOKIE_PREFIX + name)

    def set_cookie(self, name: str, value: str | int, exp: int | None = 3600) -> None:
        """Remember a cookie to set on the response."""
        self._to_set[COOKIE_PREFIX + name] = (str(value), exp)

    def update_response(self, response: Response) -> None:
        """Write the remembered cookies onto response (pylti1p3's redirect calls this)."""
        for key, (value, max_age) in self._to_set.items():
            response.set_cookie(
                key, value, max_age=max_age, path="/", **cookie_flags(self._insecure)
            )


def cookie_flags(insecure: bool) -> dict[str, Any]:
    """Cookie attributes for pages inside LMS frames."""
    if insecure:
        return {"secure": False, "httponly": True, "samesite": "Lax"}
    return {"secure": True, "httponly": True, "samesite": "None"}


def clear_state_cookie(response: Response, state: str, *, insecure: bool) -> None:
    """Expire a consumed login's state cookie."""
    response.delete_cookie(state_cookie_name(state), path="/", **cookie_flags(insecure))


class ToolOIDCLogin(FlaskOIDCLogin):
    """Third-party initiated login: find the registration, issue state and nonce, redirect."""

    def __init__(
        self,
        request: ToolRequest,
        tool_conf: DbToolConf,
        *,
        store: KeyValueStore,
        settings: LaunchSettings,
    ) -> None:
        cookies = ToolCookieService(request, insecure=settings.insecure_cookies)
        super().__init__(  # type: ignore[no-untyped-call]
            request, tool_conf, session_service=SessionService(request), cookie_service=cookies
        )
        self._conf, self._store, self._settings = tool_conf, store, settings
        self._platform: Platform | None = None

    def validate_oidc_login(self) -> Registration:
        """The registration named by iss (and client_id); LaunchError when there is none."""
        iss = self._get_request_param("iss")
        for name in ("iss", "login_hint"):
            if not self._get_request_param(name):
                raise LaunchError(LaunchReason.LOGIN_INVALID, f"missing login parameter: {name}")
        client_id = self._get_request_param("client_id") or None
        platform = self._conf.get_platform(iss, client_id)
        if platform is None:
            known = bool(self._conf.find_platforms(iss))
            what = f"client_id {client_id!r}" if known else f"issuer {iss!r}"
            raise LaunchError(LaunchReason.REGISTRATION_UNKNOWN, f"unknown {what}")
        self._platform = platform
        registration: Registration = self._conf.registration_for(platform)
        return registration

    def _prepare_redirect_url(self, launch_url: str) -> str:
        """The platform's auth URL with the OIDC parameters; records the state and nonce."""
        self._registration = self.validate_oidc_login()
        assert self._platform is not None
        state = STATE_PREFIX + uuid.uuid4().hex
        nonce = secrets.token_urlsafe(32)
        self._cookie_service.set_cookie(state, state, self._settings.state_ttl_s)
        entry = json.dumps({"state": state, "platform_id": self._platform.id})
        self._store.set(nonce_key(nonce), entry, self._settings.nonce_ttl_s)
        params = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": self._platform.client_id,
            "redirect_uri": launch_url,
            "state": state,
            "nonce": nonce,
            "login_hint": self._get_request_param("login_hint"),
        }
        hint = self._get_request_param("lti_message_hint")
        if hint:
            params["lti_message_hint"] = hint
        url = self._platform.auth_login_url
        return url + ("&" if "?" in url else "?") + urlencode(params)


def start_login(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    secure: bool,
    tool_conf: DbToolConf,
    store: KeyValueStore,
    settings: LaunchSettings,
) -> Response:
    """Answer a third-party initiated login with the redirect to the platform's auth URL."""
    request = ToolRequest(params, cookies, secure=secure)
    login = ToolOIDCLogin(request, tool_conf, store=store, settings=settings)
    try:
        response: Response = login.redirect(settings.launch_url)
    except (LtiException, OIDCException) as exc:
        raise classified(exc) from exc
    return response


def classified(exc: Exception) -> LaunchError:
    """A pylti1p3 exception as a LaunchError (logged with its original text)."""
    error = classify_lti_exception(exc)
    log.info("pylti1p3 refusal %s: %s", error.reason.value, exc)
    return error
