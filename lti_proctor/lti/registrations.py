"""Platform registrations and their deployments, and the pylti1p3 ToolConf that reads them.

Every login and launch reads an issuer's registrations and deployments: they come from a
per-process cache (registration_cache), as copies never attached to a session; a commit that
changes either table drops the copies in every process (LTI_REGISTRATION_CACHE_S,
LTI_REGISTRATION_CACHE_CHECK_S).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import current_app, has_app_context
from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.registration import Registration
from pylti1p3.request import Request
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_proctor.extensions import db
from lti_proctor.lti.registration_cache import (
    SharedVersionedCache,
    has_uncommitted_changes,
    watch_tables,
)
from lti_proctor.store import get_store

_CACHE_EXT = "lti_proctor_registration_cache"
VERSION_KEY = "lti:registrations-version"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Platform(db.Model):  # type: ignore[name-defined,misc]
    """One LMS registration: an issuer and one of its client_ids, with its endpoints."""

    __tablename__ = "lti_platform"
    __table_args__ = (UniqueConstraint("issuer", "client_id", name="uq_platform_issuer_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    issuer: Mapped[str] = mapped_column(String(512), index=True)
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1024))
    auth_token_url: Mapped[str] = mapped_column(String(1024))
    key_set_url: Mapped[str] = mapped_column(String(1024))
    auth_audience: Mapped[str | None] = mapped_column(String(1024))
    family: Mapped[str | None] = mapped_column(String(32))  # "moodle", "canvas" or None
    # Set by Dynamic Registration when the invite allowed it: a launch naming a new deployment
    # id of this platform's own client registers that deployment (Canvas sends none at first).
    learn_deployments: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="platform", cascade="all, delete-orphan", order_by="Deployment.id"
    )


class Deployment(db.Model):  # type: ignore[name-defined,misc]
    """A deployment id of a platform; launches must name one that is registered and active."""

    __tablename__ = "lti_deployment"
    __table_args__ = (
        UniqueConstraint("platform_id", "deployment_id", name="uq_deployment_platform_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform_id: Mapped[int] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    default_profile: Mapped[str | None] = mapped_column(String(64))
    # Off by default: some LMSs send forum moderators (often students) as teaching assistants.
    allow_teaching_assistants: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    learned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # first launch
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)

    platform: Mapped[Platform] = relationship(back_populates="deployments")


class DbToolConf(ToolConfAbstract[Request]):
    """pylti1p3 ToolConf reading registrations from the database; one issuer, many client_ids."""

    def __init__(
        self, *, tool_private_key: str | None = None, tool_public_key: str | None = None
    ) -> None:
        # The base class keeps a class-level dict; each instance gets its own.
        self.issuers_relation_types = {}
        self._private_key = tool_private_key
        self._public_key = tool_public_key

    def check_iss_has_one_client(self, iss: str) -> bool:
        """Never: registrations are always looked up by issuer and client_id."""
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        """Always: an issuer may have several client_ids."""
        return True

    def find_platforms(self, iss: str) -> list[Platform]:
        """Every registration of an issuer (cached copies, see the module docstring)."""
        return list(issuer_registrations(iss).platforms)

    def get_platform(self, iss: str, client_id: str | None) -> Platform | None:
        """The registration of (issuer, client_id); without client_id, the issuer's only one."""
        return pick_platform(self.find_platforms(iss), client_id)

    def get_platform_by_id(self, platform_id: int) -> Platform | None:
        """The registration with this primary key."""
        platform: Platform | None = db.session.get(Platform, platform_id)
        return platform

    def get_deployment(self, platform: Platform, deployment_id: str) -> Deployment | None:
        """The platform's deployment row with this id, active or not."""
        cached = cached_deployment(platform, deployment_id)
        if cached is not None:
            return cached
        return db.session.scalars(
            select(Deployment).where(
                Deployment.platform_id == platform.id,
                Deployment.deployment_id == deployment_id,
            )
        ).first()

    def registration_for(self, platform: Platform) -> Registration:
        """The pylti1p3 Registration of a platform row (with the tool's key when given)."""
        reg = (
            Registration()
            .set_issuer(platform.issuer)
            .set_client_id(platform.client_id)
            .set_auth_login_url(platform.auth_login_url)
            .set_auth_token_url(platform.auth_token_url)
            .set_key_set_url(platform.key_set_url)
        )
        if platform.auth_audience:
            reg.set_auth_audience(platform.auth_audience)
        if self._private_key:
            reg.set_tool_private_key(self._private_key)
        if self._public_key:
            reg.set_tool_public_key(self._public_key)
        return reg

    def find_registration_by_issuer(  # type: ignore[override]
        self, iss: str, *args: object, **kwargs: object
    ) -> Registration | None:
        """The issuer's registration when it has exactly one client_id."""
        platform = self.get_platform(iss, None)
        return self.registration_for(platform) if platform else None

    def find_registration_by_params(  # type: ignore[override]
        self, iss: str, client_id: str, *args: object, **kwargs: object
    ) -> Registration | None:
        """The registration of (issuer, client_id)."""
        platform = self.get_platform(iss, client_id)
        return self.registration_for(platform) if platform else None

    def find_deployment(self, iss: str, deployment_id: str) -> LtiDeployment | None:
        """The active deployment of the issuer's only registration."""
        platform = self.get_platform(iss, None)
        return self._active(platform, deployment_id) if platform else None

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: object, **kwargs: object
    ) -> LtiDeployment | None:
        """The active deployment of (issuer, client_id, deployment_id)."""
        platform = self.get_platform(iss, client_id)
        return self._active(platform, deployment_id) if platform else None

    def _active(self, platform: Platform, deployment_id: str) -> LtiDeployment | None:
        row = self.get_deployment(platform, deployment_id)
        if row is None or not row.active:
            return None
        return LtiDeployment().set_deployment_id(row.deployment_id)


