"""The platform registry's operations: add, list and remove LMS registrations and deployments.

Also resolves the Moodle and Canvas presets into endpoint URLs. Every refusal is a PlatformError
with a one-line message, raised before anything is added to the session.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from lti_proctor.extensions import db
from lti_proctor.lti.registrations import Deployment, Platform, cached_deployment

log = logging.getLogger(__name__)
PRESETS = ("moodle", "canvas")
CANVAS_ENVS = ("prod", "beta", "test")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})
ENDPOINT_FIELDS = ("auth_login_url", "auth_token_url", "key_set_url", "auth_audience")
URL_FIELDS = ("issuer", "auth_login_url", "auth_token_url", "key_set_url")
MAX_LENGTH = {
    "issuer": 512,
    "client_id": 255,
    "name": 255,
    "auth_login_url": 1024,
    "auth_token_url": 1024,
    "key_set_url": 1024,
    "auth_audience": 1024,
    "deployment_id": 255,
}


class PlatformError(ValueError):
    """The platform registry refused the change; nothing was changed."""


class DuplicatePlatformError(PlatformError):
    """That issuer and client_id (or deployment) is registered already; nothing was changed."""


@dataclass(frozen=True)
class PlatformFields:
    """The values of a registration before validation; None means not given."""

    issuer: str | None = None
    client_id: str | None = None
    auth_login_url: str | None = None
    auth_token_url: str | None = None
    key_set_url: str | None = None
    name: str | None = None
    auth_audience: str | None = None
    family: str | None = None


@dataclass(frozen=True)
class PlatformAdded:
    """What add_platform did: the registration, whether it is new, and the deployments added."""

    platform: Platform
    created: bool
    deployment_ids: tuple[str, ...]


def _clean(value: str | None) -> str | None:
    """Strip value; an empty string counts as not given."""
    value = value.strip() if value is not None else None
    return value or None


def check_url(field: str, value: str) -> str:
    """Return value when it is an absolute https URL (http only on localhost/127.0.0.1)."""
    if not _is_tool_safe_url(value):
        raise PlatformError(
            f"{field} {value!r} is not a valid URL: use https://host/... "
            "(plain http only for localhost or 127.0.0.1)"
        )
    return value


def _is_tool_safe_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port  # a malformed port raises ValueError
    except ValueError:
        return False
    if not host or parts.fragment or any(ch.isspace() for ch in value):
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)


def _check_length(field: str, value: str | None) -> None:
    if value is not None and len(value) > MAX_LENGTH[field]:
        raise PlatformError(f"{field} is longer than {MAX_LENGTH[field]} characters")


def _origin(url: str) -> str:
    parts = urlsplit(check_url("url", url))
    return f"{parts.scheme}://{parts.netloc}"


def resolve_preset(preset: str, *, url: str | None, canvas_env: str = "prod") -> PlatformFields:
    """Fill the issuer and endpoints a Moodle site or a Canvas cloud school always has."""
    if preset not in PRESETS:
        raise PlatformError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    url = _clean(url)
    if url is None:
        raise PlatformError(f"the {preset} preset needs the site's URL (url)")
    if preset == "moodle":
        return _moodle_preset(url)
    return _canvas_preset(url, canvas_env)


def _moodle_preset(url: str) -> PlatformFields:
    """Moodle: the issuer is $CFG->wwwroot; endpoints live under /mod/lti/."""
    root = check_url("url", url).rstrip("/")
    if urlsplit(root).query:
        raise PlatformError(f"url {url!r} must be the Moodle site address, without a query")
    return PlatformFields(
        issuer=root,
        auth_login_url=f"{root}/mod/lti/auth.php",
        auth_token_url=f"{root}/mod/lti/token.php",
        key_set_url=f"{root}/mod/lti/certs.php",
        name=urlsplit(root).netloc + urlsplit(root).path,
        family="moodle",
    )


def _canvas_preset(url: str, canvas_env: str) -> PlatformFields:
    """Canvas cloud: issuer and sso host per environment; the token URL is on the school's host."""
    if canvas_env not in CANVAS_ENVS:
        raise PlatformError(f"unknown canvas_env {canvas_env!r}: use one of prod, beta, test")
    school = _origin(url)
    infix = "" if canvas_env == "prod" else f"{canvas_env}."
    sso = f"https://sso.{infix}canvaslms.com"
    return PlatformFields(
        issuer=f"https://canvas.{infix}instructure.com",
        auth_login_url=f"{sso}/api/lti/authorize_redirect",
        auth_token_url=f"{school}/login/oauth2/token",
        key_set_url=f"{sso}/api/lti/security/jwks",
        name=urlsplit(school).netloc,
        family="canvas",
    )


def _validated(fields: PlatformFields) -> PlatformFields:
    """Strip every field and check lengths and URL shapes (required fields are checked later)."""
    values = {name: _clean(getattr(fields, name)) for name in PlatformFields.__dataclass_fields__}
    for name, value in values.items():
        if name in MAX_LENGTH:
            _check_length(name, value)
        if name in URL_FIELDS and value is not None:
            check_url(name, value)
    if values["family"] not in (None, *PRESETS):
        raise PlatformError(f"unknown family {values['family']!r}")
    return PlatformFields(**values)


