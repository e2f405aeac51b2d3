"""Launch: validating an LTI 1.3 launch (form_post id_token + state) into a LaunchContext value.

ToolMessageLaunch owns every check: registrations read from the database (DbToolConf), the nonce
issued by lti.oidc's login consumed once from the shared store, the state matched against its
cookie or, where third-party cookies are blocked, against the values the launch page read back
from the LMS's Platform Storage, platform keys from lti.jwks (RS256 only), the token's age and
target_link_uri, and pylti1p3's public message validators.
web/ reads the request and passes plain values in; a refusal is always a LaunchError, and a
refused launch stores nothing.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

import jwt
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.message_validators import get_validators

from lti_proctor.lti import claims as c
from lti_proctor.lti.claims import MessageType
from lti_proctor.lti.context import AgsEndpoint, LaunchContext, NrpsEndpoint
from lti_proctor.lti.errors import (
    LaunchError,
    LaunchReason,
    claim_invalid,
    claim_missing,
    classify_lti_exception,
)
from lti_proctor.lti.jwks import KeySetCache, KeyValueStore
from lti_proctor.lti.limits import check_launch_limits
from lti_proctor.lti.oidc import (
    COOKIE_PREFIX,
    STATE_PREFIX,
    LaunchSettings,
    PlatformStorage,
    ToolRequest,
    nonce_key,
    state_cookie_name,
    under_base_url,
    used_nonce_key,
)
from lti_proctor.lti.platforms import find_or_learn_deployment
from lti_proctor.lti.registrations import DbToolConf, Deployment, Platform, pick_platform
from lti_proctor.lti.roles import reduce_roles

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
_MAX_NONCE = 255


class StorageCheckRequired(Exception):
    """No state cookie came back, but the login kept its state in the LMS's Platform Storage:
    the browser must read it back there (web/ answers with the page that does) and post again."""

    def __init__(self, storage: PlatformStorage, state: str) -> None:
        super().__init__("platform storage check required")
        self.storage, self.state = storage, state


def classified(exc: Exception) -> LaunchError:
    """A pylti1p3 exception as a LaunchError (logged with its original text)."""
    error = classify_lti_exception(exc)
    log.info("pylti1p3 refusal %s: %s", error.reason.value, exc)
    return error


class ToolMessageLaunch:
    """Launch validation, every check owned here and raising a LaunchError; nonce consumed last.

    pylti1p3 is used only through its public API: its message validators (the claims each
    message type needs) run after this class's own checks. Signature, key set, nonce, state,
    registration and deployment are checked here, against the database and the shared store.
    """

    def __init__(
        self,
        request: ToolRequest,
        tool_conf: DbToolConf,
        *,
        store: KeyValueStore,
        settings: LaunchSettings,
    ) -> None:
        self._tool_request = request
        self._conf, self._store, self._settings = tool_conf, store, settings
        self._keys = KeySetCache(
            store,
            timeout_s=settings.http_timeout_s,
            cache_s=settings.jwks_cache_s,
            refetch_cooldown_s=settings.jwks_refetch_cooldown_s,
        )
        self._id_token = ""
        self._header: dict[str, Any] = {}
        self._claims: dict[str, Any] = {}
        self._state = ""
        self._state_proven = False  # by the cookie now, or by Platform Storage in validate_nonce
        self._nonce = ""
        self._login_platform_id: object = None
        self._platform: Platform | None = None
        self._deployment: Deployment | None = None
        self._context: LaunchContext | None = None

    def validate(self) -> Self:
        """Run every check in order; any failure is a LaunchError and leaves nothing stored."""
        try:
            self.validate_state().validate_jwt_format().validate_header().validate_nonce()
            self.validate_registration().validate_jwt_signature().validate_deployment()
            self.validate_message()
            assert self._platform is not None and self._deployment is not None
            # Read every claim before the nonce is spent, so a bad claim leaves nothing used.
            context = check_launch_limits(  # before anything is stored
                build_context(self._body(), self._platform, self._deployment)
            )
            self.save_launch_data()
        except LaunchError:
            raise
        except (LtiException, OIDCException) as exc:
            raise classified(exc) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # A malformed token must never become a 500; the traceback goes to the log.
            log.exception("launch validation failed on malformed input")
            raise LaunchError(LaunchReason.INVALID, type(exc).__name__) from exc
        self._context = context
        return self

    def context(self) -> LaunchContext:
        """The validated launch as a LaunchContext."""
        if self._context is None:
            raise RuntimeError("context() before a successful validate()")
        return self._context

    def _body(self) -> dict[str, Any]:
        return self._claims

    def validate_state(self) -> Self:
        """The state posted back must be the one in this browser's login cookie.

        Without any state cookie the verdict waits for validate_nonce: the token's nonce tells
        a resubmitted form (nonce already used) and a Platform Storage login apart from a
        browser that dropped the cookie.
        """
        state = self._tool_request.get_param("state")
        if not state:
            raise LaunchError(LaunchReason.STATE_MISMATCH, "no state in the launch")
        self._state = state
        if self._tool_request.get_cookie(state_cookie_name(state)) == state:
            self._state_proven = True
            return self
        names = self._tool_request.cookie_names()
        if any(n.startswith(COOKIE_PREFIX + STATE_PREFIX) for n in names):
            raise LaunchError(LaunchReason.STATE_MISMATCH, "state does not match the cookie")
        return self

    def validate_jwt_format(self) -> Self:
        """The id_token is a JWT whose header and body are JSON objects (verified later)."""
        error = self._tool_request.get_param("error")
        if error and not self._tool_request.get_param("id_token"):
            # OIDC error response (Moodle's auth.php posts these back to redirect_uri).
            raise LaunchError(LaunchReason.PLATFORM_REFUSED, f"platform error {error!r}")
        token = self._tool_request.get_param("id_token")
        if not token:
            raise LaunchError(LaunchReason.TOKEN_INVALID, "no id_token in the launch")
        parts = token.split(".")
        if len(parts) != 3:
            raise LaunchError(LaunchReason.TOKEN_INVALID, "id_token is not a JWT")
        try:
            header, body = (json.loads(_b64decode(part)) for part in parts[:2])
        except ValueError as exc:  # bad base64, bad UTF-8 and bad JSON are all ValueErrors
            raise LaunchError(LaunchReason.TOKEN_INVALID, "id_token cannot be decoded") from exc
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise LaunchError(LaunchReason.TOKEN_INVALID, "id_token is not a JSON object")
        self._id_token, self._header, self._claims = token, header, body
        return self

    def validate_header(self) -> Self:
        """RS256 only (never none or HS256), and a kid to find the platform's key."""
        header = self._header
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise LaunchError(LaunchReason.ALGORITHM_NOT_ALLOWED, f"alg {alg!r}")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise LaunchError(LaunchReason.KID_UNKNOWN, "no kid in the token header")
        return self

    def validate_nonce(self) -> Self:
        """The nonce must have been issued by our login for this state (consumed at the end)."""
        body = self._body()
        for name in ("iss", "aud", "nonce"):
            if body.get(name) in (None, "", []):
                raise claim_missing(name)
        nonce = body["nonce"]
        if not isinstance(nonce, str) or len(nonce) > _MAX_NONCE:
            raise claim_invalid("nonce")
        raw = self._store.get(nonce_key(nonce))
        if raw is None:
            # A consumed nonce is a resubmitted form, cookie or not (the first use cleared it).
            if self._store.get(used_nonce_key(nonce)) is not None:
                raise LaunchError(LaunchReason.NONCE_REPLAYED, "nonce already used")
            self._require_state_proven()
            raise LaunchError(LaunchReason.NONCE_INVALID, "nonce unknown or expired")
        entry = json.loads(raw)
        if entry.get("state") != self._state:
            self._require_state_proven()
            raise LaunchError(LaunchReason.NONCE_INVALID, "nonce was issued for another login")
        if not self._state_proven:
            self._check_platform_storage(entry.get("storage"), nonce)
        self._nonce, self._login_platform_id = nonce, entry.get("platform_id")
        return self

    def _require_state_proven(self) -> None:
        if not self._state_proven:
            raise LaunchError(LaunchReason.STATE_MISSING, "no state cookie")

    def _check_platform_storage(self, storage: object, nonce: str) -> None:
        """The launch page read the state and nonce back from the LMS's storage and posted them.

        Only a page of the tool's own origin can post that answer (the browser sets Origin), and
        it posts only what the LMS's storage for our origin held: a form forged elsewhere fails.
        """
        if not isinstance(storage, dict):
            raise LaunchError(LaunchReason.STATE_MISSING, "no state cookie")
        posted_state = self._tool_request.get_param("lti_storage_state")
        posted_nonce = self._tool_request.get_param("lti_storage_nonce")
        if not posted_state and not posted_nonce:
            where = PlatformStorage(str(storage.get("target")), str(storage.get("origin")))
            raise StorageCheckRequired(where, self._state)
        base = urlsplit(self._settings.base_url)
        if self._tool_request.origin != f"{base.scheme}://{base.netloc}":
            raise LaunchError(LaunchReason.STATE_MISMATCH, "storage answer not from the tool")
        if not (
            hmac.compare_digest(posted_state.encode(), self._state.encode())
            and hmac.compare_digest(posted_nonce.encode(), nonce.encode())
        ):
            raise LaunchError(LaunchReason.STATE_MISMATCH, "platform storage does not match")

    def validate_registration(self) -> Self:
        """iss and aud/azp name a registration, the same one the login was started for."""
        body = self._body()
        iss = body["iss"]
        if not isinstance(iss, str):
            raise claim_invalid("iss")
        platforms = self._conf.find_platforms(iss)  # one query serves both checks
        if not platforms:
            raise LaunchError(LaunchReason.REGISTRATION_UNKNOWN, f"unknown issuer {iss!r}")
        client_id = _client_id(body)
        platform = pick_platform(platforms, client_id)
        if platform is None:
            raise LaunchError(LaunchReason.REGISTRATION_UNKNOWN, f"unknown client_id {client_id!r}")
        if platform.id != self._login_platform_id:
            raise LaunchError(
                LaunchReason.AUDIENCE_INVALID, "token is for another registration than the login"
            )
        self._platform = platform
        return self

    def validate_jwt_signature(self) -> Self:
        """Verify the RS256 signature with the platform's key, then aud, exp and iat."""
        assert self._platform is not None
        key = self._keys.signing_key(self._platform.key_set_url, self._header["kid"])
        try:
            verified = jwt.decode(
                self._id_token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._platform.client_id,
                issuer=self._platform.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise _jwt_error(exc) from exc
        age = time.time() - float(verified["iat"])
        if age > self._settings.max_token_age_s + self._settings.leeway_s:
            raise LaunchError(LaunchReason.TOKEN_TOO_OLD, f"issued {int(age)} s ago")
        self._claims = verified
        return self

    def validate_deployment(self) -> Self:
        """The deployment must be registered (or learnable, see platforms) and active."""
        assert self._platform is not None
        deployment_id = self._body().get(c.DEPLOYMENT_ID)
        if not deployment_id:
            raise claim_missing("deployment_id")
        if not isinstance(deployment_id, str):
            raise claim_invalid("deployment_id")
        row = find_or_learn_deployment(self._platform, deployment_id)
        if row is None:
            raise LaunchError(LaunchReason.DEPLOYMENT_UNKNOWN, f"deployment {deployment_id!r}")
        if not row.active:
            raise LaunchError(LaunchReason.DEPLOYMENT_INACTIVE, f"deployment {deployment_id!r}")
        self._deployment = row
        return self

    def validate_message(self) -> Self:
        """Message type, LTI version and the claims each message type requires."""
        body = self._body()
        message_type = _required(body, c.MESSAGE_TYPE, "message_type")
        if message_type not in set(MessageType):
            raise LaunchError(LaunchReason.MESSAGE_UNSUPPORTED, f"message_type {message_type!r}")
        version = _required(body, c.VERSION, "version")
        if version != c.LTI_VERSION:
            raise LaunchError(LaunchReason.VERSION_UNSUPPORTED, f"version {version!r}")
        if not isinstance(_required(body, "sub", "sub"), str):
            raise claim_invalid("sub")
        target = _required(body, c.TARGET_LINK_URI, "target_link_uri")
        if not isinstance(target, str) or not under_base_url(target, self._settings.base_url):
            raise LaunchError(LaunchReason.TARGET_LINK_INVALID, "target_link_uri is not ours")
        roles = _required(body, c.ROLES, "roles", allow_empty=True)
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise claim_invalid("roles")
        if message_type == MessageType.RESOURCE_LINK:
            link = body.get(c.RESOURCE_LINK)
            if not isinstance(link, dict) or not link.get("id"):
                raise claim_missing("resource_link.id")
        elif not isinstance(
            _required(body, c.DEEP_LINKING_SETTINGS, "deep_linking_settings"), dict
        ):
            raise claim_invalid("deep_linking_settings")
        # pylti1p3's own message validators (its public API) run after the checks above.
        for validator in get_validators():  # type: ignore[no-untyped-call]
            if validator.can_validate(body):
                validator.validate(body)
        return self

    def save_launch_data(self) -> Self:
        """Consume the nonce and remember it was used; the launch itself is kept nowhere."""
        nonce, ttl_s = self._nonce, self._settings.nonce_ttl_s
        if self._store.pop_and_set(nonce_key(nonce), used_nonce_key(nonce), "1", ttl_s) is None:
            raise LaunchError(LaunchReason.NONCE_REPLAYED, "nonce used by a concurrent launch")
        return self


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _required(body: Mapping[str, Any], uri: str, name: str, *, allow_empty: bool = False) -> Any:
    value = body.get(uri)
    if value is None or (not allow_empty and value in ("", [], {})):
        raise claim_missing(name)
    return value


def _client_id(body: Mapping[str, Any]) -> str:
    """Our client_id per OIDC: azp when present (it must be an audience), else the single aud."""
    aud = body["aud"]
    auds = [aud] if isinstance(aud, str) else aud
    if not isinstance(auds, list) or not auds or not all(isinstance(a, str) for a in auds):
        raise claim_invalid("aud")
    azp = body.get("azp")
    if azp is not None:
        if not isinstance(azp, str) or azp not in auds:
            raise LaunchError(LaunchReason.AUDIENCE_INVALID, "azp is not one of the audiences")
        return azp
    if len(auds) > 1:
        raise LaunchError(LaunchReason.AUDIENCE_INVALID, "several audiences and no azp")
    client_id: str = auds[0]
    return client_id


def _jwt_error(exc: jwt.PyJWTError) -> LaunchError:
    """Map pyjwt's verification errors to reasons; the most specific class wins."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return claim_missing(exc.claim)
    table: tuple[tuple[type[jwt.PyJWTError], LaunchReason], ...] = (
        (jwt.ExpiredSignatureError, LaunchReason.TOKEN_EXPIRED),
        (jwt.ImmatureSignatureError, LaunchReason.TOKEN_NOT_YET_VALID),
        (jwt.InvalidSignatureError, LaunchReason.SIGNATURE_INVALID),
        (jwt.InvalidAudienceError, LaunchReason.AUDIENCE_INVALID),
        (jwt.InvalidAlgorithmError, LaunchReason.ALGORITHM_NOT_ALLOWED),
    )
    for cls, reason in table:
        if isinstance(exc, cls):
            return LaunchError(reason, str(exc))
    return LaunchError(LaunchReason.TOKEN_INVALID, f"{type(exc).__name__}: {exc}")


def build_context(
    body: Mapping[str, Any], platform: Platform, deployment: Deployment
) -> LaunchContext:
    """Turn a verified id_token body into a LaunchContext."""
    context = _obj(body, c.CONTEXT, "context")
    link = _obj(body, c.RESOURCE_LINK, "resource_link")
    presentation = _obj(body, c.LAUNCH_PRESENTATION, "launch_presentation")
    tool_platform = _obj(body, c.TOOL_PLATFORM, "tool_platform")
    dls = body.get(c.DEEP_LINKING_SETTINGS)
    return LaunchContext(
        platform_id=platform.id,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_id=deployment.deployment_id,
        message_type=str(body[c.MESSAGE_TYPE]),
        user_sub=str(body["sub"]),
        roles=reduce_roles(body[c.ROLES]),
        context_id=_str(context, "id"),
        context_label=_str(context, "label"),
        context_title=_str(context, "title"),
        resource_link_id=_str(link, "id"),
        resource_link_title=_str(link, "title"),
        user_name=_str(body, "name"),
        given_name=_str(body, "given_name"),
        family_name=_str(body, "family_name"),
        email=_str(body, "email"),
        custom=_custom(body),
        locale=_str(presentation, "locale") or _str(body, "locale"),
        return_url=_str(presentation, "return_url"),
        document_target=_str(presentation, "document_target"),
        platform_family=_str(tool_platform, "product_family_code")
        or _str(tool_platform, "family_code"),
        ags=_ags(_obj(body, c.AGS_ENDPOINT, "ags endpoint")),
        nrps=_nrps(_obj(body, c.NRPS, "namesroleservice")),
        deep_linking_settings=dict(dls) if isinstance(dls, dict) else None,
        allow_teaching_assistants=bool(deployment.allow_teaching_assistants),
        default_profile=deployment.default_profile,
    )


def _obj(body: Mapping[str, Any], uri: str, name: str) -> dict[str, Any]:
    value = body.get(uri)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise claim_invalid(name)
    return value


def _str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _custom(body: Mapping[str, Any]) -> dict[str, str]:
    custom = _obj(body, c.CUSTOM, "custom")
    return {
        str(k): v if isinstance(v, str) else json.dumps(v)
        for k, v in custom.items()
        if v is not None
    }


def _ags(claim: Mapping[str, Any]) -> AgsEndpoint | None:
    if not claim:
        return None
    return AgsEndpoint(
        scopes=_strs(claim.get("scope")),
        lineitems=_str(claim, "lineitems"),
        lineitem=_str(claim, "lineitem"),
    )


def _nrps(claim: Mapping[str, Any]) -> NrpsEndpoint | None:
    url = _str(claim, "context_memberships_url")
    if url is None:
        return None
    return NrpsEndpoint(
        context_memberships_url=url, service_versions=_strs(claim.get("service_versions"))
    )


def validate_launch(
    form: Mapping[str, str],
    cookies: Mapping[str, str],
    *,
    secure: bool,
    origin: str | None = None,
    tool_conf: DbToolConf,
    store: KeyValueStore,
    settings: LaunchSettings,
) -> LaunchContext:
    """Validate a form_post launch (id_token + state) and return its LaunchContext.

    Raises LaunchError on refusal, and StorageCheckRequired when the state must first be read
    back from the LMS's Platform Storage.
    """
    request = ToolRequest(form, cookies, secure=secure, origin=origin)
    launch = ToolMessageLaunch(request, tool_conf, store=store, settings=settings)
    return launch.validate().context()
