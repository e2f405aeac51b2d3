"""OIDC login: the third-party initiated login, and the request values and cookie rules it
shares with launch validation.

The login finds the registration (DbToolConf), checks that target_link_uri is this tool's own,
issues the state and nonce and records the nonce in the shared store, never in process memory.
When the LMS offers LTI Platform Storage (lti_storage_target), the login also says where the
state and nonce go in the platform's storage; web/ then answers with the page that puts them
there, else with a redirect carrying the state cookie. A refusal is a LaunchError.
pylti1p3 is not used here: its login class works through private members.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Response

from lti_proctor.lti.errors import LaunchError, LaunchReason
from lti_proctor.lti.jwks import KeyValueStore
from lti_proctor.lti.registrations import DbToolConf, Platform

COOKIE_PREFIX = "lti1p3-"
STATE_PREFIX = "state-"
# Keys of the values a login keeps in the platform's storage (scoped by the LMS to our origin).
STORAGE_STATE_KEY = "lti-proctor.state."
STORAGE_NONCE_KEY = "lti-proctor.nonce."
# "_parent", or the name of a frame of the LMS page (Canvas: "post_message_forwarding").
_STORAGE_TARGET = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_PARAM = 2048
# The parameters of a third-party initiated login (LTI 1.3 core, 5.1.1), as a platform sends them.
LOGIN_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "client_id",
    "lti_deployment_id",
)


@dataclass(frozen=True)
class LaunchSettings:
    """The configuration a login or launch needs, read from app.config by web/."""

    launch_url: str  # our redirect_uri: BASE_URL + /lti/launch
    base_url: str  # BASE_URL: target_link_uri must be under it
    leeway_s: float = 30
    nonce_ttl_s: float = 900
    state_ttl_s: int = 900
    max_token_age_s: float = 3600  # an id_token issued longer ago (plus leeway) is refused
    jwks_cache_s: float = 3600
    jwks_refetch_cooldown_s: float = 2.0
    http_timeout_s: float = 5.0
    insecure_cookies: bool = False  # dev only: SameSite=Lax, no Secure, so plain http works


@dataclass(frozen=True)
class PlatformStorage:
    """Where a login keeps its state and nonce in the LMS's storage (LTI Platform Storage)."""

    target: str  # lti_storage_target: "_parent" or the name of the LMS's forwarding frame
    origin: str  # the LMS's OIDC auth origin: the only origin messages go to and come from

    def as_json(self) -> dict[str, str]:
        """The form kept with the nonce in the shared store."""
        return {"target": self.target, "origin": self.origin}


@dataclass(frozen=True)
class LoginRedirect:
    """A login's answer: where the browser goes next, with the state and nonce it carries."""

    auth_url: str
    state: str
    nonce: str
    storage: PlatformStorage | None


def nonce_key(nonce: str) -> str:
    """Shared-store key of a nonce issued at login and waiting for its launch."""
    return "lti:nonce:" + hashlib.sha256(nonce.encode()).hexdigest()


def used_nonce_key(nonce: str) -> str:
    """Shared-store key remembering a consumed nonce, so a replay gets its own reason code."""
    return "lti:nonce-used:" + hashlib.sha256(nonce.encode()).hexdigest()


def state_digest(state: str) -> str:
    """What a consumed nonce remembers of its login's state (to recognise a resubmitted form)."""
    return hashlib.sha256(state.encode()).hexdigest()


def state_cookie_name(state: str) -> str:
    """Name of the cookie that holds a login's state (one per login, so tabs do not collide)."""
    return COOKIE_PREFIX + state


def under_base_url(url: str, base_url: str) -> bool:
    """True when url is on the tool's own origin and its path lies under BASE_URL's path."""
    got, base = urlsplit(url), urlsplit(base_url)
    if got.scheme.lower() != base.scheme.lower() or got.username or got.password:
        return False
    try:
        if got.hostname != base.hostname or got.port != base.port:
            return False
    except ValueError:  # a port that is not a number
        return False
    root = base.path.rstrip("/")
    return not root or got.path == root or got.path.startswith(root + "/")


class ToolRequest:
    """One HTTP request of a login or launch, as the plain values web/ read from it."""

    def __init__(
        self,
        params: Mapping[str, str],
        cookies: Mapping[str, str],
        *,
        secure: bool,
        origin: str | None = None,
    ) -> None:
        self._params = dict(params)
        self._cookies = dict(cookies)
        self._secure = secure
        self.origin = origin  # the Origin header: who made the browser send this POST

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