def _validated_deployments(
    deployment_ids: Sequence[str], *, required: bool = True
) -> tuple[str, ...]:
    cleaned = tuple(_clean(d) for d in deployment_ids)
    if (required and not cleaned) or None in cleaned:
        raise PlatformError("missing deployment_id: give at least one, none of them empty")
    ids = tuple(d for d in cleaned if d is not None)
    for deployment_id in ids:
        _check_length("deployment_id", deployment_id)
    repeated = sorted({d for d in ids if ids.count(d) > 1})
    if repeated:
        raise PlatformError(f"deployment_id {repeated[0]!r} is given more than once")
    return ids


def get_platform(platform_id: int) -> Platform | None:
    """Return the registration with this id, or None."""
    platform: Platform | None = db.session.get(Platform, platform_id)
    return platform


def get_platform_by_client(issuer: str, client_id: str) -> Platform | None:
    """Return the registration of (issuer, client_id), or None."""
    stmt = select(Platform).where(Platform.issuer == issuer, Platform.client_id == client_id)
    platform: Platform | None = db.session.execute(stmt).scalar_one_or_none()
    return platform


def list_platforms() -> list[Platform]:
    """Every registration with its deployments, oldest first."""
    stmt = select(Platform).options(selectinload(Platform.deployments)).order_by(Platform.id)
    return list(db.session.execute(stmt).scalars())


def add_platform(
    *,
    issuer: str | None,
    client_id: str | None,
    deployment_ids: Sequence[str],
    auth_login_url: str | None = None,
    auth_token_url: str | None = None,
    key_set_url: str | None = None,
    name: str | None = None,
    auth_audience: str | None = None,
    family: str | None = None,
    allow_teaching_assistants: bool = False,
) -> PlatformAdded:
    """Register a platform with its deployments, or add new deployments to an existing one.

    When (issuer, client_id) is already registered, the endpoints may be left out; any that are
    given must equal the stored ones (changing endpoints means remove and add again), the name
    is left as it is, and every deployment id must be new. allow_teaching_assistants applies to
    the deployments added here (their TAs then see the instructor view). Flushes, never
    commits; after a PlatformError nothing was added to the session.
    """
    fields = _validated(
        PlatformFields(
            issuer=issuer,
            client_id=client_id,
            auth_login_url=auth_login_url,
            auth_token_url=auth_token_url,
            key_set_url=key_set_url,
            name=name,
            auth_audience=auth_audience,
            family=family,
        )
    )
    ids = _validated_deployments(deployment_ids)
    for required in ("issuer", "client_id"):
        if getattr(fields, required) is None:
            raise PlatformError(f"missing {required}: every platform needs one")
    assert fields.issuer is not None and fields.client_id is not None
    existing = get_platform_by_client(fields.issuer, fields.client_id)
    if existing is None:
        platform = _new_platform(fields)
    else:
        _check_same_endpoints(existing, fields)
        platform = existing
    _check_new_deployments(platform, ids)
    return _save(platform, ids, created=existing is None, allow_tas=allow_teaching_assistants)


def add_registered_platform(
    fields: PlatformFields, *, deployment_ids: Sequence[str], learn_deployments: bool
) -> PlatformAdded:
    """Store a platform that Dynamic Registration just registered: always a new one.

    It may come with no deployment (Canvas sends none); learn_deployments lets its launches add
    them. The same (issuer, client_id) twice is a PlatformError. Flushes, never commits.
    """
    fields = _validated(fields)
    ids = _validated_deployments(deployment_ids, required=False)
    if fields.issuer is None or fields.client_id is None:
        raise PlatformError("missing issuer or client_id")
    if get_platform_by_client(fields.issuer, fields.client_id) is not None:
        raise DuplicatePlatformError(
            f"issuer {fields.issuer} client_id {fields.client_id} is already registered"
        )
    platform = _new_platform(fields)
    platform.learn_deployments = learn_deployments
    return _save(platform, ids, created=True, allow_tas=False)


def _new_platform(fields: PlatformFields) -> Platform:
    for required in ("auth_login_url", "auth_token_url", "key_set_url"):
        if getattr(fields, required) is None:
            raise PlatformError(f"missing {required}: a new platform needs all its endpoints")
    assert fields.issuer is not None
    return Platform(
        name=fields.name or urlsplit(fields.issuer).netloc,
        issuer=fields.issuer,
        client_id=fields.client_id,
        auth_login_url=fields.auth_login_url,
        auth_token_url=fields.auth_token_url,
        key_set_url=fields.key_set_url,
        auth_audience=fields.auth_audience,
        family=fields.family,
    )


def _check_same_endpoints(platform: Platform, fields: PlatformFields) -> None:
    for name in ENDPOINT_FIELDS:
        given = getattr(fields, name)
        if given is not None and given != getattr(platform, name):
            raise PlatformError(
                f"issuer {platform.issuer} client_id {platform.client_id} is already registered "
                f"(id {platform.id}) with a different {name}; remove it first to change endpoints"
            )


