"""One-paste registration: an invite, LTI Dynamic Registration, then the stored platform.

register_with_invite() is the one operation behind /lti/register. It checks the invite before
any outbound call (so only an invite holder can make the tool fetch a URL), runs the protocol
(lti.dynamic_registration), then stores the platform, its deployment and the used invite in the
caller's transaction. Any refusal is a RegisterError raised before anything is added to the
session, except a lost race for the invite, after which the caller must roll back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from lti_proctor.lti import invites
from lti_proctor.lti.dynamic_registration import (
    HttpLimits,
    PlatformConfiguration,
    RegistrationAnswer,
    fetch_platform_configuration,
    register_client,
)
from lti_proctor.lti.errors import RegisterError
from lti_proctor.lti.platforms import (
    PRESETS,
    DuplicatePlatformError,
    PlatformError,
    PlatformFields,
    add_registered_platform,
    get_platform_by_client,
)
from lti_proctor.lti.registrations import Platform
from lti_proctor.lti.tool_config import ToolIdentity, client_registration
from lti_proctor.reasons import Reason

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    """A finished registration: what the confirmation page shows."""

    platform: Platform
    configuration: PlatformConfiguration
    answer: RegistrationAnswer
    requested_scopes: tuple[str, ...]

    @property
    def close_origin(self) -> str:
        """The LMS window's origin for the closing postMessage ("*" when it is not known).

        The LMS page that frames us lives where its configuration is served, except for
        Canvas configurations served from Instructure's shared SSO host.
        """
        host = urlsplit(self.configuration.url).hostname or ""
        if host.endswith("canvaslms.com"):
            return "*"
        return self.configuration.origin


def _platform_name(configuration: PlatformConfiguration, invite_name: str | None) -> str:
    if invite_name:
        return invite_name
    host = urlsplit(configuration.url).netloc
    if configuration.account_name:
        return f"{configuration.account_name} ({host})"
    return host


def register_with_invite(
    *,
    invite_token: str | None,
    openid_configuration: str | None,
    registration_token: str | None,
    tool: ToolIdentity,
    limits: HttpLimits,
    now: datetime,
) -> Registered:
    """Register the platform that opened /lti/register, if the invite is open. Flushes only."""
    invite = invites.get_open_invite(invite_token or "", now=now)
    if invite is None:
        raise RegisterError(Reason.REGISTER_INVITE_INVALID)
    if not openid_configuration:
        raise RegisterError(
            Reason.REGISTER_CONFIG_INVALID,
            "no openid_configuration parameter: paste this URL into the LMS's tool registration",
        )
    configuration = fetch_platform_configuration(
        openid_configuration, registration_token, limits=limits
    )
    body = client_registration(tool, configuration.offer)
    answer = register_client(configuration, registration_token, body, limits=limits)
    if get_platform_by_client(configuration.issuer, answer.client_id) is not None:
        raise RegisterError(
            Reason.REGISTER_ALREADY_REGISTERED,
            f"issuer {configuration.issuer} client_id {answer.client_id}",
        )
    platform = _store(configuration, answer, invite)
    if not invites.use_invite(invite, platform_id=platform.id, now=now):
        raise RegisterError(Reason.REGISTER_INVITE_INVALID, "the invite was used at the same time")
    log.info(
        "platform registered by dynamic registration: platform=%s issuer=%s client_id=%s "
        "deployment_id=%r invite=%s learn_deployments=%s",
        platform.id,
        platform.issuer,
        platform.client_id,
        answer.deployment_id,
        invite.id,
        platform.learn_deployments,
    )
    requested = tuple(str(body["scope"]).split())
    return Registered(platform, configuration, answer, requested)


def _store(
    configuration: PlatformConfiguration,
    answer: RegistrationAnswer,
    invite: invites.RegistrationInvite,
) -> Platform:
    fields = PlatformFields(
        issuer=configuration.issuer,
        client_id=answer.client_id,
        auth_login_url=configuration.authorization_endpoint,
        auth_token_url=configuration.token_endpoint,
        key_set_url=configuration.jwks_uri,
        name=_platform_name(configuration, invite.name),
        family=configuration.family if configuration.family in PRESETS else None,
    )
    deployments = [answer.deployment_id] if answer.deployment_id else []
    try:
        added = add_registered_platform(
            fields, deployment_ids=deployments, learn_deployments=invite.learn_deployments
        )
    except DuplicatePlatformError as exc:
        raise RegisterError(Reason.REGISTER_ALREADY_REGISTERED, str(exc)) from exc
    except PlatformError as exc:  # e.g. an endpoint longer than the registry stores
        raise RegisterError(Reason.REGISTER_CONFIG_INVALID, str(exc)) from exc
    return added.platform
