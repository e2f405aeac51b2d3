"""LaunchContext: everything the rest of the tool may know about a validated launch, as a value.

Built by lti.launch; read by routing, identity, the exam and instructor pages, and checked by
lti.limits. A plain frozen value with no behaviour beyond reading its roles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lti_proctor.lti.roles import Role


@dataclass(frozen=True)
class AgsEndpoint:
    """The AGS endpoint claim of a launch."""

    scopes: tuple[str, ...]
    lineitems: str | None
    lineitem: str | None


@dataclass(frozen=True)
class NrpsEndpoint:
    """The NRPS claim of a launch."""

    context_memberships_url: str
    service_versions: tuple[str, ...]


@dataclass(frozen=True)
class LaunchContext:
    """Everything the rest of the tool may know about a validated launch."""

    platform_id: int
    issuer: str
    client_id: str
    deployment_id: str
    message_type: str
    user_sub: str
    roles: frozenset[Role]
    context_id: str | None = None
    context_label: str | None = None
    context_title: str | None = None
    resource_link_id: str | None = None
    resource_link_title: str | None = None
    user_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    custom: Mapping[str, str] = field(default_factory=dict)
    locale: str | None = None
    return_url: str | None = None
    document_target: str | None = None
    platform_family: str | None = None
    ags: AgsEndpoint | None = None
    nrps: NrpsEndpoint | None = None
    deep_linking_settings: Mapping[str, object] | None = None
    # The deployment's own settings, read with it during validation.
    allow_teaching_assistants: bool = False
    default_profile: str | None = None

    @property
    def is_instructor(self) -> bool:
        """True for instructors and admins: they see the instructor view."""
        return bool(self.roles & {Role.INSTRUCTOR, Role.ADMIN})

    @property
    def is_learner(self) -> bool:
        """True when the launch carries the learner role and no teaching role."""
        return Role.LEARNER in self.roles and not self.is_instructor