def _check_new_deployments(platform: Platform, ids: tuple[str, ...]) -> None:
    known = {d.deployment_id for d in platform.deployments}
    for deployment_id in ids:
        if deployment_id in known:
            raise PlatformError(
                f"deployment {deployment_id!r} is already registered for issuer "
                f"{platform.issuer} client_id {platform.client_id} (id {platform.id})"
            )


def _save(
    platform: Platform, ids: tuple[str, ...], *, created: bool, allow_tas: bool
) -> PlatformAdded:
    for deployment_id in ids:
        platform.deployments.append(
            Deployment(
                deployment_id=deployment_id, active=True, allow_teaching_assistants=allow_tas
            )
        )
    if created:
        db.session.add(platform)
    try:
        db.session.flush()
    except IntegrityError as exc:
        # Another process registered the same platform or deployment a moment ago.
        db.session.rollback()
        raise DuplicatePlatformError(
            f"issuer {platform.issuer} client_id {platform.client_id} or one of its deployments "
            "was registered at the same time; list the platforms and try again"
        ) from exc
    return PlatformAdded(platform=platform, created=created, deployment_ids=ids)


def remove_platform(platform: Platform) -> None:
    """Delete a registration and its deployments (flushes, never commits)."""
    db.session.delete(platform)
    db.session.flush()


def _check_deployment_id(deployment_id: str | None) -> str:
    cleaned = _clean(deployment_id)
    if cleaned is None:
        raise PlatformError("missing deployment_id")
    _check_length("deployment_id", cleaned)
    return cleaned


def add_deployment(platform: Platform, deployment_id: str) -> Deployment:
    """Register one more deployment id for a platform (flushes, never commits)."""
    deployment_id = _check_deployment_id(deployment_id)
    _check_new_deployments(platform, (deployment_id,))
    _save(platform, (deployment_id,), created=False, allow_tas=False)
    return platform.deployments[-1]


def remove_deployment(platform: Platform, deployment_id: str) -> None:
    """Delete one deployment id of a platform; its launches stop working (flushes)."""
    deployment_id = _check_deployment_id(deployment_id)
    row = next((d for d in platform.deployments if d.deployment_id == deployment_id), None)
    if row is None:
        raise PlatformError(
            f"deployment {deployment_id!r} is not registered for platform {platform.id}"
        )
    platform.deployments.remove(row)
    db.session.flush()


def _claimed_by_other_platform(platform: Platform, deployment_id: str) -> bool:
    """True when another registration of the same issuer already has this deployment id."""
    stmt = (
        select(Deployment.id)
        .join(Platform, Deployment.platform_id == Platform.id)
        .where(
            Platform.issuer == platform.issuer,
            Platform.id != platform.id,
            Deployment.deployment_id == deployment_id,
        )
        .limit(1)
    )
    return db.session.execute(stmt).first() is not None


def find_or_learn_deployment(
    platform: Platform, deployment_id: str, *, now: datetime | None = None
) -> Deployment | None:
    """The platform's deployment row for deployment_id, learning it when the platform may.

    Called where a verified launch's deployment is looked up (the id_token's signature, issuer
    and audience were checked, so the platform itself vouches for the id). A platform
    registered by Dynamic Registration with learn_deployments on (Canvas sends its deployment
    id only with the first launch) gets the new id added, logged and marked learned; an id that
    another registration of the same issuer already holds is never taken over. Returns None
    when the id is unknown and not learned. Flushes inside a savepoint, never commits.
    """
    row = cached_deployment(platform, deployment_id)
    if row is not None:
        return row
    row = db.session.execute(
        select(Deployment).where(
            Deployment.platform_id == platform.id, Deployment.deployment_id == deployment_id
        )
    ).scalar_one_or_none()
    if row is not None or not platform.learn_deployments:
        return row
    if len(deployment_id) > MAX_LENGTH["deployment_id"]:
        return None
    if _claimed_by_other_platform(platform, deployment_id):
        log.warning(
            "deployment not learned: deployment_id=%r belongs to another registration of "
            "issuer=%s (platform %s refused)",
            deployment_id,
            platform.issuer,
            platform.id,
        )
        return None
    return _learn(platform, deployment_id, now or datetime.now(UTC))


def _learn(platform: Platform, deployment_id: str, now: datetime) -> Deployment | None:
    learned = Deployment(
        platform_id=platform.id, deployment_id=deployment_id, active=True, learned_at=now
    )
    try:
        with db.session.begin_nested():
            db.session.add(learned)
    except IntegrityError:
        # A concurrent first launch learned it a moment ago: use that row.
        return db.session.execute(
            select(Deployment).where(
                Deployment.platform_id == platform.id, Deployment.deployment_id == deployment_id
            )
        ).scalar_one_or_none()
    log.info(
        "deployment learned at first launch: platform=%s issuer=%s client_id=%s deployment_id=%r",
        platform.id,
        platform.issuer,
        platform.client_id,
        deployment_id,
    )
    return learned
