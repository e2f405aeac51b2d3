"""Registration invites: single-use, expiring tokens that allow one LTI Dynamic Registration.

Owns the invite table and its operations (create, find, use, revoke). Only a SHA-256 hash of
each token is stored, so a database reader cannot register a platform. Operations flush, never
commit; using an invite is a conditional update, so two registrations racing on one invite
cannot both succeed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.extensions import db

TOKEN_BYTES = 32
MAX_NAME = 255
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_EXPIRY = timedelta(days=90)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InviteError(ValueError):
    """The invite could not be created or changed; nothing was changed."""


class RegistrationInvite(db.Model):  # type: ignore[name-defined,misc]
    """One single-use invite to register a platform by Dynamic Registration."""

    __tablename__ = "lti_registration_invite"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(MAX_NAME))
    learn_deployments: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    platform_id: Mapped[int | None] = mapped_column(
        ForeignKey("lti_platform.id", ondelete="SET NULL")
    )

    def status(self, now: datetime) -> str:
        """open, used, revoked or expired."""
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if _aware(self.expires_at) <= now else "open"


@dataclass(frozen=True)
class NewInvite:
    """A created invite and its token, which exists only here and in the URL shown once."""

    invite: RegistrationInvite
    token: str


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def hash_token(token: str) -> str:
    """The stored form of an invite token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """'30m', '12h', '7d' or '2w' as a timedelta (at least a minute, at most 90 days)."""
    match = _DURATION.match(text)
    if match is None:
        raise InviteError(f"expiry {text!r} is not a duration such as 30m, 12h, 7d or 2w")
    amount, unit = int(match.group(1)), match.group(2)
    duration = timedelta(**{_UNITS[unit]: amount})
    if duration <= timedelta(0) or duration > MAX_EXPIRY:
        raise InviteError(f"expiry {text!r} must be more than 0 and at most 90 days")
    return duration


def token_from(text: str) -> str:
    """The token of an invite given as the token itself or as the whole registration URL."""
    text = text.strip()
    if "://" in text:
        values = parse_qs(urlsplit(text).query).get("invite", [])
        return values[0] if values else ""
    return text


def create_invite(
    *, now: datetime, expires_in: timedelta, name: str | None = None, learn_deployments: bool = True
) -> NewInvite:
    """Add an open invite; the returned token is shown once and never stored."""
    name = (name or "").strip() or None
    if name is not None and len(name) > MAX_NAME:
        raise InviteError(f"name is longer than {MAX_NAME} characters")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invite = RegistrationInvite(
        token_hash=hash_token(token),
        name=name,
        learn_deployments=learn_deployments,
        created_at=now,
        expires_at=now + expires_in,
    )
    db.session.add(invite)
    db.session.flush()
    return NewInvite(invite=invite, token=token)


def get_invite_by_token(token: str) -> RegistrationInvite | None:
    """The invite with this token, whatever its status, or None."""
    if not token:
        return None
    stmt = select(RegistrationInvite).where(RegistrationInvite.token_hash == hash_token(token))
    invite: RegistrationInvite | None = db.session.execute(stmt).scalar_one_or_none()
    return invite


def get_open_invite(token: str, *, now: datetime) -> RegistrationInvite | None:
    """The invite with this token when it is unused, unrevoked and unexpired; else None."""
    invite = get_invite_by_token(token)
    if invite is None or invite.status(now) != "open":
        return None
    return invite


def find_open_invites(*, now: datetime) -> list[RegistrationInvite]:
    """Invites that can still be used, oldest first."""
    stmt = (
        select(RegistrationInvite)
        .where(
            RegistrationInvite.used_at.is_(None),
            RegistrationInvite.revoked_at.is_(None),
            RegistrationInvite.expires_at > now,
        )
        .order_by(RegistrationInvite.id)
    )
    return list(db.session.execute(stmt).scalars())


def use_invite(invite: RegistrationInvite, *, platform_id: int, now: datetime) -> bool:
    """Mark an open invite used by platform_id; False when it was used, revoked or expired."""
    stmt = (
        update(RegistrationInvite)
        .where(
            RegistrationInvite.id == invite.id,
            RegistrationInvite.used_at.is_(None),
            RegistrationInvite.revoked_at.is_(None),
            RegistrationInvite.expires_at > now,
        )
        .values(used_at=now, platform_id=platform_id)
        .execution_options(synchronize_session=False)
    )
    changed = int(getattr(db.session.execute(stmt), "rowcount", 0)) == 1
    db.session.refresh(invite)
    return changed


def revoke_invite(token_or_id: str, *, now: datetime) -> RegistrationInvite:
    """Revoke an open invite named by its token, its registration URL or its id."""
    text = token_or_id.strip()
    if text.isdigit():
        invite: RegistrationInvite | None = db.session.get(RegistrationInvite, int(text))
    else:
        invite = get_invite_by_token(token_from(text))
    if invite is None:
        raise InviteError("no invite with that token or id")
    if invite.status(now) != "open":
        raise InviteError(f"invite {invite.id} is already {invite.status(now)}")
    invite.revoked_at = now
    db.session.flush()
    return invite
