"""LTI Deep Linking 2.0: what a deep-linking request accepts, and the signed LtiDeepLinkingResponse.

Pure protocol: it reads the request's settings claim as Moodle and Canvas send it and builds the
response JWT that the browser auto-posts back to `deep_link_return_url`. It knows nothing of exams
or Flask. Spec: https://www.imsglobal.org/spec/lti-dl/v2p0 (sections 4.4 and 4.5).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from lti_proctor.lti import claims as c

RESPONSE_MESSAGE_TYPE = "LtiDeepLinkingResponse"
RESOURCE_LINK_TYPE = "ltiResourceLink"
# Canvas lists media types (as one comma-separated string) beside, or instead of, accept_types.
LTI_LINK_MEDIA_TYPE = "application/vnd.ims.lti.v1.ltilink"
CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
MSG = "https://purl.imsglobal.org/spec/lti-dl/claim/msg"
ERRORMSG = "https://purl.imsglobal.org/spec/lti-dl/claim/errormsg"
RESPONSE_TTL_S = 600  # the instructor's browser posts it at once; Canvas refuses old ones


class DeepLinkingError(ValueError):
    """The deep-linking request cannot take what the tool offers."""


@dataclass(frozen=True)
class DeepLinkingSettings:
    """The deep_linking_settings claim, normalised across Moodle and Canvas."""

    return_url: str
    accept_types: frozenset[str]
    accept_multiple: bool
    auto_create: bool
    accept_lineitem: bool
    data: str | None = None
    title: str | None = None

    @property
    def accepts_resource_link(self) -> bool:
        """True when the platform takes an ltiResourceLink item."""
        return RESOURCE_LINK_TYPE in self.accept_types

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe copy, to carry the settings from the form page to the response."""
        return {
            "return_url": self.return_url,
            "accept_types": sorted(self.accept_types),
            "accept_multiple": self.accept_multiple,
            "auto_create": self.auto_create,
            "accept_lineitem": self.accept_lineitem,
            "data": self.data,
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeepLinkingSettings:
        """The inverse of as_dict()."""
        return cls(
            return_url=str(raw["return_url"]),
            accept_types=frozenset(str(t) for t in raw.get("accept_types") or ()),
            accept_multiple=bool(raw.get("accept_multiple")),
            auto_create=bool(raw.get("auto_create")),
            accept_lineitem=bool(raw.get("accept_lineitem", True)),
            data=raw.get("data"),
            title=raw.get("title"),
        )


def _flag(value: object, default: bool) -> bool:
    """A boolean as platforms send it: JSON true/false, or the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def parse_settings(claim: Mapping[str, Any] | None) -> DeepLinkingSettings:
    """Read the request's deep_linking_settings; DeepLinkingError when it is unusable."""
    if not claim:
        raise DeepLinkingError("The deep-linking request has no deep_linking_settings claim.")
    return_url = claim.get("deep_link_return_url")
    if not isinstance(return_url, str) or not return_url.startswith(("https://", "http://")):
        raise DeepLinkingError("The deep-linking request has no usable deep_link_return_url.")
    types = {str(t) for t in claim.get("accept_types") or () if isinstance(t, str)}
    media = claim.get("accept_media_types")
    if isinstance(media, str) and LTI_LINK_MEDIA_TYPE in {m.strip() for m in media.split(",")}:
        types.add(RESOURCE_LINK_TYPE)
    data = claim.get("data")
    title = claim.get("title")
    return DeepLinkingSettings(
        return_url=return_url,
        accept_types=frozenset(types),
        # The spec's defaults: several items allowed, no auto-create, line items accepted.
        accept_multiple=_flag(claim.get("accept_multiple"), True),
        auto_create=_flag(claim.get("auto_create"), False),
        accept_lineitem=_flag(claim.get("accept_lineitem"), True),
        data=data if isinstance(data, str) else None,
        title=title if isinstance(title, str) and title else None,
    )


@dataclass(frozen=True)
class LineItemRequest:
    """The gradebook column a resource link asks the platform to create with it."""

    label: str
    score_maximum: float
    resource_id: str
    tag: str


@dataclass(frozen=True)
class ResourceLinkItem:
    """One ltiResourceLink content item."""

    title: str
    url: str
    custom: Mapping[str, str] = field(default_factory=dict)
    line_item: LineItemRequest | None = None

    def to_json(self, settings: DeepLinkingSettings) -> dict[str, Any]:
        """The item as the response carries it; the line item only where the platform takes it."""
        item: dict[str, Any] = {"type": RESOURCE_LINK_TYPE, "title": self.title, "url": self.url}
        if self.custom:
            item["custom"] = dict(self.custom)
        if self.line_item is not None and settings.accept_lineitem:
            item["lineItem"] = {
                "label": self.line_item.label,
                "scoreMaximum": self.line_item.score_maximum,
                "resourceId": self.line_item.resource_id,
                "tag": self.line_item.tag,
            }
        return item


@dataclass(frozen=True)
class ResponseSigner:
    """Who signs the response: the tool as the platform knows it, with its current key."""

    client_id: str
    platform_issuer: str
    deployment_id: str
    kid: str
    key: RSAPrivateKey


def build_response(
    settings: DeepLinkingSettings,
    items: Sequence[ResourceLinkItem],
    signer: ResponseSigner,
    *,
    message: str | None = None,
    now: float | None = None,
) -> str:
    """The signed LtiDeepLinkingResponse JWT (form field `JWT`) for `items`."""
    if items and not settings.accepts_resource_link:
        raise DeepLinkingError("The platform does not accept LTI resource links here.")
    if len(items) > 1 and not settings.accept_multiple:
        raise DeepLinkingError("The platform accepts one item only.")
    issued = int(time.time() if now is None else now)
    body: dict[str, Any] = {
        "iss": signer.client_id,
        "aud": signer.platform_issuer,
        "iat": issued,
        "exp": issued + RESPONSE_TTL_S,
        "nonce": uuid.uuid4().hex,
        "jti": uuid.uuid4().hex,  # Canvas refuses a response whose jti it has seen before
        c.MESSAGE_TYPE: RESPONSE_MESSAGE_TYPE,
        c.VERSION: c.LTI_VERSION,
        c.DEPLOYMENT_ID: signer.deployment_id,
        CONTENT_ITEMS: [item.to_json(settings) for item in items],
    }
    if settings.data is not None:
        body[DATA] = settings.data  # echoed unchanged, as the spec requires
    if message:
        body[MSG] = message
    return jwt.encode(body, signer.key, algorithm="RS256", headers={"kid": signer.kid})