def pick_platform(platforms: list[Platform], client_id: str | None) -> Platform | None:
    """The issuer's registration for client_id; without client_id, the issuer's only one."""
    if client_id is None:
        return platforms[0] if len(platforms) == 1 else None
    return next((p for p in platforms if p.client_id == client_id), None)


@dataclass(frozen=True)
class IssuerRegistrations:
    """An issuer's registrations and their deployments, as detached copies (read-only)."""

    platforms: tuple[Platform, ...]
    deployments: Mapping[tuple[int, str], Deployment]


_Row = TypeVar("_Row", Platform, Deployment)


def _copy(row: _Row) -> _Row:
    """A transient copy of row's columns: safe to share between threads and requests."""
    cls = type(row)
    return cls(**{col.key: getattr(row, col.key) for col in cls.__table__.columns})


def _load_issuer(issuer: str) -> IssuerRegistrations:
    platforms = list(db.session.scalars(select(Platform).where(Platform.issuer == issuer)))
    deployments: list[Deployment] = []
    if platforms:
        ids = [p.id for p in platforms]
        deployments = list(
            db.session.scalars(select(Deployment).where(Deployment.platform_id.in_(ids)))
        )
    return IssuerRegistrations(
        tuple(_copy(p) for p in platforms),
        {(d.platform_id, d.deployment_id): _copy(d) for d in deployments},
    )


def _cache() -> SharedVersionedCache[Any]:
    extensions = current_app.extensions
    cache: SharedVersionedCache[Any] | None = extensions.get(_CACHE_EXT)
    if cache is None:
        cache = extensions.setdefault(
            _CACHE_EXT,
            SharedVersionedCache(
                version_key=VERSION_KEY,
                store=get_store,
                ttl_s=float(current_app.config["LTI_REGISTRATION_CACHE_S"]),
                check_s=float(current_app.config["LTI_REGISTRATION_CACHE_CHECK_S"]),
            ),
        )
    return cache


def issuer_registrations(issuer: str) -> IssuerRegistrations:
    """The issuer's registrations and deployments, from this process's cache when it has them.

    A session that changed registrations and has not committed reads its own rows instead.
    """
    if has_uncommitted_changes(db.session()):
        return _load_issuer(issuer)
    registrations: IssuerRegistrations = _cache().get_or_load(
        ("issuer", issuer), lambda: _load_issuer(issuer)
    )
    return registrations


def cached_deployment(platform: Platform, deployment_id: str) -> Deployment | None:
    """The platform's deployment with this id from the cache; None when it does not know it."""
    return issuer_registrations(platform.issuer).deployments.get((platform.id, deployment_id))


def platform_snapshot(platform_id: int) -> Platform | None:
    """A read-only copy of the registration with this primary key (cached)."""

    def load() -> Platform | None:
        row = db.session.get(Platform, platform_id)
        return _copy(row) if row is not None else None

    if has_uncommitted_changes(db.session()):
        return load()
    platform: Platform | None = _cache().get_or_load(("id", platform_id), load)
    return platform


def _announce_change() -> None:
    """After a commit that changed registrations: every process drops its cached copies."""
    if has_app_context():
        _cache().invalidate()


watch_tables((Platform.__tablename__, Deployment.__tablename__), on_commit=_announce_change)
