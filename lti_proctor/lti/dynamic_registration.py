"""LTI Dynamic Registration 1.0, the tool's side of the protocol, with no Flask and no database.

Fetches and validates the platform's OpenID configuration, posts the tool's client registration
to the platform's registration endpoint and reads the answer. Every call has a timeout and a
response-size limit; every refusal is a RegisterError with a reason code, raised before anything
is stored. Spec: https://www.imsglobal.org/spec/lti-dr/v1p0
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from lti_proctor.lti.errors import RegisterError
from lti_proctor.lti.tool_config import TOOL_CONFIGURATION, PlatformOffer
from lti_proctor.reasons import Reason

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
CANVAS_ACCOUNT_NAME = "https://canvas.instructure.com/lti/account_name"
MAX_BYTES = 256 * 1024  # Canvas's configuration, with every variable listed, is about 30 KB
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
# Instructure-hosted Canvas: one issuer per environment for every school; launches are signed
# by keys on Instructure's own hosts, while the configuration may come from the school's host.
CANVAS_CLOUD = {
    "https://canvas.instructure.com": "",
    "https://canvas.beta.instructure.com": "beta.",
    "https://canvas.test.instructure.com": "test.",
}
_NEEDED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


@dataclass(frozen=True)
class HttpLimits:
    """How the tool talks to a platform during registration."""

    timeout_s: float = 10.0
    max_bytes: int = MAX_BYTES
    allow_loopback: bool = False  # plain http to 127.0.0.1/localhost (demo, development only)


@dataclass(frozen=True)
class PlatformConfiguration:
    """The parts of a platform's OpenID configuration the tool uses."""

    url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    family: str | None
    version: str | None = None
    account_name: str | None = None
    scopes: frozenset[str] = frozenset()
    messages: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)

    @property
    def offer(self) -> PlatformOffer:
        """What the platform supports, for building the client registration."""
        return PlatformOffer(family=self.family, scopes=self.scopes, messages=self.messages)

    @property
    def origin(self) -> str:
        """The scheme and host the configuration was fetched from."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class RegistrationAnswer:
    """What the platform answered to the client registration."""

    client_id: str
    deployment_id: str | None
    scopes: tuple[str, ...]


def _invalid(detail: str) -> RegisterError:
    return RegisterError(Reason.REGISTER_CONFIG_INVALID, detail)


def is_safe_url(value: object, *, allow_loopback: bool) -> bool:
    """True for an absolute https URL (plain http only on loopback, when allowed)."""
    if not isinstance(value, str) or any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port
    except ValueError:
        return False
    if not host or parts.fragment or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return allow_loopback and parts.scheme == "http" and host in LOOPBACK_HOSTS


def _read_json(response: requests.Response, limits: HttpLimits, what: str) -> Any:
    """The JSON body of response, refusing anything larger than the limit."""
    body = b""
    for chunk in response.iter_content(chunk_size=16384):
        body += chunk
        if len(body) > limits.max_bytes:
            raise _invalid(f"the {what} is larger than {limits.max_bytes} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _invalid(f"the {what} is not JSON") from exc


def fetch_platform_configuration(
    url: str, registration_token: str | None, *, limits: HttpLimits
) -> PlatformConfiguration:
    """GET the platform's OpenID configuration (Canvas requires the registration token)."""
    if not is_safe_url(url, allow_loopback=limits.allow_loopback):
        raise _invalid("openid_configuration is not an https URL")
    headers = {"Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        with requests.get(
            url, headers=headers, timeout=limits.timeout_s, stream=True, allow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise RegisterError(
                    Reason.REGISTER_CONFIG_UNREACHABLE,
                    f"the configuration URL answered HTTP {response.status_code}",
                )
            data = _read_json(response, limits, "platform configuration")
    except requests.RequestException as exc:
        raise RegisterError(
            Reason.REGISTER_CONFIG_UNREACHABLE, f"{type(exc).__name__} fetching the configuration"
        ) from exc
    return parse_platform_configuration(url, data, allow_loopback=limits.allow_loopback)


def _str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"the configuration has no {name}")
    return value


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _messages(lti: Mapping[str, Any]) -> dict[str, tuple[str, ...] | None]:
    """messages_supported: objects {type, placements} (the spec, Canvas, Moodle 4.1+) or the
    bare type names older Moodle lists (its placements then sit beside them)."""
    found: dict[str, tuple[str, ...] | None] = {}
    entries = lti.get("messages_supported")
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if isinstance(entry, str):
            found[entry] = None
        elif isinstance(entry, dict) and isinstance(entry.get("type"), str):
            placements = entry.get("placements")
            found[entry["type"]] = tuple(_strings(placements)) if placements else None
    return found


