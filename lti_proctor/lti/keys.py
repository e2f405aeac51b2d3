"""Tool key pairs: the RSA keys the tool signs with, the public JWKS document, and rotation.

Private keys live only in the database, sealed at rest (lti_proctor.crypto); nothing here logs
or returns private material except get_signing_key(), which hands the parsed key to the code
that signs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import Flask
from sqlalchemy import JSON, DateTime, Index, Integer, String, delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from lti_proctor.crypto import SealedText
from lti_proctor.extensions import db

KEY_SIZE = 2048
ALGORITHM = "RS256"

# Parsed private keys by kid. A kid always names the same key material, so this cache never
# goes stale; which kid is current is always read from the database.
_PARSED: dict[str, rsa.RSAPrivateKey] = {}


class ToolKeyError(RuntimeError):
    """The tool has no current signing key; run `lti-proctor keys rotate` to create one."""


class KeyStatus(StrEnum):
    """A key is current (signs and is published) or retiring (published only, until expiry)."""

    CURRENT = "current"
    RETIRING = "retiring"


class ToolKey(db.Model):  # type: ignore[name-defined,misc]
    """One RSA key pair of the tool; at most one is current (enforced by a partial index)."""

    __tablename__ = "lti_tool_key"
    __table_args__ = (
        Index(
            "uq_tool_key_one_current",
            "status",
            unique=True,
            sqlite_where=text("status = 'current'"),
            postgresql_where=text("status = 'current'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_pem: Mapped[str] = mapped_column(SealedText)  # sealed at rest (crypto.py)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        # Never the private key: reprs end up in logs and tracebacks.
        return f"<ToolKey {self.kid} {self.status}>"


def _utc(moment: datetime) -> datetime:
    """Aware UTC time; SQLite hands back naive datetimes, and every stored time is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_jwk(private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public JWK of private_key, its kid being the RFC 7638 thumbprint."""
    numbers = private_key.public_key().public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def _new_current_key(now: datetime, private_key: rsa.RSAPrivateKey | None = None) -> ToolKey:
    """Add a key pair to the session as the current key: private_key, or a new RSA 2048 one."""
    if private_key is None:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    jwk = _public_jwk(private_key)
    key = ToolKey(
        kid=jwk["kid"],
        private_key_pem=pem,
        public_jwk=jwk,
        status=KeyStatus.CURRENT.value,
        created_at=_utc(now),
    )
    _PARSED[key.kid] = private_key
    db.session.add(key)
    db.session.flush()
    return key


def get_current_key() -> ToolKey | None:
    """Return the key the tool signs with now, or None before the first key exists."""
    stmt = select(ToolKey).where(ToolKey.status == KeyStatus.CURRENT.value)
    key: ToolKey | None = db.session.execute(stmt).scalar_one_or_none()
    return key


def find_keys() -> list[ToolKey]:
    """Every stored key, the current one first, then the newest retiring ones."""
    stmt = select(ToolKey).order_by(ToolKey.status, ToolKey.created_at.desc(), ToolKey.id.desc())
    return list(db.session.execute(stmt).scalars())


def is_expired(key: ToolKey, now: datetime) -> bool:
    """True when key is retiring and its grace period has ended."""
    return key.expires_at is not None and _utc(key.expires_at) <= _utc(now)


def ensure_current_key(*, now: datetime, first_key_pem: str | None = None) -> ToolKey:
    """Return the current key, making the first one when there is none: from first_key_pem
    when given, else generated (flushes only)."""
    current = get_current_key()
    if current is not None:
        return current
    return _new_current_key(now, _first_key(first_key_pem) if first_key_pem else None)


@lru_cache(maxsize=4)
def _first_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA private key of LTI_FIRST_KEY_PEM, parsed once per process (parsing checks the key,
    which costs as much as the rest of an app's start); a ValueError naming the setting."""
    try:
        key = load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError("LTI_FIRST_KEY_PEM is not an unencrypted private key in PEM") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < KEY_SIZE:
        raise ValueError(f"LTI_FIRST_KEY_PEM must be an RSA key of at least {KEY_SIZE} bits")
    return key


def prune_keys(*, now: datetime) -> list[str]:
    """Drop retiring keys whose grace period has ended; returns their kids."""
    expired = ToolKey.expires_at <= _utc(now)
    gone = list(db.session.execute(select(ToolKey.kid).where(expired)).scalars())
    if gone:
        db.session.execute(delete(ToolKey).where(expired))
        db.session.flush()
    return gone


def rotate_keys(*, now: datetime, grace_days: int) -> ToolKey:
    """Make a new key current; the previous one stays published as retiring for grace_days."""
    if grace_days < 0:
        raise ValueError("grace_days must not be negative")
    prune_keys(now=now)
    previous = get_current_key()
    if previous is not None:
        previous.status = KeyStatus.RETIRING.value
        previous.retired_at = _utc(now)
        previous.expires_at = _utc(now) + timedelta(days=grace_days)
        # Demote before inserting: the partial unique index allows one current key only.
        db.session.flush()
    return _new_current_key(now)


def public_jwks(now: datetime) -> dict[str, Any]:
    """The JWKS document: the current key and every retiring key still within its grace."""
    live = (ToolKey.expires_at.is_(None)) | (ToolKey.expires_at > _utc(now))
    stmt = select(ToolKey).where(live).order_by(ToolKey.status, ToolKey.created_at.desc())
    return {"keys": [dict(key.public_jwk) for key in db.session.execute(stmt).scalars()]}


def get_signing_key() -> tuple[str, rsa.RSAPrivateKey]:
    """Return (kid, private key) of the current key, for client assertions and signed messages."""
    key = get_current_key()
    if key is None:
        raise ToolKeyError(ToolKeyError.__doc__)
    parsed = _PARSED.get(key.kid)
    if parsed is None:
        loaded = load_pem_private_key(key.private_key_pem.encode("ascii"), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ToolKeyError(f"tool key {key.kid} is not an RSA key")
        parsed = _PARSED[key.kid] = loaded
    return key.kid, parsed


def init_app(app: Flask) -> None:
    """On start with AUTO_SETUP, make sure a current tool key exists (first start creates it)."""
    if not app.config.get("AUTO_SETUP"):
        return
    with app.app_context():
        try:
            ensure_current_key(
                now=datetime.now(UTC), first_key_pem=app.config.get("LTI_FIRST_KEY_PEM")
            )
            db.session.commit()
        except IntegrityError:
            # Another process created the first key at the same moment; theirs is the one.
            db.session.rollback()
        finally:
            db.session.remove()