def cookie_flags(insecure: bool) -> dict[str, Any]:
    """Cookie attributes for pages inside LMS frames."""
    if insecure:
        return {"secure": False, "httponly": True, "samesite": "Lax"}
    return {"secure": True, "httponly": True, "samesite": "None"}


def set_state_cookie(response: Response, state: str, settings: LaunchSettings) -> None:
    """Bind a login's state to this browser (works where third-party cookies are allowed)."""
    response.set_cookie(
        state_cookie_name(state),
        state,
        max_age=settings.state_ttl_s,
        path="/",
        **cookie_flags(settings.insecure_cookies),
    )


def clear_state_cookie(response: Response, state: str, *, insecure: bool) -> None:
    """Expire a consumed login's state cookie."""
    response.delete_cookie(state_cookie_name(state), path="/", **cookie_flags(insecure))


class ToolOIDCLogin:
    """Third-party initiated login: find the registration, issue state and nonce, redirect."""

    def __init__(
        self,
        request: ToolRequest,
        tool_conf: DbToolConf,
        *,
        store: KeyValueStore,
        settings: LaunchSettings,
    ) -> None:
        self._request = request
        self._conf, self._store, self._settings = tool_conf, store, settings

    def validate(self) -> Platform:
        """The registration the login names; LaunchError for a login the tool must not follow."""
        param = self._request.get_param
        for name in ("iss", "login_hint", "target_link_uri"):
            if not param(name):
                raise LaunchError(LaunchReason.LOGIN_INVALID, f"missing login parameter: {name}")
        for name in ("iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id"):
            if len(param(name)) > _MAX_PARAM:
                raise LaunchError(LaunchReason.LOGIN_INVALID, f"login parameter too long: {name}")
        if not under_base_url(param("target_link_uri"), self._settings.base_url):
            raise LaunchError(
                LaunchReason.TARGET_LINK_INVALID, "target_link_uri is not this tool's URL"
            )
        iss, client_id = param("iss"), param("client_id") or None
        platform = self._conf.get_platform(iss, client_id)
        if platform is None:
            known = bool(self._conf.find_platforms(iss))
            what = f"client_id {client_id!r}" if known else f"issuer {iss!r}"
            raise LaunchError(LaunchReason.REGISTRATION_UNKNOWN, f"unknown {what}")
        return platform

    def redirect(self) -> LoginRedirect:
        """Validate, record the nonce in the shared store and build the auth request."""
        platform = self.validate()
        storage = self._storage(platform)
        state = STATE_PREFIX + uuid.uuid4().hex
        nonce = secrets.token_urlsafe(32)
        entry: dict[str, Any] = {"state": state, "platform_id": platform.id}
        if storage is not None:
            entry["storage"] = storage.as_json()
        self._store.set(nonce_key(nonce), json.dumps(entry), self._settings.nonce_ttl_s)
        return LoginRedirect(self._auth_url(platform, state, nonce), state, nonce, storage)

    def _storage(self, platform: Platform) -> PlatformStorage | None:
        """Platform Storage when the LMS offers it and its auth URL has an origin to talk to."""
        target = self._request.get_param("lti_storage_target")
        parts = urlsplit(platform.auth_login_url)
        if not target or not _STORAGE_TARGET.match(target) or not parts.netloc:
            return None
        return PlatformStorage(target, f"{parts.scheme}://{parts.netloc}")

    def _auth_url(self, platform: Platform, state: str, nonce: str) -> str:
        params = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": platform.client_id,
            "redirect_uri": self._settings.launch_url,
            "state": state,
            "nonce": nonce,
            "login_hint": self._request.get_param("login_hint"),
        }
        hint = self._request.get_param("lti_message_hint")
        if hint:
            params["lti_message_hint"] = hint
        url = platform.auth_login_url
        return url + ("&" if "?" in url else "?") + urlencode(params)


def start_login(
    params: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    secure: bool,
    tool_conf: DbToolConf,
    store: KeyValueStore,
    settings: LaunchSettings,
) -> LoginRedirect:
    """Answer a third-party initiated login: where the browser goes, with state and nonce."""
    request = ToolRequest(params, cookies, secure=secure)
    return ToolOIDCLogin(request, tool_conf, store=store, settings=settings).redirect()