def parse_platform_configuration(
    url: str, data: object, *, allow_loopback: bool = False
) -> PlatformConfiguration:
    """Validate a platform configuration document: endpoints, RS256, id_token, the LTI claim."""
    if not isinstance(data, dict):
        raise _invalid("the configuration is not a JSON object")
    values = {name: _str(data, name) for name in ("issuer", "registration_endpoint")}
    for name in _NEEDED_ENDPOINTS:
        values[name] = _str(data, name)
    for name, value in values.items():
        if not is_safe_url(value, allow_loopback=allow_loopback):
            raise _invalid(f"{name} is not an https URL")
    if "RS256" not in _strings(data.get("id_token_signing_alg_values_supported")):
        raise _invalid("the platform does not sign id_tokens with RS256")
    if "id_token" not in _strings(data.get("response_types_supported")):
        raise _invalid("the platform does not support the id_token response type")
    lti = data.get(PLATFORM_CONFIGURATION)
    if not isinstance(lti, dict):
        raise _invalid("the configuration lacks the LTI platform configuration claim")
    check_issuer(url, values, allow_loopback=allow_loopback)
    family = lti.get("product_family_code")
    return PlatformConfiguration(
        url=url,
        issuer=values["issuer"],
        authorization_endpoint=values["authorization_endpoint"],
        token_endpoint=values["token_endpoint"],
        jwks_uri=values["jwks_uri"],
        registration_endpoint=values["registration_endpoint"],
        family=family if isinstance(family, str) else None,
        version=lti.get("version") if isinstance(lti.get("version"), str) else None,
        account_name=lti.get(CANVAS_ACCOUNT_NAME)
        if isinstance(lti.get(CANVAS_ACCOUNT_NAME), str)
        else None,
        scopes=frozenset(_strings(data.get("scopes_supported"))),
        messages=_messages(lti),
    )


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def check_issuer(url: str, values: Mapping[str, str], *, allow_loopback: bool) -> None:
    """The issuer must belong to where the configuration came from (DR 1.0, 3.5.1).

    Instructure-hosted Canvas is the known exception: every school shares the issuer
    canvas[.beta|.test].instructure.com and serves the configuration from its own (or its
    vanity or SSO) host, so there the keys and the login endpoint must be Instructure's own.
    """
    issuer = values["issuer"]
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise _invalid("the issuer has a query or fragment")
    infix = CANVAS_CLOUD.get(issuer.rstrip("/"))
    if infix is None:
        if _host(issuer) != _host(url):
            raise _invalid("the issuer's host is not the configuration URL's host")
        return
    if allow_loopback and _host(url) in LOOPBACK_HOSTS:
        return  # a sandbox Canvas on this machine (demo, development)
    instructure = {f"sso.{infix}canvaslms.com", f"canvas.{infix}instructure.com"}
    for name in ("jwks_uri", "authorization_endpoint"):
        if _host(values[name]) not in instructure:
            raise _invalid(f"{name} of {issuer} is not on an Instructure host")


def register_client(
    configuration: PlatformConfiguration,
    registration_token: str | None,
    body: Mapping[str, Any],
    *,
    limits: HttpLimits,
) -> RegistrationAnswer:
    """POST the client registration; the platform answers with our client_id."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    try:
        with requests.post(
            configuration.registration_endpoint,
            data=json.dumps(body),
            headers=headers,
            timeout=limits.timeout_s,
            stream=True,
            allow_redirects=False,
        ) as response:
            if response.status_code not in (200, 201):
                raise RegisterError(
                    Reason.REGISTER_PLATFORM_REFUSED,
                    f"HTTP {response.status_code}: {_excerpt(response, limits)}",
                )
            data = _read_json(response, limits, "registration answer")
    except requests.RequestException as exc:
        raise RegisterError(
            Reason.REGISTER_CONFIG_UNREACHABLE, f"{type(exc).__name__} posting the registration"
        ) from exc
    return parse_registration_answer(data)


def _excerpt(response: requests.Response, limits: HttpLimits) -> str:
    """The start of an error answer (the LMS's own words, e.g. Moodle's token_already_used)."""
    raw = next(response.iter_content(chunk_size=min(200, limits.max_bytes)), b"")
    return raw.decode("utf-8", "replace")


def parse_registration_answer(data: object) -> RegistrationAnswer:
    """client_id, and the deployment_id when the platform sends one (Moodle does, Canvas not)."""
    if not isinstance(data, dict):
        raise _invalid("the registration answer is not a JSON object")
    client_id = data.get("client_id")
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str) or not client_id.strip():
        raise _invalid("the registration answer has no client_id")
    tool = data.get(TOOL_CONFIGURATION)
    deployment = tool.get("deployment_id") if isinstance(tool, dict) else None
    if isinstance(deployment, int) and not isinstance(deployment, bool):
        deployment = str(deployment)
    scope = data.get("scope")
    return RegistrationAnswer(
        client_id=client_id.strip(),
        deployment_id=deployment.strip() or None if isinstance(deployment, str) else None,
        scopes=tuple(scope.split()) if isinstance(scope, str) else (),
    )
