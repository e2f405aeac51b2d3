"""Adding an exam through LTI Deep Linking: the request carried between the form and its answer,
the stored settings and the signed LtiDeepLinkingResponse that hands the LMS its new link.

The deep-linking request's context (return URL, `data`, what the platform accepts, whose course)
waits in the shared store under an unguessable key for DEEP_LINK_TTL_S, so nothing about it rides
in the form; it is used once. No Flask request here: web/deep_link.py reads the request.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lti_proctor.exam_settings import ExamSettings, Owner, SettingsInput, create_settings
from lti_proctor.extensions import db
from lti_proctor.lti.deep_linking import (
    DeepLinkingSettings,
    LineItemRequest,
    ResourceLinkItem,
    ResponseSigner,
    build_response,
)
from lti_proctor.lti.keys import get_signing_key
from lti_proctor.lti.registrations import Platform

DEEP_LINK_TTL_S = 900  # the instructor fills in a form; Canvas's own request lives about as long
KEY_PREFIX = "deep-link:"
LINEITEM_LABEL = "Proctoring: "
LINEITEM_TAG = "proctoring"
SCORE_MAXIMUM = 100.0


class Store(Protocol):
    """The part of the shared store this module uses."""

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl_s: float) -> None: ...
    def pop(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class DeepLinkRequest:
    """A validated deep-linking request, as far as the answer needs it."""

    settings: DeepLinkingSettings
    owner: Owner
    user_sub: str
    locale: str | None
    origins: tuple[str, ...]  # the LMS pages that may frame the form

    def to_json(self) -> str:
        """The request as stored between the form and its submission."""
        return json.dumps(
            {
                "settings": self.settings.as_dict(),
                "owner": [self.owner.platform_id, self.owner.deployment_id, self.owner.context_id],
                "sub": self.user_sub,
                "locale": self.locale,
                "origins": list(self.origins),
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> DeepLinkRequest:
        """The inverse of to_json()."""
        data: dict[str, Any] = json.loads(raw)
        platform_id, deployment_id, context_id = data["owner"]
        return cls(
            settings=DeepLinkingSettings.from_dict(data["settings"]),
            owner=Owner(int(platform_id), str(deployment_id), str(context_id)),
            user_sub=str(data["sub"]),
            locale=data.get("locale"),
            origins=tuple(str(o) for o in data.get("origins") or ()),
        )


def open_request(store: Store, request: DeepLinkRequest) -> str:
    """Keep the request for the form's submission; returns its unguessable key."""
    key = secrets.token_urlsafe(24)
    store.set(KEY_PREFIX + key, request.to_json(), DEEP_LINK_TTL_S)
    return key


def get_request(store: Store, key: str) -> DeepLinkRequest | None:
    """The pending request under key, or None when it expired, was used or never existed."""
    raw = store.get(KEY_PREFIX + key) if key else None
    return DeepLinkRequest.from_json(raw) if raw else None


def exam_item(row: ExamSettings, *, launch_url: str) -> ResourceLinkItem:
    """The link the LMS stores: the title, the opaque reference and the proctoring column."""
    return ResourceLinkItem(
        title=row.title,
        url=launch_url,
        custom={"exam": row.ref},
        line_item=LineItemRequest(
            label=(LINEITEM_LABEL + row.title)[:255],
            score_maximum=SCORE_MAXIMUM,
            resource_id=row.ref,
            tag=LINEITEM_TAG,
        ),
    )


def response_signer(platform_id: int, deployment_id: str) -> ResponseSigner:
    """The tool as the platform knows it (client_id, issuer), with its current key."""
    platform = db.session.get(Platform, platform_id)
    if platform is None:
        raise LookupError(f"platform {platform_id} is no longer registered")
    kid, key = get_signing_key()
    return ResponseSigner(
        client_id=platform.client_id,
        platform_issuer=platform.issuer,
        deployment_id=deployment_id,
        kid=kid,
        key=key,
    )


@dataclass(frozen=True)
class LinkedExam:
    """What a submitted form made: the stored settings and the signed answer for the LMS."""

    settings: ExamSettings
    return_url: str
    jwt: str


def link_exam(
    store: Store, key: str, request: DeepLinkRequest, values: SettingsInput, *, launch_url: str
) -> LinkedExam | None:
    """Store the exam and sign the answer, using the request once; None when already used.

    The caller commits. The key is taken first, so a double submit makes one exam only.
    """
    if store.pop(KEY_PREFIX + key) is None:
        return None
    row = create_settings(request.owner, values, created_by=request.user_sub)
    signer = response_signer(request.owner.platform_id, request.owner.deployment_id)
    token = build_response(request.settings, [exam_item(row, launch_url=launch_url)], signer)
    return LinkedExam(row, request.settings.return_url, token)


def profile_choices(profiles: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, one-line description) of each configured profile, for the form's select."""
    return [(name, getattr(p, "description", "") or "") for name, p in sorted(profiles.items())]
